"""The lists' rows, rendered once and kept in the cache until what they show changes.

A row of the worklist or of the results to review costs its patient's assessment (every
draw of the patient through the rules) and half a millisecond of template; a nurse, and
every nurse after her, opens the same page again and again while nothing in it changes.
So each row's markup, up to its acknowledge form, is kept in the cache (the one every app
server shares, as the charts are) under a key that holds everything the row shows
depends on:

- the cycle or the result, and the patient's `data_version`: every write the row reads
  (the patient, their lines, cycles, draws and imaging) bumps it (`services`);
- the id of the patient's latest acknowledgement (of a cycle or a result): acknowledgements
  are never deleted, so a new one always raises it;
- the clinic's date (a cycle's state changes with the day) and its time zone, the cut-offs
  and the settings the rules read (`loader.rules_fingerprint`);
- the cycle's stored rank, or the result's (a row whose stored rank disagrees with the
  rules is assessed again, and logged, as on a miss);
- for a result, whether it was escalated and how long it has waited, in words ("3 hours");
- whether the user may acknowledge (the row's summary says "Acknowledge" or "Details").

The acknowledge form holds the request's CSRF token, so it is never cached: the page's
template adds it after the cached markup. A row just acknowledged (highlighted, its
details open) is rendered afresh and not kept. `ROW_SECONDS` bounds what the key does not
hold (the name of the person who acknowledged, shown with the acknowledgement, if their
account is renamed; a deployment that changes the row's template on a shared cache).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.cache import cache
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe

from patients.models import CTCDraw, TreatmentCycle
from patients.web.presenters import ResultRow, WorklistRow

# Raise when a row's template or presenter changes what a row shows.
ROW_DESIGN = 1
ROW_SECONDS = 15 * 60
WORKLIST_ROW_TEMPLATE = "patients/_worklist_row.html"
RESULT_ROW_TEMPLATE = "patients/_result_row.html"


@dataclass(frozen=True)
class RenderedRow:
    """A row's markup up to its acknowledge form, and what the page adds to it."""

    html: SafeString
    row_id: str
    pk: int  # the cycle's or the draw's id, for the acknowledge form
    about: str  # the patient's family name, for the form's label
    awaits_acknowledgement: bool  # the worklist adds the acknowledge form
    patient_id: int
    day: date | None = None  # a worklist row's day 1: the page groups rows by it


def worklist_row_key(
    cycle: TreatmentCycle, *, acknowledged: int, today: date, can_acknowledge: bool, rules: str
) -> str:
    """The cache key of a worklist row: see the module's docstring for each part."""
    parts = [
        ROW_DESIGN,
        cycle.pk,
        cycle.therapy_line.patient.data_version,
        acknowledged,
        today.isoformat(),
        getattr(cycle, "rank", ""),  # annotated by `assessment.due_cycles`
        int(can_acknowledge),
        rules,
    ]
    return "worklist-row:" + ":".join(str(p) for p in parts)


def result_row_key(
    draw: CTCDraw, *, acknowledged: int, waited: str, can_acknowledge: bool, rules: str
) -> str:
    """The cache key of a row of the results to review: see the module's docstring."""
    parts = [
        ROW_DESIGN,
        draw.pk,
        draw.patient.data_version,
        acknowledged,
        draw.review_rank,
        int(draw.review_acknowledged),
        int(draw.escalated_at is not None),
        waited.replace(" ", "-"),  # "3 hours": a key holds no spaces (memcached)
        int(can_acknowledge),
        rules,
    ]
    return "result-row:" + ":".join(str(p) for p in parts)


class RowCache:
    """The rows of one page of a list: those in the cache, then the others rendered."""

    def __init__(self, template: str, *, can_acknowledge: bool, just_done: Collection[str]) -> None:
        self.template = template
        self.can_acknowledge = can_acknowledge
        self.just_done = just_done
        self.keys: dict[str, str] = {}  # row id -> cache key
        self.found: dict[str, RenderedRow] = {}

    def known(self, keys: dict[str, str]) -> set[str]:
        """Look the page's rows (row id -> key) up in the cache, in one round trip; the row
        ids found. A row just acknowledged is never taken from the cache."""
        self.keys = {row_id: key for row_id, key in keys.items() if row_id not in self.just_done}
        cached = cache.get_many(self.keys.values())
        self.found = {row_id: cached[key] for row_id, key in self.keys.items() if key in cached}
        return set(self.found)

    def rows(self, row_ids: Iterable[str], fresh: Sequence[Any]) -> list[RenderedRow]:
        """The page's rows in order: the cached ones, and `fresh` (the presenters' rows of
        the others) rendered and kept in the cache (a row just acknowledged is not kept).
        A row id neither found nor fresh (a result that no longer needs review) is left out."""
        template = get_template(self.template)
        context: dict[str, Any] = {
            "can_acknowledge": self.can_acknowledge,
            "just_done": self.just_done,
        }
        rendered = {
            row.row_id: _rendered(row, template.render({**context, "row": row})) for row in fresh
        }
        cache.set_many(
            {self.keys[row_id]: row for row_id, row in rendered.items() if row_id in self.keys},
            timeout=ROW_SECONDS,
        )
        found = {**self.found, **rendered}
        return [found[row_id] for row_id in row_ids if row_id in found]


def _rendered(row: WorklistRow | ResultRow, html: str) -> RenderedRow:
    # The template's comment leaves a line break before the row, and its last line one after.
    markup = html.removeprefix("\n").removesuffix("\n")
    if isinstance(row, WorklistRow):
        return RenderedRow(
            html=mark_safe(markup),  # noqa: S308 - rendered by the template engine, escaped there
            row_id=row.row_id,
            pk=row.cycle.pk,
            about=row.patient.family_name,
            awaits_acknowledgement=row.awaits_acknowledgement,
            patient_id=row.patient.pk,
            day=row.cycle.scheduled_date,
        )
    return RenderedRow(
        html=mark_safe(markup),  # noqa: S308 - as above
        row_id=row.row_id,
        pk=row.draw.pk,
        about=row.patient.family_name,
        awaits_acknowledgement=True,
        patient_id=row.patient.pk,
    )
