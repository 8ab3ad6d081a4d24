"""A patient's trend chart (SVG, PNG; cached) and printable PDF report."""

from __future__ import annotations

import hashlib
from datetime import date

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import (
    require_safe,
)

from patients import access, assessment, audit
from patients.assessment.loader import rules_settings
from patients.models import (
    AccessAction,
    Patient,
)
from patients.reports import charts
from patients.reports import ctc_report as report
from patients.reports.chart_data import ChartData, ChartIdentity
from patients.web import documents

# --- chart and report -------------------------------------------------------------------

CHART_CACHE_SECONDS = 24 * 3600
CHART_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def download_name(kind: str, patient: Patient, day: date, extension: str) -> str:
    """A downloaded file's name: "ctc-chart-42-2026-12-03.png".

    Distinct per patient and day, and free of names and MRNs: downloads folders
    and e-mail attachments are not private.
    """
    return f"ctc-{kind}-{patient.pk}-{day:%Y-%m-%d}.{extension}"


def attachment(filename: str) -> str:
    """The Content-Disposition of a download (file names here are plain ASCII)."""
    return f'attachment; filename="{filename}"'


def chart_cache_key(patient: Patient, *, today: date, fmt: str, acknowledged: int) -> str:
    """The cache key of the patient's chart in `fmt` ("svg", "png" or "inline").

    `acknowledged`, the id of the patient's latest acknowledgement, is part of it:
    an acknowledgement changes the chart (its points say so) without changing the
    patient's data version.
    """
    return charts.cache_key(
        patient_id=patient.pk,
        data_version=patient.data_version,
        acknowledged=acknowledged,
        today=today,
        cutoffs=settings.CTC_CUTOFFS,
        settings=rules_settings(),
        time_zone=timezone.get_current_timezone_name(),
        fmt=fmt,
    )


def identity_of(patient: Patient, today: date) -> ChartIdentity:
    return ChartIdentity(
        name=patient.name, mrn=patient.mrn, birth_date=patient.birth_date, made_on=today
    )


def inline_chart(patient: Patient, data: ChartData, *, label: str, acknowledged: int) -> SafeString:
    """The chart's markup for the patient page (cached like the downloads): safe to
    embed, since it is our own SVG with record text escaped by the serialiser.
    `acknowledged`: the latest acknowledgement's id (the page has them all loaded)."""
    key = chart_cache_key(patient, today=data.today, fmt="inline", acknowledged=acknowledged)
    markup = cache.get(key)
    if markup is None:
        markup = charts.trend_svg_inline(data, label=label)
        cache.set(key, markup, CHART_CACHE_SECONDS)
    return mark_safe(markup)  # noqa: S308 - built by ElementTree, which escapes all text


def _chart(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    """The chart from the cache (drawn on a miss), or 304 when the client's copy is current.

    One look-up of the patient gives the cache key and the ETag both, decided before
    the cache is read: a 304 reads neither the cache nor the patient's records. It is a
    download: it says whose chart it is and when it was made, and comes as an attachment.
    """
    # One query gives the key and the ETag both (without the oncologist: a chart names
    # none), so that a 304 or a cached chart costs no other query of the view's own.
    patient, acknowledged = access.patient_and_latest_acknowledgement(request.user, pk)
    today = timezone.localdate()
    key = chart_cache_key(patient, today=today, fmt=fmt, acknowledged=acknowledged)
    etag = quote_etag(hashlib.sha256(key.encode()).hexdigest()[:32])
    not_modified = get_conditional_response(request, etag=etag)
    if not_modified is not None:
        return not_modified
    body = cache.get(key)
    if body is None:
        series = assessment.series_for(patient)
        data = documents.chart_data(series, documents.imaging_of(patient), today=today)
        identity = identity_of(patient, today)
        if fmt == "svg":
            body = charts.trend_svg(data, identity=identity)
        else:
            body = charts.trend_png(data, identity=identity)
        cache.set(key, body, CHART_CACHE_SECONDS)
    disposition = attachment(download_name("chart", patient, today, fmt))
    headers = {"ETag": etag, "Content-Disposition": disposition}
    return HttpResponse(body, content_type=CHART_TYPES[fmt], headers=headers)


# Not in a transaction (ATOMIC_REQUESTS): a chart writes nothing to the database, and
# its access-log event is written by AuditMiddleware in a transaction of its own.
@transaction.non_atomic_requests
@require_safe
@login_required
@permission_required("patients.view_patient", raise_exception=True)
@audit.records_patient_read(AccessAction.CHART, "chart.svg")
def chart_svg(request: HttpRequest, pk: int) -> HttpResponse:
    return _chart(request, pk, "svg")


@transaction.non_atomic_requests
@require_safe
@login_required
@permission_required("patients.view_patient", raise_exception=True)
@audit.records_patient_read(AccessAction.CHART, "chart.png")
def chart_png(request: HttpRequest, pk: int) -> HttpResponse:
    return _chart(request, pk, "png")


@require_safe
@login_required
@permission_required("patients.view_patient", raise_exception=True)
def report_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    """The printable report for tumour boards, generated for this user now."""
    patient = access.patient(request.user, pk)
    draws = patient.draws.count()
    if draws > settings.CTCTRACK_REPORT_MAX_DRAWS:
        return _report_too_long(request, patient, draws)
    series = assessment.series_for(patient)
    imaging = documents.imaging_of(patient)
    data = documents.report_data(
        series, imaging, by=request.user.get_username(), now=timezone.now()
    )
    response = HttpResponse(report.report_pdf(data), content_type="application/pdf")
    # The file name carries no name or MRN: downloads folders are not private.
    name = download_name("report", patient, timezone.localdate(), "pdf")
    response["Content-Disposition"] = attachment(name)
    audit.record(request, AccessAction.REPORT, patient=patient, target="report.pdf")
    return response


def _report_too_long(request: HttpRequest, patient: Patient, draws: int) -> HttpResponse:
    """Refused before anything is drawn: thousands of draws would hold a worker for minutes.

    422, not 413: the request is a bodiless GET that is well-formed and understood;
    it is this patient's record that the report cannot cover (413 would tell the
    client to send a smaller request, and there is nothing smaller to send).
    """
    context = {"patient": patient, "draws": draws, "limit": settings.CTCTRACK_REPORT_MAX_DRAWS}
    return render(request, "patients/report_too_long.html", context, status=422)
