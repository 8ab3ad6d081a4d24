"""The clinicians' pages: thin function views that fetch, ask the rules, call the services.

Every view states its HTTP method, then login, then the permission it needs
(an anonymous user is sent to the login page; a user without the permission
gets 403). Every patient lookup goes through `patients_for_user` (most through
`get_patient_for_user`), the one place where care-team scoping would be added.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag, url_has_allowed_host_and_scheme
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)

from patients import assessment, audit, charts, report, services
from patients.forms import (
    AcknowledgeForm,
    CycleForm,
    DrawForm,
    EnteredInErrorForm,
    ImagingForm,
    PatientForm,
    TherapyLineForm,
    WorklistFilterForm,
    apply_service_errors,
    focus_first_error,
)
from patients.models import (
    AccessAction,
    Acknowledgement,
    CTCDraw,
    CycleStatus,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.presenters import draw_rows, patient_summary, worklist_rows

GET_POST = require_http_methods(["GET", "POST"])


def patients_for_user(request: HttpRequest) -> QuerySet[Patient]:
    """The patients this user may see (one clinic: every clinician sees every patient)."""
    return Patient.objects.all()


def get_patient_for_user(request: HttpRequest, pk: int) -> Patient:
    """The patient, if this user may see them, with their oncologist; else 404."""
    return get_object_or_404(patients_for_user(request).select_related("oncologist"), pk=pk)


# --- worklist ----------------------------------------------------------------------

WORKLIST_PAGE_SIZE = 50


@require_GET
@login_required
@permission_required("patients.view_treatmentcycle", raise_exception=True)
def worklist(request: HttpRequest) -> HttpResponse:
    """The cycles due, most severe first: what a nurse opens every morning.

    The database sorts and pages the cycles by their stored review rank; only
    the page's rows are assessed, live, for the flags shown.
    """
    form = WorklistFilterForm(request.GET or None)
    start, days = form.start_date(timezone.localdate()), form.day_count()
    oncologist = form.cleaned_data.get("oncologist") if form.is_valid() else None
    due = assessment.due_cycles(
        start,
        days,
        oncologist_id=oncologist.pk if oncologist else None,
        flagged=bool(form.is_valid() and form.cleaned_data.get("flagged")),
    )
    page = Paginator(due, WORKLIST_PAGE_SIZE).get_page(request.GET.get("page"))
    items = assessment.worklist_items(page.object_list)
    end = start + timedelta(days=days - 1)
    what = f"worklist {start}..{end}" + (f" page {page.number}" if page.number > 1 else "")
    audit.record_read(
        request,
        AccessAction.WORKLIST,
        patient_ids=[item.patient.pk for item in items],
        what=what,
    )
    ctx = {
        "form": form,
        "start": start,
        "end": end,
        "rows": worklist_rows(items),
        "page": page,
        "page_query": _without_page(request),
        "showing": _showing(page),
        "ack_form": AcknowledgeForm(),
    }
    return render(request, "patients/worklist.html", ctx)


def _showing(page: Page) -> str:
    """'1–50 of 3,312': the rows shown and how many are due."""
    count = page.paginator.count
    return f"{page.start_index():,}–{page.end_index():,} of {count:,}" if count else "0"


def _without_page(request: HttpRequest) -> str:
    """The filters of this request as a query string for the pager's links, minus `page`."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_POST
