"""The patient list and the patient page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import (
    require_http_methods,
    require_safe,
)

from patients import access, assessment, audit, rules, wording
from patients.assessment.loader import rules_fingerprint
from patients.audit.history import change_history, draw_corrections, imaging_corrections
from patients.models import (
    AccessAction,
)
from patients.reports.chart_text import chart_text_alternative
from patients.web import acknowledging
from patients.web.chart_report import inline_chart
from patients.web.documents import chart_data
from patients.web.forms import (
    AcknowledgeForm,
)
from patients.web.fragments import (
    PATIENT_ROW_TEMPLATE,
    RowCache,
    names_generation,
    patient_row_key,
)
from patients.web.presenters import draw_rows, patient_rows

GET_POST = require_http_methods(["GET", "HEAD", "POST"])


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
    patients = (
        access.patients(request.user).search(query).with_summary(today).select_related("oncologist")
    )
    page = Paginator(patients, 25).get_page(request.GET.get("page"))
    # The search text may be a name or an MRN: the log says only that there was one.
    what = f"patient list page {page.number}{' (search)' if query else ''}"
    patient_ids = [p.pk for p in page.object_list]
    audit.record_read(request, AccessAction.PATIENT_LIST, patient_ids=patient_ids, what=what)
    shown = list(page.object_list)
    # Each row is kept in the cache, rendered, until what it shows changes (`fragments`);
    # the others need their patients' assessments (themselves kept under the patient's
    # data version, as the worklist's are).
    cached = RowCache(PATIENT_ROW_TEMPLATE, can_acknowledge=False, just_done=())
    rules_read, names = rules_fingerprint(), names_generation()
    found = cached.known(
        {
            f"patient-{p.pk}": patient_row_key(p, today=today, rules=rules_read, names=names)
            for p in shown
        }
    )
    missing = [p for p in shown if f"patient-{p.pk}" not in found]
    fresh = patient_rows(missing, assessment.listed_series_for_many(missing)) if missing else []
    ctx = {
        "q": query,
        "page": page,
        "rows": cached.rows([f"patient-{p.pk}" for p in shown], fresh),
    }
    return render(request, "patients/patient_list.html", ctx)


@require_safe
@login_required
@permission_required("patients.view_patient", raise_exception=True)
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = access.patient(request.user, pk)
    series = assessment.series_for(patient)
    all_imaging = list(patient.imaging.order_by("performed_on", "id"))  # in error too
    imaging = [scan for scan in all_imaging if not scan.entered_in_error]  # as imaging_of
    today = timezone.localdate()
    acks = list(reversed(series.acknowledgements))  # newest first
    rows = draw_rows(series)
    corrected = draw_corrections([row.draw for row in rows])
    scan_corrections = imaging_corrections(all_imaging)
    data = chart_data(series, imaging, today=today)
    chart_alt = chart_text_alternative(data)
    ctx = {
        "patient": patient,
        "series": series,
        "age": wording.age_in_years(patient.birth_date, today),
        "care_teams": [team.name for team in patient.care_teams.all()],
        "draw_rows": [(row, corrected.get(row.draw.pk)) for row in rows],
        "lines": _lines_with_cycles(series),
        "imaging": [(scan, scan_corrections.get(scan.pk)) for scan in all_imaging],
        "acknowledgements": acks,
        "chart_alt": chart_alt,
        "chart": inline_chart(
            patient,
            data,
            label="CTC trend chart",
            acknowledged=max((ack.pk for ack in acks), default=0),
        ),
        "ack_form": AcknowledgeForm(),
        "history": change_history(patient) if request.user.is_staff else None,
        # The rows just saved or acknowledged, highlighted once: {"draw": {34}, ...}.
        "just_done": acknowledging.just_done_by_kind(request),
    }
    audit.record(request, AccessAction.VIEW, patient=patient, target="patient page")
    return render(request, "patients/patient_detail.html", ctx)


def _lines_with_cycles(series: assessment.PatientSeries) -> list[dict[str, Any]]:
    by_line: dict[int, list[dict[str, Any]]] = {line.pk: [] for line in series.lines}
    today = timezone.localdate()
    for cycle in sorted(series.cycles, key=lambda c: c.number):
        found = series.cycle_assessment(cycle, today)
        by_line[cycle.therapy_line_id].append(
            {
                "cycle": cycle,
                "assessment": found,
                "state_text": rules.state_message(found, series.assessments),
                "acknowledged": series.cycle_acknowledged(found),
                "needs_review": found.needs_review,
            }
        )
    return [{"line": line, "cycles": by_line[line.pk]} for line in series.lines]
