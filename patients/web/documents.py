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
from patients.models import ImagingAssessment, Patient
from patients.reports import ctc_report
from patients.reports.chart_data import ChartData, ImagingPoint
from patients.reports.report_data import VoidedDraw


def imaging_of(patient: Patient) -> list[ImagingAssessment]:
    """The patient's imaging, oldest first: what the chart, the report and the page show."""
    return list(patient.imaging.order_by("performed_on", "id"))


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
            ImagingPoint(i.performed_on, i.get_modality_display(), i.response) for i in imaging
        ],
        today=today,
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
    chart = chart_data(series, imaging, today=timezone.localdate(now))
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
        cycles=_cycles(series),
        imaging=chart.imaging,
        accessions={d.pk: d.accession for d in series.draws if d.accession},
        comments={d.pk: d.comment for d in series.draws if d.comment},
        time_zone=settings.TIME_ZONE,
        generated_at=now,
        generated_by=by,
        cycle_reasons={c.pk: c.status_reason for c in series.cycles if c.status_reason},
        pre_cycle_window_days=settings.CTC_PRE_CYCLE_WINDOW_DAYS,
        clear_probability=settings.CTC_CLEAR_PROBABILITY,
    )


def _oncologist_name(patient: Patient) -> str:
    oncologist = patient.oncologist
    if oncologist is None:
        return ""
    return oncologist.get_full_name() or oncologist.get_username()


def _cycles(
    series: assessment.PatientSeries,
) -> list[tuple[rules.LineIn, rules.CycleIn, rules.CycleAssessment]]:
    """Every cycle with its line and assessment, by day 1."""
    lines = {line.pk: assessment.line_in(line) for line in series.lines}
    return [
        (lines[c.therapy_line_id], assessment.cycle_in(c), series.cycle_assessment(c))
        for c in sorted(series.cycles, key=lambda c: (c.scheduled_date, c.number))
    ]