@login_required
@permission_required("patients.add_acknowledgement", raise_exception=True)
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    cycle = get_object_or_404(TreatmentCycle.objects.select_related("therapy_line"), pk=pk)
    patient = get_patient_for_user(request, cycle.therapy_line.patient_id)
    form = AcknowledgeForm(request.POST)
    if form.is_valid():
        flags = assessment.series_for(patient).cycle_assessment(cycle).flags
        try:
            services.acknowledge_cycle(
                cycle=cycle, by=request.user, note=form.cleaned_data["note"], flags=flags
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
    if not form.is_valid():
        for message in form.errors.get("note", form.non_field_errors()):
            messages.error(request, f"Not acknowledged: {message}")
    else:
        messages.success(request, f"Acknowledged cycle {cycle.number} for {patient.name}.")
    return _back(request, fallback=reverse("patients:worklist"))


def _back(request: HttpRequest, *, fallback: str) -> HttpResponseRedirect:
    """Redirect to the safe `next` the form came from, or the fallback."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    # Not redirect(): it would try a `next` such as "x" as a view name (NoReverseMatch, a 500).
    return HttpResponseRedirect(target if safe and target else fallback)


# --- patients ----------------------------------------------------------------------


# The patient list's search text, kept in the session (see patient_list).
PATIENT_SEARCH_KEY = "patient_search"


@GET_POST
@login_required
@permission_required("patients.view_patient", raise_exception=True)
def patient_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # A search is a name or an MRN: posted, kept in the session, and the list shown at
        # a plain URL, so it never lands in browser history, bookmarks or proxy logs.
        # PostgreSQL refuses NUL in a query; nobody searches for one (DRF drops it too).
        text = request.POST.get("q", "").replace("\x00", "").strip()[:100]
        request.session[PATIENT_SEARCH_KEY] = text
        return redirect("patients:list")
    query = request.session.get(PATIENT_SEARCH_KEY, "")
    today = timezone.localdate()
    patients = Patient.objects.search(query).with_summary(today).select_related("oncologist")
    page = Paginator(patients, 25).get_page(request.GET.get("page"))
    # The search text may be a name or an MRN: the log says only that there was one.
    what = f"patient list page {page.number}{' (search)' if query else ''}"
    patient_ids = [p.pk for p in page.object_list]
    audit.record_read(request, AccessAction.PATIENT_LIST, patient_ids=patient_ids, what=what)
    ctx = {
        "q": query,
        "page": page,
        "rows": [patient_summary(p, settings.CTC_CUTOFFS) for p in page.object_list],
    }
    return render(request, "patients/patient_list.html", ctx)


@require_GET
@login_required
@permission_required("patients.view_patient", raise_exception=True)
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    series = assessment.series_for(patient)
    imaging = list(patient.imaging.order_by("performed_on", "id"))
    acks = list(
        Acknowledgement.objects.filter(cycle__therapy_line__patient=patient)
        .select_related("acknowledged_by", "cycle__therapy_line")
        .order_by("-acknowledged_at")
    )
    ctx = {
        "patient": patient,
        "series": series,
        "age": _age(patient.birth_date, timezone.localdate()),
        "draw_rows": draw_rows(series),
        "lines": _lines_with_cycles(series),
        "imaging": imaging,
        "acknowledgements": acks,
        "chart_alt": charts.chart_text_alternative(charts_data(series, imaging)),
        "ack_form": AcknowledgeForm(),
        "history": audit.change_history(patient) if request.user.is_staff else None,
    }
    audit.record(request, AccessAction.VIEW, patient=patient, target="patient page")
    return render(request, "patients/patient_detail.html", ctx)


def _age(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _lines_with_cycles(series: assessment.PatientSeries) -> list[dict[str, Any]]:
    by_line: dict[int, list[dict[str, Any]]] = {line.pk: [] for line in series.lines}
    for cycle in sorted(series.cycles, key=lambda c: c.number):
        found = series.cycle_assessment(cycle)
        by_line[cycle.therapy_line_id].append({"cycle": cycle, "assessment": found})
    return [{"line": line, "cycles": by_line[line.pk]} for line in series.lines]


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


@GET_POST
@login_required
@permission_required("patients.add_patient", raise_exception=True)
def patient_create(request: HttpRequest) -> HttpResponse:
    form = PatientForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        fields = {k: v for k, v in form.cleaned_data.items() if k not in ("version", "reason")}
        patient = _attempt(form, lambda: services.register_patient(by=request.user, **fields))
        if patient:
            messages.success(request, f"Registered {patient.name}.")
            return redirect("patients:detail", pk=patient.pk)
    return _form_page(request, form, title="New patient", status=_status(request))


@GET_POST
@login_required
@permission_required("patients.change_patient", raise_exception=True)
def patient_edit(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    form = PatientForm(request.POST or None, instance=patient, initial={"version": patient.version})
    if request.method == "POST" and form.is_valid():
        changes, version, reason = _edit_parts(form)
        saved = _attempt(
            form,
            lambda: services.update_patient(
                patient=patient, by=request.user, changes=changes, version=version, reason=reason
            ),
        )
        if saved:
            messages.success(request, "Patient details saved.")
            return redirect("patients:detail", pk=patient.pk)
    title = f"Edit {patient.name}"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


# --- therapy lines and cycles --------------------------------------------------------


@GET_POST
@login_required
@permission_required("patients.add_therapyline", raise_exception=True)
def line_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    form = TherapyLineForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        line = _attempt(
            form,
            lambda: services.add_therapy_line(
                patient=patient, by=request.user, **form.cleaned_data
            ),
        )
        if line:
            messages.success(request, f"Line {line.line_number} ({line.regimen}) added.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    return _form_page(
        request, form, title="New therapy line", patient=patient, status=_status(request)
    )


@GET_POST
@login_required
@permission_required("patients.change_therapyline", raise_exception=True)
def line_edit(request: HttpRequest, pk: int) -> HttpResponse:
    line = get_object_or_404(TherapyLine, pk=pk)
    patient = get_patient_for_user(request, line.patient_id)
    form = TherapyLineForm(request.POST or None, instance=line)
    if request.method == "POST" and form.is_valid():
        saved = _attempt(
            form,
            lambda: services.update_therapy_line(
                line=line, by=request.user, changes=_without_none_line_number(form)
            ),
        )
        if saved:
            messages.success(request, f"Line {saved.line_number} saved.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    title = f"Edit line {line.line_number}"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


def _without_none_line_number(form: TherapyLineForm) -> dict[str, Any]:
    changes = dict(form.cleaned_data)
    if changes.get("line_number") is None:
        changes.pop("line_number")
    return changes


@GET_POST
@login_required
@permission_required("patients.add_treatmentcycle", raise_exception=True)
def cycle_create(request: HttpRequest, pk: int) -> HttpResponse:
    line = get_object_or_404(TherapyLine, pk=pk)
    patient = get_patient_for_user(request, line.patient_id)
    form = CycleForm(request.POST or None, initial=_next_cycle_initial(line))
    form.fields.pop("move_later_cycles")
    if request.method == "POST" and form.is_valid():
        fields = {k: v for k, v in form.cleaned_data.items() if k != "version"}
        cycle = _attempt(form, lambda: services.plan_cycle(line=line, by=request.user, **fields))
        if cycle:
            messages.success(request, f"Cycle {cycle.number} planned for {cycle.scheduled_date}.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    title = f"New cycle: line {line.line_number} ({line.regimen})"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


def _next_cycle_initial(line: TherapyLine) -> dict[str, Any]:
    last = line.cycles.order_by("-number").first()
    if last is None:
        return {"number": 1, "scheduled_date": line.start_date}
    step = timedelta(days=line.cycle_length_days)
    return {"number": last.number + 1, "scheduled_date": last.scheduled_date + step}


@GET_POST
@login_required
@permission_required("patients.change_treatmentcycle", raise_exception=True)
def cycle_edit(request: HttpRequest, pk: int) -> HttpResponse:
    cycle = get_object_or_404(TreatmentCycle.objects.select_related("therapy_line"), pk=pk)
    patient = get_patient_for_user(request, cycle.therapy_line.patient_id)
    form = CycleForm(request.POST or None, instance=cycle, initial={"version": cycle.version})
    if request.method == "POST" and form.is_valid():
        saved = _attempt(form, lambda: _save_cycle(request, cycle, form))
        if saved:
            messages.success(request, f"Cycle {cycle.number} saved.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#lines")
    title = f"Edit cycle {cycle.number}: line {cycle.therapy_line.line_number}"
    return _form_page(request, form, title=title, patient=patient, status=_status(request))


def _save_cycle(request: HttpRequest, cycle: TreatmentCycle, form: CycleForm) -> Any:
    data = dict(form.cleaned_data)
    move_later = data.pop("move_later_cycles")
    changes, version, reason = _edit_parts(form, data)
    new_date = changes.get("scheduled_date", cycle.scheduled_date)
    delayed = changes.get("status", cycle.status) == CycleStatus.DELAYED
    if not (move_later and delayed and new_date > cycle.scheduled_date):
        return services.update_cycle(
            cycle=cycle, by=request.user, changes=changes, version=version, reason=reason
        )
    # One savepoint for both steps: if the second is refused, the delay is undone too
    # (the view catches the error and answers 400, so the request itself commits).
    with transaction.atomic():
        moved = services.delay_cycle_and_following(
            cycle=cycle,
            by=request.user,
            new_date=new_date,
            reason=changes.get("status_reason", cycle.status_reason),
            version=version,
        )
        rest = {
            k: v
            for k, v in changes.items()
            if k not in ("status", "scheduled_date", "status_reason")
        }
        if rest:  # e.g. a corrected number
            services.update_cycle(cycle=moved[0], by=request.user, changes=rest, reason=reason)
    return moved


# --- draws and imaging -----------------------------------------------------------------


@GET_POST
@login_required
@permission_required("patients.add_ctcdraw", raise_exception=True)
def draw_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    form = DrawForm(request.POST or None, initial={"blood_volume_ml": "7.5"})
    form.fields.pop("reason")
    if request.method == "POST" and form.is_valid():
        fields = {k: v for k, v in form.cleaned_data.items() if k != "version"}
        draw = _attempt(
            form, lambda: services.record_draw(patient=patient, by=request.user, **fields)
        )
        if draw:
            _announce_flags(request, patient, draw)
            return redirect(reverse("patients:detail", args=[patient.pk]) + f"#draw-{draw.pk}")
    return _form_page(request, form, title="New CTC draw", patient=patient, status=_status(request))


def _announce_flags(request: HttpRequest, patient: Patient, draw: CTCDraw) -> None:
    """After saving a draw, say what the rules make of it, right away."""
    found = assessment.series_for(patient).by_draw_id.get(draw.pk)
    flags = found.flags if found else ()
    if not flags:
        messages.success(request, "Draw saved. No flags.")
        return
    messages.warning(
        request,
        "Draw saved. Flags: " + " · ".join(f"{f.message}" for f in flags),
    )


@GET_POST
@login_required
@permission_required("patients.change_ctcdraw", raise_exception=True)
def draw_edit(request: HttpRequest, pk: int) -> HttpResponse:
    draw = get_object_or_404(CTCDraw, pk=pk)
    patient = get_patient_for_user(request, draw.patient_id)
    if draw.entered_in_error:
        messages.error(request, "This draw is marked as entered in error; record a new draw.")
        return redirect("patients:detail", pk=patient.pk)
    form = DrawForm(
        request.POST or None, instance=draw, initial={"version": draw.version}, editing=True
    )
    if request.method == "POST" and form.is_valid():
        changes, version, reason = _edit_parts(form)
        saved = _attempt(
            form,
            lambda: services.update_draw(
                draw=draw, by=request.user, changes=changes, version=version, reason=reason
            ),
        )
        if saved:
            _announce_flags(request, patient, saved)
            return redirect(reverse("patients:detail", args=[patient.pk]) + f"#draw-{draw.pk}")
    error_form = EnteredInErrorForm(initial={"version": draw.version})
    return _form_page(
        request,
        form,
        title="Edit CTC draw",
        patient=patient,
        status=_status(request),
        extra={"draw": draw, "error_form": error_form},
    )


@require_POST
@login_required
@permission_required("patients.change_ctcdraw", raise_exception=True)
def draw_entered_in_error(request: HttpRequest, pk: int) -> HttpResponse:
    draw = get_object_or_404(CTCDraw, pk=pk)
    patient = get_patient_for_user(request, draw.patient_id)
    form = EnteredInErrorForm(request.POST)
    if form.is_valid():
        _attempt(
            form,
            lambda: services.mark_draw_entered_in_error(
                draw=draw,
                by=request.user,
                reason=form.cleaned_data["reason"],
                version=form.cleaned_data.get("version"),
            ),
        )
    if form.is_valid():
        messages.success(request, "The draw is marked as entered in error. It stays on record.")
        return redirect(reverse("patients:detail", args=[patient.pk]) + f"#draw-{draw.pk}")
    ctx = {"form": DrawForm(instance=draw, editing=True), "error_form": form, "draw": draw}
    return _form_page(
        request, ctx["form"], title="Edit CTC draw", patient=patient, status=400, extra=ctx
    )


@GET_POST
@login_required
@permission_required("patients.add_imagingassessment", raise_exception=True)
def imaging_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, pk)
    form = ImagingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        imaging = _attempt(
            form,
            lambda: services.record_imaging(patient=patient, by=request.user, **form.cleaned_data),
        )
        if imaging:
            messages.success(request, f"Imaging of {imaging.performed_on} recorded.")
            return redirect(reverse("patients:detail", args=[patient.pk]) + "#imaging")
    return _form_page(request, form, title="New imaging", patient=patient, status=_status(request))


# --- shared form handling ---------------------------------------------------------------


def _attempt(form: Any, save: Any) -> Any:
    """Run a service; on bad input or a conflict, put the messages on the form."""
    try:
        return save()
    except ValidationError as exc:
        apply_service_errors(form, exc)
    except services.ConflictError as exc:
        form.add_error(None, str(exc))
        form.conflict = exc
        _rebase(form, exc.current)
    return None


def _rebase(form: Any, version: int) -> None:
    """Keep what the editor typed, but base it on the version they have now been
    shown, so a second Save applies it knowingly (and a third editor's change in
    between is caught again)."""
    if "version" in form.fields:
        data = form.data.copy()
        data[form.add_prefix("version")] = str(version)
        form.data = data


def _edit_parts(
    form: Any, data: dict[str, Any] | None = None
) -> tuple[dict[str, Any], int | None, str]:
    """The changed fields only, the version the edit started from, and the reason."""
    data = dict(form.cleaned_data if data is None else data)
    version = data.pop("version", None)
    reason = data.pop("reason", "") or ""
    changed = {k: v for k, v in data.items() if k in form.changed_data}
    return changed, version, reason


def _status(request: HttpRequest) -> int:
    """A form shown again after a POST is showing errors: answer 400."""
    return 400 if request.method == "POST" else 200


def _form_page(
    request: HttpRequest,
    form: Any,
    *,
    title: str,
    patient: Patient | None = None,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    focus_first_error(form)
    ctx = {"form": form, "title": title, "patient": patient, **(extra or {})}
    if patient is not None:  # a form about a patient shows their record
        audit.record(request, AccessAction.VIEW, patient=patient, target=f"form {request.path}")
    return render(request, "patients/form.html", ctx, status=status)


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
    # Not get_patient_for_user: a chart names no oncologist, and that join is about
    # 4% of what a cached chart costs.
    patient = get_object_or_404(patients_for_user(request), pk=pk)
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
    patient = get_patient_for_user(request, pk)
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
