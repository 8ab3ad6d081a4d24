"""A patient's series: every draw, line and cycle, and what the rules said about them.

What the patient page, the API, the charts, the report and the exports show.
Loaded for any number of patients in three queries (`assessment.loader`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import tzinfo

from django.apps import apps as django_apps
from django.apps.registry import Apps
from django.conf import settings
from django.utils import timezone

from patients import rules
from patients.assessment.loader import INSTANCES, Loader, PatientRows, cycle_in
from patients.models import CTCDraw, Patient, TherapyLine, TreatmentCycle


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
        upcoming = [c for c in self.cycles if c.status in rules.UPCOMING_CYCLE_STATUSES]
        return sorted(upcoming, key=lambda c: (c.scheduled_date, c.therapy_line_id, c.number))


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
    rows = Loader(INSTANCES, apps).load({pk: p.cancer_type for pk, p in by_id.items()})
    tz = timezone.get_current_timezone()
    return {pk: _series(patient, rows[pk], tz) for pk, patient in by_id.items()}


def _series(patient: Patient, rows: PatientRows, tz: tzinfo) -> PatientSeries:
    assessments = rows.assess(tz)
    by_id = {d.pk: d for d in rows.draws if not d.entered_in_error}
    return PatientSeries(
        patient,
        cutoff_for(patient),
        [by_id[a.draw.id] for a in assessments],
        assessments,
        rows.lines,
        rows.cycles,
        [d for d in rows.draws if d.entered_in_error],
    )
