"""Load what the rules need, in a fixed number of queries, and ask `patients.rules`.

This is the seam between the database and the pure rules: it turns rows into
the rules' plain dataclasses and back into plain results for the API, the
pages and the charts. It decides nothing itself. The query count never grows
with the number of patients, cycles or draws: rows are fetched per kind for
all patients at once and grouped in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypeVar

from django.conf import settings
from django.db.models import Prefetch
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


def draw_in(draw: CTCDraw) -> rules.DrawIn:
    return rules.DrawIn(
        id=draw.pk,
        drawn_at=draw.drawn_at,
        drawn_on=timezone.localdate(draw.drawn_at),
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


def series_for_many(patients: Iterable[Patient]) -> dict[int, PatientSeries]:
    """Assessed series for many patients in three queries, whatever their number."""
    by_id = {p.pk: p for p in patients}
    draws = _grouped(
        CTCDraw.objects.filter(patient__in=by_id)
        .select_related("entered_by")
        .order_by("drawn_at", "id"),
        lambda d: d.patient_id,
    )
    lines = _grouped(
        TherapyLine.objects.filter(patient__in=by_id).order_by("line_number"),
        lambda line: line.patient_id,
    )
    cycles = _grouped(
        TreatmentCycle.objects.filter(therapy_line__patient__in=by_id)
        .select_related("therapy_line")
        .order_by("scheduled_date", "number"),
        lambda c: c.therapy_line.patient_id,
    )
    return {pk: _assess(patient, draws[pk], lines[pk], cycles[pk]) for pk, patient in by_id.items()}


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
) -> PatientSeries:
    cutoff = cutoff_for(patient)
    voided = [d for d in draws if d.entered_in_error]
    draws = [d for d in draws if not d.entered_in_error]
    assessments = rules.assess_draws(
        [draw_in(d) for d in draws],
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


def worklist(start: date, days: int, *, oncologist_id: int | None = None) -> list[WorklistItem]:
    """Upcoming cycles with day 1 in [start, start + days), most severe first.

    Then by day 1 and patient name; optionally only one oncologist's patients.
    A fixed number of queries: the cycles, the three per-kind loads for their
    patients, and the acknowledgements.
    """
    due = TreatmentCycle.objects.filter(
        status__in=UPCOMING,
        scheduled_date__gte=start,
        scheduled_date__lt=start + timedelta(days=days),
    )
    if oncologist_id is not None:
        due = due.filter(therapy_line__patient__oncologist_id=oncologist_id)
    cycles = list(
        due.select_related("therapy_line__patient").prefetch_related(
            Prefetch(
                "acknowledgements",
                queryset=Acknowledgement.objects.select_related("acknowledged_by").order_by(
                    "acknowledged_at"
                ),
            )
        )
    )
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
    return sorted(items, key=_worklist_order)


def _worklist_order(item: WorklistItem) -> tuple:
    patient = item.patient
    return (
        rules.SEVERITY_ORDER[item.assessment.severity],
        item.cycle.scheduled_date,
        patient.family_name.casefold(),
        patient.given_name.casefold(),
        patient.pk,
        item.cycle.number,
    )
