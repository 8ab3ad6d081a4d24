"""Results to review: every result with a high or review flag not yet acknowledged.

A nurse's morning starts here and on the worklist: a high result drawn outside
every cycle's window, or for a patient with no cycle entered, is listed here
until someone acknowledges it, with a note, from this page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from patients import access, assessment, audit, services
from patients.models import AccessAction
from patients.web.forms import AcknowledgeForm, apply_service_errors
from patients.web.presenters import result_rows
from patients.web.worklist import back

RESULTS_PAGE_SIZE = 50


@require_safe
@login_required
@permission_required("patients.view_ctcdraw", raise_exception=True)
def results(request: HttpRequest) -> HttpResponse:
    """Most severe first, then the oldest result first."""
    shown = assessment.results_page(
        lambda waiting: Paginator(waiting, RESULTS_PAGE_SIZE).get_page(request.GET.get("page")),
        among=access.draws(request.user),
    )
    page, items = shown.page, shown.items
    audit.record_read(
        request,
        AccessAction.RESULTS,
        patient_ids=[item.patient.pk for item in items],
        what="results to review" + (f" page {page.number}" if page.number > 1 else ""),
    )
    return render(
        request,
        "patients/results.html",
        {"rows": result_rows(items, timezone.now()), "page": page, "ack_form": AcknowledgeForm()},
    )


@require_POST
@login_required
@permission_required("patients.add_acknowledgement", raise_exception=True)
def acknowledge_result(request: HttpRequest, pk: int) -> HttpResponse:
    draw = access.draw(request.user, pk)
    form = AcknowledgeForm(request.POST)
    if form.is_valid():
        try:
            services.acknowledge_result(draw=draw, by=request.user, note=form.cleaned_data["note"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
    if not form.is_valid():
        for message in form.errors.get("note", form.non_field_errors()):
            messages.error(request, f"Not acknowledged: {message}")
    else:
        when = timezone.localtime(draw.drawn_at).strftime("%Y-%m-%d %H:%M")
        messages.success(request, f"Acknowledged the result drawn {when} for {draw.patient.name}.")
    return back(request, fallback=reverse("patients:results"))
