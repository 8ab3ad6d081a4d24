"""The stored ranks: what the database sorts the worklist and the results to review by.

The worklist and the results to review are sorted and paged by the database;
only the rows of a page are then assessed, live, for the flags shown. So each
cycle keeps its `rules.cycle_rank` for each phase of its window (the state
changes only between them, see `rules.phase_days`), and the tube that stands for
a result needing review keeps its severity rank and whether it is acknowledged.
Every write the rules read (acknowledgements included) refreshes them in its
transaction; `manage.py refresh_review_ranks` after a change of the settings.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, NamedTuple

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.conf import settings
from django.db import connections, router
from django.db.models import Q
from django.utils import timezone

from patients import rules
from patients.assessment.loader import VALUES, DrawRow, Loader, PatientRows, cycle_in
from patients.assessment.series import PatientSeries
from patients.models import CTCDraw, TreatmentCycle

# Patients assessed per round when refreshing ranks in bulk: bounds memory
# (every draw of a patient is loaded) and keeps `IN (...)` lists short for SQLite.
RANK_BATCH = 500
# Rows per `UPDATE ... FROM (VALUES ...)` when storing cycle ranks on PostgreSQL: at
# 2,000 the planner joins by scanning the whole table, at 500 through its primary key.
UPDATE_BATCH = 500

CycleRanks = tuple[int, int, int, date]  # before the window, in it, after day 1; opening
ResultRank = tuple[int | None, bool]  # 0 high / 1 review / None; acknowledged
NOT_TO_REVIEW: ResultRank = (None, False)


class RanksChanged(NamedTuple):
    """How many cycles and how many tubes had their stored ranks changed."""

    cycles: int = 0
    results: int = 0


class TubesByDay:
    """A patient's assessed tubes, and those in a window found by bisection.

    `rules.assess_cycle` reads only the tubes in the cycle's pre-cycle window; a
    patient's ranks assess every cycle up to three times (`rules.assess_cycle_phases`),
    and scanning every tube each time was a fifth of a bulk import's rank refresh.
    Handing it the window's tubes alone (in the same order) gives the same answer.
    """

    def __init__(self, assessments: Sequence[rules.DrawAssessment]) -> None:
        self.assessments = assessments
        self.days = [a.draw.drawn_on for a in assessments]
        # The rules give them oldest first; should they not be by day, nothing is cut.
        self.by_day = all(a <= b for a, b in zip(self.days, self.days[1:], strict=False))

    def between(self, first: date, last: date) -> Sequence[rules.DrawAssessment]:
        """The tubes drawn from `first` to `last` (local days, inclusive), in their order."""
        if not self.by_day:
            return self.assessments
        return self.assessments[bisect_left(self.days, first) : bisect_right(self.days, last)]


def cycle_ranks(
    cycle: rules.CycleIn,
    assessments: Sequence[rules.DrawAssessment] | TubesByDay,
    covers: Sequence[rules.AcknowledgementIn],
    window_days: int,
) -> CycleRanks:
    """`rules.cycle_rank` of the cycle on one day of each phase, and its window's opening.

    The cycle is assessed once for the three phases unless its state depends on
    the day (`rules.assess_cycle_phases`); an assessment standing for several phases
    is ranked once.

    `assessments`: the patient's tubes, or a `TubesByDay` of them when ranking many
    cycles of the patient (only the window's tubes are then handed to the rules).
    """
    if isinstance(assessments, TubesByDay):
        assessments = assessments.between(*rules.pre_cycle_window(cycle, window_days))
    ranks: list[int] = []
    ranked: rules.CycleAssessment | None = None
    for found in rules.assess_cycle_phases(cycle, assessments, window_days):
        if found is not ranked:  # the phases often share one assessment: rank it once
            acknowledged = rules.acknowledged(found.flags, covers, cycle_id=cycle.id)
            rank = rules.cycle_rank(found, acknowledged)
            ranked = found
        ranks.append(rank)
    return (ranks[0], ranks[1], ranks[2], found.window[0])


def result_ranks(
    assessments: Sequence[rules.DrawAssessment], covers: Sequence[rules.AcknowledgementIn]
) -> dict[int, ResultRank]:
    """Each tube's results-to-review rank: set on the tube that stands for the result."""
    ranks: dict[int, ResultRank] = {a.draw.id: (None, False) for a in assessments if a.draw.id}
    for found in rules.results_to_review(assessments):
        if found.draw.id is not None:
            severity = rules.highest_severity(found.flags)
            ranks[found.draw.id] = (
                rules.SEVERITY_ORDER[severity],
                rules.acknowledged(found.flags, covers),
            )
    return ranks


def stored_cycle_ranks(cycle: Any) -> CycleRanks:
    return (
        cycle.rank_before_window,
        cycle.rank_in_window,
        cycle.rank_after_day_1,
        cycle.window_opens,
    )


def refresh_review_ranks(patient_ids: Iterable[int], *, apps: Apps = django_apps) -> RanksChanged:
    """Store the ranks of every cycle and result of these patients where they changed.

    Called by the ORM path of the bulk imports in their transaction (a single
    write ranks from its own assessment: `store_review_ranks`; COPY ranks
    before it writes: `rank_with_unwritten`), by `manage.py
    refresh_review_ranks` after a change of the settings the rules read
    (cut-offs, window, clarity, replicate variation, time zone) and by the
    migrations that added the ranks. Per round of `RANK_BATCH` patients: five
    queries to load, one `UPDATE` per distinct value and one that takes the
    tubes entered in error off the results to review (derived data: no history,
    no version bump). Returns how many cycles and tubes changed.
    """
    changed, _ = _refresh(patient_ids, apps=apps, unwritten=())
    return changed


def rank_with_unwritten(
    patient_ids: Iterable[int], unwritten: Sequence[DrawRow]
) -> tuple[RanksChanged, dict[int, ResultRank]]:
    """The ranks of these patients with draws about to be written among their rows.

    For a bulk import that takes its draws' ids first and writes them after
    (COPY): the rows on record are loaded, the `unwritten` draws (`DrawRow`s,
    ids included) added to their patients', and all
    assessed. The ranks of the cycles and of the draws on record are stored
    where they changed, as `refresh_review_ranks` stores them; the unwritten
    draws' ranks are returned (draw id -> rank) for the writer to write with
    them, rather than written empty and updated (an `UPDATE` of every new row:
    a ninth of a 100,000-row import).
    """
    return _refresh(patient_ids, apps=django_apps, unwritten=unwritten)


def _refresh(
    patient_ids: Iterable[int], *, apps: Apps, unwritten: Sequence[DrawRow]
) -> tuple[RanksChanged, dict[int, ResultRank]]:
    cycle_model = apps.get_model("patients", "TreatmentCycle")
    draw_model = apps.get_model("patients", "CTCDraw")
    window = settings.CTC_PRE_CYCLE_WINDOW_DAYS
    zone = timezone.get_current_timezone()
    adding: defaultdict[int, list[DrawRow]] = defaultdict(list)
    for row in unwritten:
        adding[row.patient_id].append(row)
    unwritten_ranks: dict[int, ResultRank] = {}
    changed_cycles = changed_results = 0
    for batch in _chunks(sorted(set(patient_ids)), RANK_BATCH):
        cycles: defaultdict[CycleRanks, list[int]] = defaultdict(list)
        results: defaultdict[ResultRank, list[int]] = defaultdict(list)
        for pk, rows in _patients(batch, Loader(VALUES, apps)).items():
            if pk in adding:  # the rules put them in order (drawn_at, then id)
                rows.draws = [*rows.draws, *adding[pk]]
            assessments = rows.assess(zone)
            covers = rows.acknowledged()
            tubes = TubesByDay(assessments)
            for cycle in rows.cycles:
                live = cycle_ranks(cycle_in(cycle), tubes, covers, window)
                if live != stored_cycle_ranks(cycle):
                    cycles[live].append(cycle.id)
            stored = {d.id: (d.review_rank, d.review_acknowledged) for d in rows.draws}
            new = {row.id for row in adding.get(pk, ())}
            for draw_id, live_result in result_ranks(assessments, covers).items():
                if draw_id in new:
                    unwritten_ranks[draw_id] = live_result
                elif live_result != stored[draw_id]:
                    results[live_result].append(draw_id)
        changed_cycles += _store_cycles(cycles, cycle_model)
        changed_results += _store_results(results, draw_model)
        changed_results += _clear_voided(batch, draw_model)  # the loader reads none of them
    return RanksChanged(changed_cycles, changed_results), unwritten_ranks


def store_review_ranks(series: PatientSeries) -> RanksChanged:
    """Store the ranks that `series` gives its patient's cycles and results, where they changed.

    For a write that has just assessed the patient (`services._touch`): the
    ranks come from that assessment, not from loading the rows again, and the
    series' rows then hold the ranks stored. Returns how many changed.
    """
    window = settings.CTC_PRE_CYCLE_WINDOW_DAYS
    cycles: defaultdict[CycleRanks, list[int]] = defaultdict(list)
    tubes = TubesByDay(series.assessments)
    for cycle in series.cycles:
        live = cycle_ranks(cycle_in(cycle), tubes, series.covers, window)
        if live != stored_cycle_ranks(cycle):
            cycles[live].append(cycle.pk)
            (
                cycle.rank_before_window,
                cycle.rank_in_window,
                cycle.rank_after_day_1,
                cycle.window_opens,
            ) = live
    results: defaultdict[ResultRank, list[int]] = defaultdict(list)
    by_id = {d.pk: d for d in series.draws}
    for draw_id, live_result in result_ranks(series.assessments, series.covers).items():
        draw = by_id[draw_id]
        if live_result != (draw.review_rank, draw.review_acknowledged):
            results[live_result].append(draw_id)
            draw.review_rank, draw.review_acknowledged = live_result
    for draw in series.voided:  # entered in error: no longer a result to review
        if (draw.review_rank, draw.review_acknowledged) != NOT_TO_REVIEW:
            results[NOT_TO_REVIEW].append(draw.pk)
            draw.review_rank, draw.review_acknowledged = NOT_TO_REVIEW
    return RanksChanged(_store_cycles(cycles, TreatmentCycle), _store_results(results, CTCDraw))


def _clear_voided(patient_ids: Sequence[int], draw_model: Any) -> int:
    """Take these patients' tubes entered in error off the results to review."""
    stale = Q(review_rank__isnull=False) | Q(review_acknowledged=True)
    return int(
        draw_model.objects.filter(stale, patient__in=patient_ids, entered_in_error=True).update(
            review_rank=None, review_acknowledged=False
        )
    )


def _store_cycles(by_ranks: Mapping[CycleRanks, Sequence[int]], cycle_model: Any) -> int:
    connection = connections[router.db_for_write(cycle_model)]
    if connection.vendor == "postgresql":
        rows = [(pk, *ranks) for ranks, cycle_ids in by_ranks.items() for pk in cycle_ids]
        return _update_from_values(
            connection,
            cycle_model._meta.db_table,
            ("rank_before_window", "rank_in_window", "rank_after_day_1", "window_opens"),
            "(%s, %s::smallint, %s::smallint, %s::smallint, %s::date)",
            rows,
        )
    changed = 0
    for (before, within, after, opens), cycle_ids in by_ranks.items():
        for ids in _chunks(cycle_ids, RANK_BATCH):
            changed += cycle_model.objects.filter(pk__in=ids).update(
                rank_before_window=before,
                rank_in_window=within,
                rank_after_day_1=after,
                window_opens=opens,
            )
    return changed


def _store_results(by_rank: Mapping[ResultRank, Sequence[int]], draw_model: Any) -> int:
    changed = 0
    for (rank, acknowledged), draw_ids in by_rank.items():
        for ids in _chunks(draw_ids, RANK_BATCH):
            changed += draw_model.objects.filter(pk__in=ids).update(
                review_rank=rank, review_acknowledged=acknowledged
            )
    return changed


def _update_from_values(
    connection: Any,
    table: str,
    columns: Sequence[str],
    template: str,
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """Each row's `columns` set by id, `UPDATE_BATCH` rows a statement (PostgreSQL).

    A cycle's ranks include its window's opening, so nearly every changed cycle
    has values of its own: one `UPDATE ... WHERE id IN` per distinct value was one
    statement per cycle, a tenth of a bulk import. Derived columns: no history.
    """
    assignments = ", ".join(f"{column} = v.{column}" for column in columns)
    changed = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPDATE_BATCH):
            batch = rows[start : start + UPDATE_BATCH]
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} "
                f"FROM (VALUES {', '.join([template] * len(batch))}) "
                f"AS v(id, {', '.join(columns)}) WHERE t.id = v.id",
                [value for row in batch for value in row],
            )
            changed += cursor.rowcount
    return changed


def _patients(patient_ids: Sequence[int], loader: Loader) -> dict[int, PatientRows]:
    """Every patient's rows, read as plain values: a bulk import refreshes thousands of
    patients, and building their draws as objects took most of its time."""
    return loader.load(loader.cancer_types(patient_ids))


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    # itertools.batched is Python 3.12.
    return (items[k : k + size] for k in range(0, len(items), size))
