"""Turn model rows and what the rules decided into rows the templates only have to display.

No queries and no decisions here. Every value is put into words by
patients.wording, the module the report, the charts and the exports use too,
so the worklist, the patient pages and the report say things the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.utils.safestring import SafeString, mark_safe

from patients import rules, wording
from patients.assessment import PatientSeries, WorklistItem
from patients.models import Acknowledgement, CTCDraw, Patient, TreatmentCycle
from patients.reports.sparkline import sparkline_svg


@dataclass(frozen=True)
class DrawRow:
    draw: CTCDraw
    found: rules.DrawAssessment | None  # None when entered in error
    rate_text: str
    ci_text: str
    category: str  # "favourable", "unfavourable" or ""
    volume_text: str  # "7.5", "4.25": no trailing zeros


@dataclass(frozen=True)
class WorklistRow:
    cycle: TreatmentCycle
    patient: Patient
    severity: str  # "high", "review", "info" or "none"
    flags: Sequence[rules.Flag]
    latest: DrawRow | None
    sparkline: SafeString
    acknowledgements: Sequence[Acknowledgement]


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    category: str
    rate_text: str
    latest_drawn_at: datetime | None
    next_cycle_on: date | None
    next_cycle_number: int | None
    cutoff: int | None


def rate_text(rate: float | None, qualifier: str = "") -> str:
    """'none detected in 7.5 mL', '7 CTC/7.5 mL', '> 1000 CTC/7.5 mL' (a lower bound), or ''
    when not evaluable."""
    return "" if rate is None else wording.count_phrase(rate, qualifier=qualifier)


def ci_text(ci95: tuple[float, float] | None) -> str:
    """'1.62–11.67': two decimals on the pages (the report rounds by magnitude; see wording)."""
    return "" if ci95 is None else wording.interval_text_2dp(ci95)


def draw_row(draw: CTCDraw, found: rules.DrawAssessment | None) -> DrawRow:
    volume = wording.volume_text(draw.blood_volume_ml)
    if found is None:
        return DrawRow(draw, None, "", "", "", volume)
    return DrawRow(
        draw=draw,
        found=found,
        rate_text=rate_text(found.rate_per_7_5_ml, draw.count_qualifier),
        ci_text=ci_text(found.ci95),
        category=str(found.category or ""),
        volume_text=volume,
    )


def draw_rows(series: PatientSeries) -> list[DrawRow]:
    """Every draw on record, newest first, with what the rules said about it."""
    rows = [draw_row(d, series.by_draw_id.get(d.pk)) for d in series.all_draws()]
    return list(reversed(rows))


def worklist_rows(items: Sequence[WorklistItem]) -> list[WorklistRow]:
    return [_worklist_row(item) for item in items]


def _worklist_row(item: WorklistItem) -> WorklistRow:
    series = item.series
    latest = item.latest_draw
    rates = [a.rate_per_7_5_ml for a in series.assessments]
    return WorklistRow(
        cycle=item.cycle,
        patient=item.patient,
        severity=str(item.assessment.severity or "none"),
        flags=item.assessment.flags,
        latest=draw_row(latest, series.by_draw_id.get(latest.pk)) if latest else None,
        # Our own SVG built from numbers only (no user text): safe to inline.
        sparkline=mark_safe(sparkline_svg(rates, series.cutoff).decode()),  # noqa: S308
        acknowledgements=item.acknowledgements,
    )


def patient_summary(patient: Patient, cutoffs: Mapping[str, int]) -> PatientRow:
    """A patient-list row from the annotations of `PatientQuerySet.with_summary`."""
    cutoff = rules.cutoff_for(patient.cancer_type, cutoffs)
    count: int | None = patient.latest_count  # type: ignore[attr-defined]
    volume: Decimal | None = patient.latest_volume  # type: ignore[attr-defined]
    rate = rules.rate_per_7_5_ml(count, volume) if count is not None and volume else None
    category = rules.categorize(rate, cutoff) if rate is not None and cutoff is not None else ""
    return PatientRow(
        patient=patient,
        category=str(category),
        rate_text=rate_text(rate, patient.latest_qualifier or ""),  # type: ignore[attr-defined]
        latest_drawn_at=patient.latest_drawn_at,  # type: ignore[attr-defined]
        next_cycle_on=patient.next_cycle_on,  # type: ignore[attr-defined]
        next_cycle_number=patient.next_cycle_number,  # type: ignore[attr-defined]
        cutoff=cutoff,
    )
