"""Load what the rules need, in a fixed number of queries, and ask `patients.rules`.

This is the seam between the database and the pure rules: it turns rows into
the rules' plain dataclasses and back into plain results for the API, the
pages and the charts. It decides nothing itself. The query count never grows
with the number of patients, cycles or draws: rows are fetched per kind for
all patients at once and grouped in Python.

It also keeps each cycle's stored review rank (`rules.review_rank`) current,
so that the database can sort and page the worklist: only the page's rows are
then assessed again, live, for the flags shown.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from functools import cached_property
from typing import Any, TypeVar

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from patients import rules
from patients.models import (
    Acknowledgement,
    CTCDraw,
    CycleStatus,
    Patient,
    TherapyLine,
    TreatmentCycle,
)

UPCOMING = [CycleStatus.PLANNED, CycleStatus.DELAYED]
M = TypeVar("M")
# Patients assessed per round when refreshing review ranks in bulk: bounds memory
# (every draw of a patient is loaded) and keeps `IN (...)` lists short for SQLite.
RANK_BATCH = 500

logger = logging.getLogger(__name__)


@dataclass
class PatientSeries:
    """Everything the rules said about one patient's draws and cycles."""

    patient: Patient
    cutoff: int | None
    draws: list[CTCDraw]  # oldest first, aligned with `assessments`
    assessments: list[rules.DrawAssessment]
    lines: list[TherapyLine]
    cycles: list[TreatmentCycle]
    voided: list[CTCDraw] = field(default_factory=list)  # entered in error: shown, never assessed
    by_draw_id: dict[int, rules.DrawAssessment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_draw_id = {a.draw.id: a for a in self.assessments if a.draw.id is not None}

    def cycle_assessment(self, cycle: TreatmentCycle) -> rules.CycleAssessment:
        return rules.assess_cycle(
            cycle_in(cycle), self.assessments, window_days=settings.CTC_PRE_CYCLE_WINDOW_DAYS
        )

    def all_draws(self) -> list[CTCDraw]:
        """Every draw on record, those entered in error included, oldest first."""
        return sorted([*self.draws, *self.voided], key=lambda d: (d.drawn_at, d.pk))

    def upcoming_cycles(self) -> list[TreatmentCycle]:
        upcoming = [c for c in self.cycles if c.status in UPCOMING]
        return sorted(upcoming, key=lambda c: (c.scheduled_date, c.therapy_line_id, c.number))


@dataclass
class WorklistItem:
    cycle: TreatmentCycle
    series: PatientSeries
    assessment: rules.CycleAssessment
    acknowledgements: list[Acknowledgement]

    @property
    def patient(self) -> Patient:
        return self.series.patient

    @property
    def latest_draw(self) -> CTCDraw | None:
        return self.series.draws[-1] if self.series.draws else None


# --- conversions to the rules' plain data ------------------------------------------


def draw_in(draw: CTCDraw, tz: tzinfo | None = None) -> rules.DrawIn:
    """The draw as the rules see it; `tz` is the clinic's time zone (default: the current one).

    Callers converting many draws look the zone up once and pass it:
    `timezone.localdate` per draw looks it up every time (visible in profiles).
    """
    zone = tz or timezone.get_current_timezone()
    return rules.DrawIn(
        id=draw.pk,
        drawn_at=draw.drawn_at,
        # astimezone() of a naive time would guess; the rules refuse one anyway.
        drawn_on=draw.drawn_at.astimezone(zone).date(),
        blood_volume_ml=draw.blood_volume_ml,
        status=draw.status,
        ctc_count=draw.ctc_count,
    )


def line_in(line: TherapyLine) -> rules.LineIn:
    return rules.LineIn(
        id=line.pk,
        line_number=line.line_number,
        start_date=line.start_date,
        contains_doxorubicin=line.contains_doxorubicin,
        regimen=line.regimen,
    )


def cycle_in(cycle: TreatmentCycle) -> rules.CycleIn:
    return rules.CycleIn(
        id=cycle.pk,
        line_id=cycle.therapy_line_id,
        number=cycle.number,
        scheduled_date=cycle.scheduled_date,
        given_date=cycle.given_date,
        status=cycle.status,
    )


# --- loading ------------------------------------------------------------------------


def cutoff_for(patient: Patient) -> int | None:
    return rules.cutoff_for(patient.cancer_type, settings.CTC_CUTOFFS)


def series_for(patient: Patient) -> PatientSeries:
    """One patient's assessed series: three queries."""
    return series_for_many([patient])[patient.pk]


def series_for_many(
    patients: Iterable[Patient], *, apps: Apps = django_apps
) -> dict[int, PatientSeries]:
    """Assessed series for many patients in three queries, whatever their number.

    `apps` is the model registry: a migration passes its historical one.
    """
    by_id = {p.pk: p for p in patients}
    draws = _grouped(
        apps.get_model("patients", "CTCDraw")
        .objects.filter(patient__in=by_id)
        .select_related("entered_by")
        .order_by("drawn_at", "id"),
        lambda d: d.patient_id,
    )
    lines = _grouped(
        apps.get_model("patients", "TherapyLine")
        .objects.filter(patient__in=by_id)
        .order_by("line_number"),
        lambda line: line.patient_id,
    )
    cycles = _grouped(
        apps.get_model("patients", "TreatmentCycle")
        .objects.filter(therapy_line__patient__in=by_id)
        .select_related("therapy_line")
        .order_by("scheduled_date", "number"),
        lambda c: c.therapy_line.patient_id,
    )
    tz = timezone.get_current_timezone()
    return {
        pk: _assess(patient, draws[pk], lines[pk], cycles[pk], tz) for pk, patient in by_id.items()
    }


def _grouped(rows: Iterable[M], key: Callable[[M], int]) -> defaultdict[int, list[M]]:
    groups: defaultdict[int, list[M]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def _assess(
    patient: Patient,
    draws: Sequence[CTCDraw],
    lines: Sequence[TherapyLine],
    cycles: Sequence[TreatmentCycle],
    tz: tzinfo,
) -> PatientSeries:
    cutoff = cutoff_for(patient)
    voided = [d for d in draws if d.entered_in_error]
    draws = [d for d in draws if not d.entered_in_error]
    assessments = rules.assess_draws(
        [draw_in(d, tz) for d in draws],
        [line_in(line) for line in lines],
        [cycle_in(c) for c in cycles],
        cancer_type=patient.cancer_type,
        cutoff=cutoff,
    )
    by_id = {d.pk: d for d in draws}
    ordered_draws = [by_id[a.draw.id] for a in assessments]
    return PatientSeries(
        patient, cutoff, ordered_draws, assessments, list(lines), list(cycles), voided
    )


# --- the stored review rank ------------------------------------------------------------


def refresh_review_ranks(patient_ids: Iterable[int], *, apps: Apps = django_apps) -> int:
    """Store `rules.review_rank` on every cycle of these patients whose rank changed.

    Called in the same transaction as each write the rules read
    (`services._touch`, the bulk imports), by `manage.py refresh_review_ranks`
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
        for cycle_id, stored, live in _ranks(batch, apps):
            if live != stored:
                by_rank[live].append(cycle_id)
        for rank, cycle_ids in by_rank.items():
            for ids in _chunks(cycle_ids, RANK_BATCH):
                changed += cycle_model.objects.filter(pk__in=ids).update(review_rank=rank)
    return changed


def _ranks(patient_ids: Sequence[int], apps: Apps) -> Iterator[tuple[int, int, int]]:
    """(cycle id, stored rank, live rank) of every cycle of these patients.

    Read as plain values, not model instances: a bulk import refreshes thousands
    of patients, and building their draws as objects took most of its time. Only
    patients with an upcoming cycle need their draws: the rules flag no other
    cycle (`rules.assess_cycle`), so the others are ranked on no draws at all.
    """
    window = settings.CTC_PRE_CYCLE_WINDOW_DAYS
    cycles: defaultdict[int, list[tuple[rules.CycleIn, int]]] = defaultdict(list)
    cycle_rows = (
        apps.get_model("patients", "TreatmentCycle")
        .objects.filter(therapy_line__patient__in=patient_ids)
        .order_by("scheduled_date", "number")
        .values_list(
            "therapy_line__patient_id",
            "id",
            "therapy_line_id",
            "number",
            "scheduled_date",
            "given_date",
            "status",
            "review_rank",
        )
    )
    for patient_id, *fields, stored in cycle_rows:
        cycles[patient_id].append((rules.CycleIn(*fields), stored))
    waiting = [pk for pk, rows in cycles.items() if any(c.status in UPCOMING for c, _ in rows)]
    inputs = _rule_inputs(waiting, apps)
    for patient_id, rows in cycles.items():
        assessments = inputs(patient_id, [c for c, _ in rows])
        for cycle, stored in rows:
            live = rules.review_rank(rules.assess_cycle(cycle, assessments, window_days=window))
            yield cycle.id, stored, live


def _rule_inputs(
    patient_ids: Sequence[int], apps: Apps
) -> Callable[[int, list[rules.CycleIn]], list[rules.DrawAssessment]]:
    """The assessed draws of each of these patients, from three queries of plain values."""
    tz = timezone.get_current_timezone()
    cancer = dict(
        apps.get_model("patients", "Patient")
        .objects.filter(pk__in=patient_ids)
        .values_list("id", "cancer_type")
    )
    draws: defaultdict[int, list[rules.DrawIn]] = defaultdict(list)
    draw_rows = (
        apps.get_model("patients", "CTCDraw")
        .objects.filter(patient__in=patient_ids, entered_in_error=False)
        .order_by("drawn_at", "id")
        .values_list("patient_id", "id", "drawn_at", "blood_volume_ml", "status", "ctc_count")
    )
    for patient_id, pk, drawn_at, volume, status, count in draw_rows:
        draws[patient_id].append(
            rules.DrawIn(
                id=pk,
                drawn_at=drawn_at,
                drawn_on=drawn_at.astimezone(tz).date(),
                blood_volume_ml=volume,
                status=status,
                ctc_count=count,
            )
        )
    lines: defaultdict[int, list[rules.LineIn]] = defaultdict(list)
    line_rows = (
        apps.get_model("patients", "TherapyLine")
        .objects.filter(patient__in=patient_ids)
        .order_by("line_number")
        .values_list(
            "patient_id", "id", "line_number", "start_date", "contains_doxorubicin", "regimen"
        )
    )
    for patient_id, *fields in line_rows:
        lines[patient_id].append(rules.LineIn(*fields))

    def assessed(patient_id: int, cycles: list[rules.CycleIn]) -> list[rules.DrawAssessment]:
        if patient_id not in cancer:  # no upcoming cycle: no cycle of it is flagged
            return []
        cancer_type = cancer[patient_id]
        return rules.assess_draws(
            draws[patient_id],
            lines[patient_id],
            cycles,
            cancer_type=cancer_type,
            cutoff=rules.cutoff_for(cancer_type, settings.CTC_CUTOFFS),
        )

    return assessed


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    # itertools.batched is Python 3.12.
    return (items[k : k + size] for k in range(0, len(items), size))


# --- the worklist -----------------------------------------------------------------------


class _NameOrder(Lower):
    """A name lowercased and compared by code point, as Python compares `str.lower()`.

    PostgreSQL would otherwise compare by the database's locale (where "O'Neil"
    and "Oneill" interleave differently than in Python); SQLite compares bytes
    already (and lowercases ASCII letters only).
    """

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        sql, params = self.as_sql(compiler, connection, **extra)
        return f'{sql} COLLATE "C"', params


def due_cycles(
    start: date,
    days: int,
    *,
    oncologist_id: int | None = None,
    flagged: bool = False,
    among: QuerySet[TreatmentCycle] | None = None,
) -> DueCycles:
    """Upcoming cycles with day 1 in [start, start + days), in the worklist's order.

    The database sorts (and pages: slice the result) by the stored review rank,
    then day 1, family and given name (case-insensitively), patient and cycle
    number: the order `_worklist_order` gives from the live assessment, plus
    the cycle's id so that pages never overlap. `flagged`: only cycles with flags.
    `among`: the cycles to choose from (`access.due_cycles` passes a user's); all if None.
    """
    due = (TreatmentCycle.objects.all() if among is None else among).filter(
        status__in=UPCOMING,
        scheduled_date__gte=start,
        scheduled_date__lt=start + timedelta(days=days),
    )
    if oncologist_id is not None:
        due = due.filter(therapy_line__patient__oncologist_id=oncologist_id)
    if flagged:
        due = due.filter(review_rank__lt=rules.REVIEW_RANK_NO_FLAGS)
    return DueCycles(due)


class DueCycles:
    """The cycles due, as a sequence that Django's and DRF's paginators can count and slice.

    Sorting thousands of cycles joined to their patients' names costs tens of
    milliseconds; but the first two sort keys, rank and day 1, are on the
    cycle. So one small query counts the cycles per (rank, day 1) group (a
    few dozen groups; it also gives the total), and a slice joins the names
    only in the groups it overlaps: the same order, a few hundred rows sorted
    instead of thousands. Two queries per page, whatever the cohort's size.
    """

    def __init__(self, due: QuerySet[TreatmentCycle]) -> None:
        self._due = due

    @cached_property
    def _groups(self) -> list[tuple[int, date, int]]:
        return list(
            self._due.order_by()
            .values_list("review_rank", "scheduled_date")
            .annotate(n=Count("id"))
            .order_by("review_rank", "scheduled_date")
        )

    def count(self) -> int:
        return sum(n for _rank, _day, n in self._groups)

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[TreatmentCycle]:
        return iter(_in_worklist_order(self._due))

    def __getitem__(self, rows: slice) -> list[TreatmentCycle]:
        if not isinstance(rows, slice) or rows.step is not None:
            raise TypeError("a worklist is sliced into pages, not indexed")
        first, stop = rows.start or 0, rows.stop if rows.stop is not None else self.count()
        wanted: Q | None = None
        skip = before = 0
        for rank, day, n in self._groups:
            if before < stop and before + n > first:
                group = Q(review_rank=rank, scheduled_date=day)
                if wanted is None:  # the page's first group: skip its rows before the page
                    wanted, skip = group, first - before
                else:
                    wanted |= group
            before += n
        if wanted is None:
            return []
        found = _in_worklist_order(self._due.filter(wanted))
        return list(found[skip : skip + stop - first])


def _in_worklist_order(due: QuerySet[TreatmentCycle]) -> QuerySet[TreatmentCycle]:
    return (
        due.select_related("therapy_line__patient")
        .prefetch_related(
            Prefetch(
                "acknowledgements",
                queryset=Acknowledgement.objects.select_related("acknowledged_by").order_by(
                    "acknowledged_at"
                ),
            )
        )
        .order_by(
            "review_rank",
            "scheduled_date",
            _NameOrder("therapy_line__patient__family_name"),
            _NameOrder("therapy_line__patient__given_name"),
            "therapy_line__patient_id",
            "number",
            "id",
        )
    )


def worklist_items(cycles: Iterable[TreatmentCycle]) -> list[WorklistItem]:
    """The rows of a worklist page, in the order given, each assessed live.

    Three queries (the per-kind loads), whatever the page's size.
    """
    cycles = list(cycles)
    series = series_for_many({c.therapy_line.patient for c in cycles})
    items = [
        WorklistItem(
            cycle=c,
            series=series[c.therapy_line.patient_id],
            assessment=series[c.therapy_line.patient_id].cycle_assessment(c),
            acknowledgements=list(c.acknowledgements.all()),
        )
        for c in cycles
    ]
    stale = [i.cycle.pk for i in items if rules.review_rank(i.assessment) != i.cycle.review_rank]
    if stale:
        # Only a settings change (cut-offs, window, time zone) without
        # `manage.py refresh_review_ranks` can do this: say so, loudly.
        logger.error(
            "Stored review rank differs from the rules for cycles %s: the worklist order is "
            "stale; run `manage.py refresh_review_ranks`.",
            ", ".join(map(str, stale)),
        )
    return items


def worklist(start: date, days: int, *, oncologist_id: int | None = None) -> list[WorklistItem]:
    """Every upcoming cycle with day 1 in [start, start + days), most severe first.

    Unpaged: for scripts and benchmarks; the page and the API show 50 at a time.
    """
    return worklist_items(due_cycles(start, days, oncologist_id=oncologist_id))


def _worklist_order(item: WorklistItem) -> tuple:
    """The worklist's order from the live assessment: what `due_cycles` sorts by in SQL."""
    patient = item.patient
    return (
        rules.review_rank(item.assessment),
        item.cycle.scheduled_date,
        patient.family_name.lower(),
        patient.given_name.lower(),
        patient.pk,
        item.cycle.number,
        item.cycle.pk,
    )
