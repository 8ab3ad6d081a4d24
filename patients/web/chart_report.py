"""A patient's trend chart (SVG, PNG; cached) and printable PDF report."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
)

from patients import access, assessment, audit
from patients.models import (
    AccessAction,
    ImagingAssessment,
    Patient,
)
from patients.reports import charts
from patients.reports import ctc_report as report

GET_POST = require_http_methods(["GET", "POST"])


# --- chart and report -------------------------------------------------------------------

# Bump when the drawing code changes, so no server serves a chart drawn the old way.
CHART_DESIGN = 1
CHART_CACHE_SECONDS = 24 * 3600
CHART_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def _chart_key(patient: Patient, fmt: str) -> str:
    """The cache key of a patient's chart: changes whenever what it shows changes.

    The patient's data version (bumped by every write that changes the chart),
    today's date (the x axis ends today), the cut-offs and the chart design.
    """
    cutoffs = ",".join(f"{k}={v}" for k, v in sorted(settings.CTC_CUTOFFS.items()))
    parts = [CHART_DESIGN, patient.pk, patient.data_version, timezone.localdate(), cutoffs, fmt]
    return "chart:" + ":".join(str(p) for p in parts)


def _chart(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    """The chart from the cache (drawn on a miss), or 304 when the client's copy is current.

    One look-up of the patient gives the cache key and the ETag both; a cached
    chart costs no other query of its own.
    """
    # Without the oncologist: a chart names none, and that join is about 4% of what a
    # cached chart costs.
    patient = access.patient(request.user, pk, related=())
    key = _chart_key(patient, fmt)
    etag = quote_etag(hashlib.sha256(key.encode()).hexdigest()[:32])
    not_modified = get_conditional_response(request, etag=etag)
    if not_modified is not None:
        return not_modified
    body = cache.get(key)
    if body is None:
        series = assessment.series_for(patient)
        data = charts_data(series, list(patient.imaging.order_by("performed_on", "id")))
        body = charts.trend_svg(data) if fmt == "svg" else charts.trend_png(data)
        cache.set(key, body, CHART_CACHE_SECONDS)
    return HttpResponse(body, content_type=CHART_TYPES[fmt], headers={"ETag": etag})


# Not in a transaction (ATOMIC_REQUESTS): a chart writes nothing to the database, and
# its access-log event is written by AuditMiddleware in a transaction of its own.
@transaction.non_atomic_requests
@require_GET
@login_required
@permission_required("patients.view_patient", raise_exception=True)
@audit.records_patient_read(AccessAction.CHART, "chart.svg")
def chart_svg(request: HttpRequest, pk: int) -> HttpResponse:
    return _chart(request, pk, "svg")


@transaction.non_atomic_requests
@require_GET
@login_required
@permission_required("patients.view_patient", raise_exception=True)
@audit.records_patient_read(AccessAction.CHART, "chart.png")
def chart_png(request: HttpRequest, pk: int) -> HttpResponse:
    return _chart(request, pk, "png")


@require_GET
@login_required
@permission_required("patients.view_patient", raise_exception=True)
def report_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    """The printable report for tumour boards, generated for this user now."""
    patient = access.patient(request.user, pk)
    series = assessment.series_for(patient)
    imaging = list(patient.imaging.order_by("performed_on", "id"))
    data = report_data(series, imaging, by=request.user.get_username())
    response = HttpResponse(report.report_pdf(data), content_type="application/pdf")
    # The file name carries no name or MRN: downloads folders are not private.
    response["Content-Disposition"] = f'inline; filename="ctc-report-{patient.pk}.pdf"'
    audit.record(request, AccessAction.REPORT, patient=patient, target="report.pdf")
    return response


def report_data(
    series: assessment.PatientSeries, imaging: list[ImagingAssessment], *, by: str
) -> report.ReportData:
    patient = series.patient
    chart = charts_data(series, imaging)
    lines = {line.pk: assessment.line_in(line) for line in series.lines}
    cycles = [
        (lines[c.therapy_line_id], assessment.cycle_in(c), series.cycle_assessment(c))
        for c in sorted(series.cycles, key=lambda c: (c.scheduled_date, c.number))
    ]
    return report.ReportData(
        patient_name=patient.name,
        mrn=patient.mrn,
        birth_date=patient.birth_date,
        sex=patient.get_sex_display(),
        cancer_type=patient.cancer_type,
        cutoff=series.cutoff,
        oncologist=patient.oncologist.get_full_name() or patient.oncologist.get_username()
        if patient.oncologist
        else "",
        chart=chart,
        assessments=series.assessments,
        voided=[
            report.VoidedDraw(d.drawn_at, d.ctc_count, d.status, d.error_reason)
            for d in series.voided
        ],
        cycles=cycles,
        imaging=chart.imaging,
        accessions={d.pk: d.accession for d in series.draws if d.accession},
        comments={d.pk: d.comment for d in series.draws if d.comment},
        time_zone=settings.TIME_ZONE,
        generated_at=timezone.now(),
        generated_by=by,
        cycle_reasons={c.pk: c.status_reason for c in series.cycles if c.status_reason},
        pre_cycle_window_days=settings.CTC_PRE_CYCLE_WINDOW_DAYS,
    )


def charts_data(
    series: assessment.PatientSeries, imaging: list[ImagingAssessment]
) -> charts.ChartData:
    return charts.ChartData(
        cancer_type=series.patient.cancer_type,
        cutoff=series.cutoff,
        assessments=series.assessments,
        lines=[assessment.line_in(line) for line in series.lines],
        cycles=[assessment.cycle_in(c) for c in series.cycles],
        imaging=[
            charts.ImagingPoint(i.performed_on, i.get_modality_display(), i.response)
            for i in imaging
        ],
        today=timezone.localdate(),
    )
