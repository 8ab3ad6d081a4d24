"""The inputs of a patient's chart and printable report, built from the assessed series.

patients.reports draws and typesets plain data and imports no models; this
module reads the model instances (the series' patient, lines, cycles and draws,
and the imaging rows) and turns them into that data. The chart views, the
report view and the patient page all build their inputs here.
"""

from __future__ import annotations

from datetime import date, datetime

from django.conf import settings
from django.utils import timezone

from patients import assessment, rules
from patients.models import Acknowledgement, ImagingAssessment, Patient
from patients.reports import ctc_report
from patients.reports.chart_data import ChartData, ImagingPoint
from patients.reports.report_data import Acknowledged, VoidedDraw


def imaging_of(patient: Patient) -> list[ImagingAssessment]:
    """The patient's imaging, oldest first, but what was entered in error: what the chart
    and the report show (the patient page lists the imaging in error too, marked)."""
    return list(patient.imaging.filter(entered_in_error=False).order_by("performed_on", "id"))


def chart_data(
    series: assessment.PatientSeries, imaging: list[ImagingAssessment], *, today: date
) -> ChartData:
    """The trend chart's data; `today` (the clinic's date) ends its x axis."""
    return ChartData(
        cancer_type=series.patient.cancer_type,
        cutoff=series.cutoff,
        assessments=series.assessments,
        lines=[assessment.line_in(line) for line in series.lines],
        cycles=[assessment.cycle_in(c) for c in series.cycles],
        imaging=[
            ImagingPoint(i.performed_on, i.get_modality_display(), i.response, i.note)
            for i in imaging
        ],
        today=today,
        time_zone=timezone.get_current_timezone_name(),
        acknowledged=frozenset(
            found.draw.id
            for found in rules.results_to_review(series.assessments)
            if found.draw.id is not None and series.result_acknowledged(found)
        ),
    )


def report_data(
    series: assessment.PatientSeries,
    imaging: list[ImagingAssessment],
    *,
    by: str,
    now: datetime,
) -> ctc_report.ReportData:
    """The report's data, generated at `now` (aware) by `by` (a username)."""
    patient = series.patient
    today = timezone.localdate(now)
    chart = chart_data(series, imaging, today=today)
    cycles = _cycles(series, today)
    return ctc_report.ReportData(
        patient_name=patient.name,
        mrn=patient.mrn,
        birth_date=patient.birth_date,
        sex=patient.get_sex_display(),
        cancer_type=patient.cancer_type,
        cutoff=series.cutoff,
        oncologist=_oncologist_name(patient),
        chart=chart,
        assessments=series.assessments,
        voided=[
            VoidedDraw(d.drawn_at, d.ctc_count, d.status, d.error_reason) for d in series.voided
        ],
        cycles=cycles,
        imaging=chart.imaging,
        accessions={d.pk: d.accession for d in series.draws if d.accession},
        comments={d.pk: d.comment for d in series.draws if d.comment},
        time_zone=settings.TIME_ZONE,
        generated_at=now,
        generated_by=by,
        cycle_reasons={c.pk: c.status_reason for c in series.cycles if c.status_reason},
        pre_cycle_window_days=settings.CTC_PRE_CYCLE_WINDOW_DAYS,
        clear_probability=settings.CTC_CLEAR_PROBABILITY,
        cycle_acknowledged=_cycle_acknowledgements(series, [found for _, _, found in cycles]),
        result_acknowledged=_result_acknowledgements(series),
    )


def _oncologist_name(patient: Patient) -> str:
    oncologist = patient.oncologist
    if oncologist is None:
        return ""
    return oncologist.get_full_name() or oncologist.get_username()


def _cycles(
    series: assessment.PatientSeries, today: date
) -> list[tuple[rules.LineIn, rules.CycleIn, rules.CycleAssessment]]:
    """Every cycle with its line and its assessment on `today`, by day 1."""
    lines = {line.pk: assessment.line_in(line) for line in series.lines}
    return [
        (lines[c.therapy_line_id], assessment.cycle_in(c), series.cycle_assessment(c, today))
        for c in sorted(series.cycles, key=lambda c: (c.scheduled_date, c.number))
    ]


def _cycle_acknowledgements(
    series: assessment.PatientSeries, found: list[rules.CycleAssessment]
) -> dict[int, Acknowledged]:
    """The cycles whose every high or review flag is acknowledged, with the latest
    acknowledgement that covers one of them (of the cycle, or of its sample)."""
    acknowledged = {}
    for cycle in found:
        if series.cycle_acknowledged(cycle):
            latest = _latest_covering(series, cycle.flags, cycle_id=cycle.cycle.id)
            acknowledged[cycle.cycle.id] = _acknowledged(latest)
    return acknowledged


def _result_acknowledgements(series: assessment.PatientSeries) -> dict[int, Acknowledged]:
    """The results needing review whose flags are all acknowledged, by the tube that
    stands for each, with the latest acknowledgement that covers one of them."""
    acknowledged = {}
    for found in rules.results_to_review(series.assessments):
        if found.draw.id is not None and series.result_acknowledged(found):
            latest = _latest_covering(series, series.result_flags(found))
            acknowledged[found.draw.id] = _acknowledged(latest)
    return acknowledged


def _latest_covering(
    series: assessment.PatientSeries, flags: tuple[rules.Flag, ...], *, cycle_id: int | None = None
) -> Acknowledgement:
    """The latest acknowledgement that covers one of these flags (there is one: callers
    ask only about acknowledged flags)."""
    return next(
        ack
        for ack, covers in reversed(list(zip(series.acknowledgements, series.covers, strict=True)))
        if any(rules.flag_covered(flag, [covers], cycle_id=cycle_id) for flag in flags)
    )


def _acknowledged(ack: Acknowledgement) -> Acknowledged:
    user = ack.acknowledged_by
    return Acknowledged(by=user.get_full_name() or user.get_username(), at=ack.acknowledged_at)
