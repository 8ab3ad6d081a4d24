"""The lists' rows, rendered once and kept in the cache until what they show changes.

A row of the worklist, of the results to review or of the patient list costs its
patient's assessment (every draw of the patient through the rules, or its copy in the
cache) and half a millisecond of template; a nurse, and every nurse after her, opens the
same page again and again while nothing in it changes. So each row's markup, up to its
acknowledge form, is kept in the cache (the one every app server shares, as the charts
are) under a key that holds everything the row shows depends on:

- the cycle or the result, and the patient's `data_version`: every write the row reads
  (the patient, their lines, cycles, draws and imaging) bumps it (`services`);
- the id of the patient's latest acknowledgement (of a cycle or a result): acknowledgements
  are never deleted, so a new one always raises it;
- the clinic's date (a cycle's state changes with the day) and its time zone, the cut-offs
  and the settings the rules read (`loader.rules_fingerprint`);
- the cycle's stored rank, or the result's (a row whose stored rank disagrees with the
  rules is assessed again, and logged, as on a miss);
- for a result, whether it was escalated and how long it has waited, in words ("3 hours");
- whether the user may acknowledge (the row's summary says "Acknowledge" or "Details");
- for a worklist row, the generation of the accounts' names (`names_generation`): a
  row names who acknowledged, and an account renamed in admin raises the generation
  (`names_changed`, connected to the user model's saves), so no row shows the old name;
  a patient-list row names the patient's oncologist, and holds it too.

A patient-list row holds the patient (bumped with `data_version` by every change of
theirs), the clinic's date (its next cycle is the next from today), the rules'
settings and the names' generation: nothing of the user, as the page lists only the
patients the user may see and a row shows the same to everyone who sees it.

The acknowledge form holds the request's CSRF token, so it is never cached: the page's
template adds it after the cached markup. A row just acknowledged (highlighted, its
details open) is rendered afresh and not kept. `ROW_SECONDS` bounds what the key does not
hold (a deployment that changes the row's template on a shared cache; a name changed
in the database by hand).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from django.core.cache import cache
from django.db import transaction
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe

from patients.models import CTCDraw, Patient, TreatmentCycle
from patients.web.presenters import PatientRow, ResultRow, WorklistRow

# Raise when a row's template or presenter changes what a row shows.
ROW_DESIGN = 1
ROW_SECONDS = 15 * 60
# The accounts' names' generation; kept until raised (see `names_generation`).
NAMES_KEY = "row-names"
# What a user's save must write for the rows' names to change.
NAME_FIELDS = frozenset({"first_name", "last_name", "username"})
WORKLIST_ROW_TEMPLATE = "patients/_worklist_row.html"
RESULT_ROW_TEMPLATE = "patients/_result_row.html"
PATIENT_ROW_TEMPLATE = "patients/_patient_row.html"


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


def names_generation() -> int:
    """The generation of the accounts' names, part of every worklist and patient-list
    row's key: one round trip to the cache a page. Where the cache has lost it (evicted,
    or a new cache), it starts again from the clock, a number no earlier generation had,
    so a row kept under an old one is never found again."""
    return cast(int, cache.get_or_set(NAMES_KEY, time.time_ns, timeout=None))


def names_changed(
    sender: type, instance: Any, update_fields: Collection[str] | None, **kwargs: Any
) -> None:
    """A user was saved (`post_save`): if the save may have changed their name (admin's
    change form saves every field; a sign-in writes `last_login` alone), raise the
    generation once the save commits, and the rows naming anyone are rendered again.
    Not before: a page rendered in between would keep the old name under the new
    generation."""
    if update_fields is not None and not NAME_FIELDS.intersection(update_fields):
        return
    transaction.on_commit(_next_names_generation)


def _next_names_generation() -> None:
    with suppress(ValueError):  # not in the cache: the next page starts a new generation
        cache.incr(NAMES_KEY)


def worklist_row_key(
    cycle: TreatmentCycle,
    *,
    acknowledged: int,
    today: date,
    can_acknowledge: bool,
    rules: str,
    names: int,
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
        names,
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


def patient_row_key(patient: Patient, *, today: date, rules: str, names: int) -> str:
    """The cache key of a patient-list row: see the module's docstring."""
    parts = [ROW_DESIGN, patient.pk, patient.data_version, today.isoformat(), rules, names]
    return "patient-row:" + ":".join(str(p) for p in parts)


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


def _rendered(row: WorklistRow | ResultRow | PatientRow, html: str) -> RenderedRow:
    # The template's comment leaves a line break before the row, and its last line one after.
    markup = html.removeprefix("\n").removesuffix("\n")
    if isinstance(row, PatientRow):
        return RenderedRow(
            html=mark_safe(markup),  # noqa: S308 - as below
            row_id=row.row_id,
            pk=row.patient.pk,
            about=row.patient.family_name,
            awaits_acknowledgement=False,
            patient_id=row.patient.pk,
        )
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
