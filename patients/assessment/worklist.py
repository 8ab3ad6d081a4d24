"""The worklist: the upcoming cycles due in a date range, most severe first, and their rows.

The database sorts and pages the cycles by their stored review rank
(`assessment.ranks`); only a page's cycles are then assessed, live, for the
flags shown. The order is `rules.worklist_sort_key` with the patient's name
between day 1 and the cycle number: `worklist_order` in Python, `ORDER_BY` in SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import Any, Generic, NoReturn, TypeVar, overload

from django.db.models import Case, Count, F, Max, Q, QuerySet, When
from django.db.models.functions import Lower
from django.utils import timezone

from ctctrack.pagination import capped_count
from patients import rules
from patients.assessment.series import PatientSeries, listed_series_for_many
from patients.models import (
    Acknowledgement,
    Patient,
    TreatmentCycle,
    TreatmentCycleQuerySet,
)

logger = logging.getLogger(__name__)
P = TypeVar("P", bound=Iterable[TreatmentCycle])


@dataclass
class WorklistItem:
    cycle: TreatmentCycle
    series: PatientSeries
    assessment: rules.CycleAssessment
    acknowledgements: list[Acknowledgement]  # of the cycle, and of the results it shows
    acknowledged: bool  # every high or review flag covered (spec section 5)

    @property
    def patient(self) -> Patient:
        return self.series.patient

    @property
    def latest_draw_id(self) -> int | None:
        """The patient's latest draw (entered in error aside), by the rules' order."""
        found = self.series.assessments
        return found[-1].draw.id if found else None


def worklist_order(item: WorklistItem) -> tuple[int, date, str, str, int, int, int]:
    """The worklist's order from the live assessment: what `ORDER_BY` sorts by in SQL.

    `rules.worklist_sort_key` (rank, day 1), then the patient (family and given
    name case-insensitively, then id), the cycle number and id: the rules know
    no names. A test pins `ORDER_BY` to this order.
    """
    rank, day = rules.worklist_sort_key(item.assessment, item.acknowledged)
    patient = item.patient
    name = (patient.family_name.lower(), patient.given_name.lower())
    return (rank, day, *name, patient.pk, item.cycle.number, item.cycle.pk)


def rank_on(today: date) -> Case:
    """The stored rank of the phase a cycle is in on `today` (see `assessment.ranks`)."""
    return Case(
        When(window_opens__gt=today, then=F("rank_before_window")),
        When(scheduled_date__gte=today, then=F("rank_in_window")),
        default=F("rank_after_day_1"),
    )


class _NameOrder(Lower):
    """A name lowercased and compared by code point, as Python compares `str.lower()`.

    PostgreSQL would otherwise compare by the database's locale (where "O'Neil"
    and "Oneill" interleave differently than in Python); SQLite compares bytes
    already (and lowercases ASCII letters only).
    """

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        sql, params = self.as_sql(compiler, connection, **extra)
        return f'{sql} COLLATE "C"', params


# `worklist_order`, key for key, as the database sorts: the stored rank of today's phase
# (annotated as "rank") stands for the live one; the cycle's id keeps pages apart.
ORDER_BY = (
    "rank",
    "scheduled_date",
    _NameOrder("therapy_line__patient__family_name"),
    _NameOrder("therapy_line__patient__given_name"),
    "therapy_line__patient_id",
    "number",
    "id",
)
# The worklist page's day view: by day 1 first, then the rules' order within each day.
ORDER_BY_DAY = ("scheduled_date", "rank", *ORDER_BY[2:])


def due_cycles(
    start: date,
    days: int,
    *,
    oncologist_id: int | None = None,
    flagged: bool = False,
    unacknowledged: bool = False,
    by_day: bool = False,
    among: TreatmentCycleQuerySet | None = None,
    today: date | None = None,
) -> DueCycles:
    """Upcoming cycles with day 1 in [start, start + days), in the worklist's order on `today`.

    The database sorts (and pages: slice the result) by `ORDER_BY`: the stored
    rank of the phase each cycle is in today, then day 1, family and given name
    (case-insensitively), patient, cycle number and id, the order `worklist_order`
    gives from the live assessment. `flagged`: only cycles with a flag (high,
    review or info). `unacknowledged`: only cycles with a high or review flag nobody
    has acknowledged. `by_day`: day 1 first, then the rules' order within each day
    (`ORDER_BY_DAY`, the page's day view). `among`: the cycles to choose from (a
    user's, from `patients.access.cycles`); every cycle when None.
    """
    cycles = TreatmentCycle.objects.all() if among is None else among
    due = (
        cycles.upcoming()
        .filter(scheduled_date__gte=start, scheduled_date__lt=start + timedelta(days=days))
        .annotate(rank=rank_on(today or timezone.localdate()))
    )
    if oncologist_id is not None:
        due = due.filter(therapy_line__patient__oncologist_id=oncologist_id)
    if flagged:
        due = due.filter(
            Q(rank__lt=rules.RANK_DRAW_DUE)
            | Q(
                rank__gte=rules.RANKS_PER_GROUP,
                rank__lt=rules.RANKS_PER_GROUP + rules.RANK_DRAW_DUE,
            )
        )
    if unacknowledged:
        due = due.filter(rank__lt=rules.RANK_DRAW_DUE)
    return DueCycles(due, by_day=by_day)


class DueCycles:
    """The cycles due, as a sequence that Django's and DRF's paginators can count and slice.

    Sorting thousands of cycles joined to their patients' names costs tens of
    milliseconds; but the first two sort keys, rank and day 1, are on the
    cycle. So one small query counts the cycles per (rank, day 1) group (a
    few dozen groups; it also gives the total), and a slice joins the names
    only in the groups it overlaps: the same order, a few hundred rows sorted
    instead of thousands. Two queries per page, whatever the cohort's size.
    """

    def __init__(self, due: QuerySet[TreatmentCycle], *, by_day: bool = False) -> None:
        self._due = due
        self._order = ORDER_BY_DAY if by_day else ORDER_BY
        self._group_order = ("scheduled_date", "rank") if by_day else ("rank", "scheduled_date")

    @property
    def queryset(self) -> QuerySet[TreatmentCycle]:
        """The cycles due, unordered and unpaged."""
        return self._due

    def groups(self) -> list[tuple[int, date, int]]:
        """(rank, day 1, how many) of the cycles due, in the list's order: one query, cached."""
        return self._groups

    @cached_property
    def _groups(self) -> list[tuple[int, date, int]]:
        return list(
            self._due.order_by()
            .values_list("rank", "scheduled_date")  # type: ignore[misc]  # annotated by due_cycles
            .annotate(n=Count("id"))
            .order_by(*self._group_order)
        )

    def count(self) -> int:
        return sum(n for _rank, _day, n in self._groups)

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[TreatmentCycle]:
        return iter(self._in_order(self._due))

    # Pages are slices. An index is refused, and the NoReturn overload says so to the
    # paginators' types, which ask for one.
    @overload
    def __getitem__(self, rows: int) -> NoReturn: ...
    @overload
    def __getitem__(self, rows: slice) -> list[TreatmentCycle]: ...
    def __getitem__(self, rows: int | slice) -> list[TreatmentCycle]:
        if not isinstance(rows, slice) or rows.step is not None:
            raise TypeError("a worklist is sliced into pages, not indexed")
        first, stop = rows.start or 0, rows.stop if rows.stop is not None else self.count()
        wanted: Q | None = None
        skip = before = 0
        for rank, day, n in self._groups:
            if before < stop and before + n > first:
                group = Q(rank=rank, scheduled_date=day)
                if wanted is None:  # the page's first group: skip its rows before the page
                    wanted, skip = group, first - before
                else:
                    wanted |= group
            before += n
        if wanted is None:
            return []
        found = self._in_order(self._due.filter(wanted))
        return list(found[skip : skip + stop - first])

    def _in_order(self, due: QuerySet[TreatmentCycle]) -> QuerySet[TreatmentCycle]:
        return due.select_related("therapy_line__patient").order_by(*self._order)


def worklist_items(
    cycles: Iterable[TreatmentCycle], today: date | None = None
) -> list[WorklistItem]:
    """The rows of a worklist page, in the order given, each assessed live on `today`.

    Four queries (the per-kind loads), whatever the page's size.
    """
    cycles = list(cycles)
    today = today or timezone.localdate()
    series = listed_series_for_many({c.therapy_line.patient for c in cycles})
    items = [_item(c, series[c.therapy_line.patient_id], today) for c in cycles]
    stale = [i.cycle.pk for i in items if _live_rank(i) != getattr(i.cycle, "rank", None)]
    if stale:
        # Only a settings change (cut-offs, window, clarity, time zone) without
        # `manage.py refresh_review_ranks` can do this: say so, loudly.
        logger.error(
            "Stored rank differs from the rules for cycles %s: the worklist order is "
            "stale; run `manage.py refresh_review_ranks`.",
            ", ".join(map(str, stale)),
        )
    return items


def _item(cycle: TreatmentCycle, series: PatientSeries, today: date) -> WorklistItem:
    found = series.cycle_assessment(cycle, today)
    shown = {(f.code, f.source) for f in found.flags}
    return WorklistItem(
        cycle=cycle,
        series=series,
        assessment=found,
        acknowledgements=[
            ack
            for ack, covers in zip(series.acknowledgements, series.covers, strict=True)
            if ack.cycle_id == cycle.pk or (ack.cycle_id is None and shown & covers.covers)
        ],
        acknowledged=series.cycle_acknowledged(found),
    )


def _live_rank(item: WorklistItem) -> int:
    return rules.cycle_rank(item.assessment, item.acknowledged)


@dataclass(frozen=True)
class WorklistPage(Generic[P]):
    """A page of the worklist: what the paginator gave, its cycles in order, and their
    rows assessed (all but those the caller said it already has)."""

    page: P
    items: list[WorklistItem]
    cycles: list[TreatmentCycle] = field(default_factory=list)


def worklist_page(
    start: date,
    days: int,
    paginate: Callable[[DueCycles], P],
    *,
    among: TreatmentCycleQuerySet | None,
    oncologist_id: int | None = None,
    flagged: bool = False,
    unacknowledged: bool = False,
    by_day: bool = False,
    known: Callable[[list[TreatmentCycle]], Collection[int]] = lambda cycles: (),
) -> WorklistPage[P]:
    """The worklist as the page and the API show it: the cycles due, in order, one page.

    `paginate` picks the page from the cycles due (Django's or DRF's paginator:
    both count and slice them); only that page's cycles are then assessed. `among`:
    the cycles the user may see (`patients.access.cycles`); None only for scripts.
    `by_day`: the page's day view (day 1 first); the API keeps the rules' order.
    `known`: given the page's cycles, the ids of those whose rows the caller has
    already (the page's cache of rendered rows): they are not assessed.
    """
    today = timezone.localdate()
    due = due_cycles(
        start,
        days,
        oncologist_id=oncologist_id,
        flagged=flagged,
        unacknowledged=unacknowledged,
        by_day=by_day,
        among=among,
        today=today,
    )
    page = paginate(due)
    cycles = list(page)
    have = known(cycles)
    return WorklistPage(
        page, worklist_items([c for c in cycles if c.pk not in have], today), cycles
    )


def acknowledgement_versions(
    patient_ids: Collection[int], *, among: QuerySet[Acknowledgement]
) -> dict[int, int]:
    """The id of each patient's latest acknowledgement (of a cycle or a result), 0 when none:
    one query. Acknowledgements are never deleted, so a new one always raises it.
    `among`: the acknowledgements the user may see (`patients.access.acknowledgements`)."""
    found = (
        among.filter(patient__in=patient_ids)
        .order_by()
        .values_list("patient")
        .annotate(latest=Max("id"))
    )
    return dict.fromkeys(patient_ids, 0) | dict(found)


def worklist(start: date, days: int, *, oncologist_id: int | None = None) -> list[WorklistItem]:
    """Every upcoming cycle with day 1 in [start, start + days), most severe first.

    Unpaged: for scripts and benchmarks; the page and the API show 50 at a time.
    """
    return worklist_page(start, days, list, among=None, oncologist_id=oncologist_id).items


def open_worklist_count(start: date, days: int, *, among: TreatmentCycleQuerySet, cap: int) -> int:
    """How many cycles due in the range have a high or review flag nobody acknowledged,
    counted only up to `cap + 1` (above `cap` means "more than `cap`").

    Counting them all read every cycle due in the range: at 100,000 patients, 31,000
    in a week, 10 ms on every page's header.
    """
    due = due_cycles(start, days, among=among, unacknowledged=True)
    return capped_count(due.queryset, cap)
