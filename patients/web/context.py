"""What every page's header shows: how many worklist rows and results wait for review."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils import timezone

from patients import access, assessment

# The worklist the header counts: the cycles due this week, as the worklist opens.
HEADER_WORKLIST_DAYS = 7
# The header counts each list up to this many, then says "99+": a true figure that
# costs the same with 50 rows waiting or 80,000 (results after an upgrade from rules
# version 1, before `manage.py acknowledge_history`; cycles due in a clinic of 100,000).
HEADER_CAP = 99


def open_counts(request: HttpRequest) -> dict[str, Any]:
    """The header's open counts: two COUNT queries, for a signed-in user who may see them.

    Each is the text shown beside its link ("12", "99+"), absent when nothing is open.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    counts: dict[str, Any] = {}
    try:
        if user.has_perm("patients.view_treatmentcycle"):
            counts["open_worklist"] = _shown(
                assessment.open_worklist_count(
                    timezone.localdate(),
                    HEADER_WORKLIST_DAYS,
                    among=access.cycles(user),
                    cap=HEADER_CAP,
                )
            )
        if user.has_perm("patients.view_ctcdraw"):
            counts["open_results"] = _shown(
                assessment.open_results_count(among=access.draws(user), cap=HEADER_CAP)
            )
    except DatabaseError:
        return {}  # the page itself says what failed (a 503); the header goes without counts
    return counts


def _shown(count: int) -> int | str:
    """A capped count as the header shows it: the number, or "99+" above the cap."""
    return f"{HEADER_CAP}+" if count > HEADER_CAP else count
