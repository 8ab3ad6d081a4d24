"""The stored review rank: each cycle's `rules.review_rank`, kept so the database can sort.

The worklist is sorted and paged by the database on this rank (see
`assessment.worklist`); only the rows of a page are then assessed, live, for the
flags shown. Every write the rules read refreshes the rank in its transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.conf import settings
from django.utils import timezone

from patients import rules
from patients.assessment.loader import VALUES, Loader, PatientRows, cycle_in
from patients.assessment.series import PatientSeries
from patients.models import TreatmentCycle

# Patients assessed per round when refreshing review ranks in bulk: bounds memory
# (every draw of a patient is loaded) and keeps `IN (...)` lists short for SQLite.
RANK_BATCH = 500


def refresh_review_ranks(patient_ids: Iterable[int], *, apps: Apps = django_apps) -> int:
    """Store `rules.review_rank` on every cycle of these patients whose rank changed.

    Called by the bulk imports in their transaction (a single write ranks from
    its own assessment: `store_review_ranks`), by `manage.py refresh_review_ranks`
    after a change of the settings the rules read (cut-offs, pre-cycle window,
    time zone) and by the migration that added the rank. Every cycle is ranked,
    not only upcoming ones, so that "stored rank == live rank" holds for all.
    Per round of `RANK_BATCH` patients: at most four queries to load and at most
    one `UPDATE` per rank value (the rank is derived data: no history, no version
    bump). Returns how many cycles changed.
    """
    cycle_model = apps.get_model("patients", "TreatmentCycle")
    changed = 0
    for batch in _chunks(sorted(set(patient_ids)), RANK_BATCH):
        by_rank: defaultdict[int, list[int]] = defaultdict(list)
        for cycle_id, stored, live in _ranks(batch, Loader(VALUES, apps)):
            if live != stored:
                by_rank[live].append(cycle_id)
        changed += _store(by_rank, cycle_model)
    return changed


def store_review_ranks(series: PatientSeries) -> int:
    """Store the rank that `series` gives each cycle of its patient, where it changed.

    For a write that has just assessed the patient (`services._touch`): the
    ranks come from that assessment, not from loading the rows again, and the
    series' cycles then hold the ranks stored. Returns how many changed.
    """
    by_rank: defaultdict[int, list[int]] = defaultdict(list)
    for cycle in series.cycles:
        live = rules.review_rank(series.cycle_assessment(cycle))
        if live != cycle.review_rank:
            by_rank[live].append(cycle.pk)
            cycle.review_rank = live
    return _store(by_rank, TreatmentCycle)


def _store(by_rank: Mapping[int, Sequence[int]], cycle_model: Any) -> int:
    """One `UPDATE` per rank value (and per `RANK_BATCH` cycles): derived data, no history."""
    changed = 0
    for rank, cycle_ids in by_rank.items():
        for ids in _chunks(cycle_ids, RANK_BATCH):
            changed += cycle_model.objects.filter(pk__in=ids).update(review_rank=rank)
    return changed


def _ranks(patient_ids: Sequence[int], loader: Loader) -> Iterator[tuple[int, int, int]]:
    """(cycle id, stored rank, live rank) of every cycle of these patients.

    Read as plain values, not model instances: a bulk import refreshes thousands
    of patients, and building their draws as objects took most of its time. Only
    patients with an upcoming cycle need their draws: the rules flag no other
    cycle (`rules.assess_cycle`), so the others are ranked on no draws at all.
    """
    window = settings.CTC_PRE_CYCLE_WINDOW_DAYS
    tz = timezone.get_current_timezone()
    cycles = loader.cycles(patient_ids)
    waiting = [
        pk
        for pk, rows in cycles.items()
        if any(c.status in rules.UPCOMING_CYCLE_STATUSES for c in rows)
    ]
    cancer_types = loader.cancer_types(waiting)
    draws, lines = loader.draws(waiting), loader.lines(waiting)
    for pk, rows in cycles.items():
        assessments: list[rules.DrawAssessment] = []
        if pk in cancer_types:
            assessments = PatientRows(cancer_types[pk], draws[pk], lines[pk], rows).assess(tz)
        for cycle in rows:
            found = rules.assess_cycle(cycle_in(cycle), assessments, window_days=window)
            yield cycle.id, cycle.review_rank, rules.review_rank(found)


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    # itertools.batched is Python 3.12.
    return (items[k : k + size] for k in range(0, len(items), size))
