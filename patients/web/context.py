"""What every page's header shows: how many worklist rows and results wait for review."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils import timezone

from patients import access, assessment

# The worklist the header counts: the cycles due this week, as the worklist opens.
HEADER_WORKLIST_DAYS = 7
# The header counts results to review up to this many, then says "99+": a true figure
# that costs the same with 50 results waiting or 80,000 (after an upgrade from rules
# version 1, before `manage.py acknowledge_history`).
HEADER_RESULTS_CAP = 99


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
            counts["open_worklist"] = assessment.open_worklist_count(
                timezone.localdate(), HEADER_WORKLIST_DAYS, among=access.cycles(user)
            )
        if user.has_perm("patients.view_ctcdraw"):
            results = assessment.open_results_count(
                among=access.draws(user), cap=HEADER_RESULTS_CAP
            )
            counts["open_results"] = (
                f"{HEADER_RESULTS_CAP}+" if results > HEADER_RESULTS_CAP else results
            )
    except DatabaseError:
        return {}  # the page itself says what failed (a 503); the header goes without counts
    return counts
