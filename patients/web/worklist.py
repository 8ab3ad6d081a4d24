"""The worklist a nurse opens every morning, and acknowledging a cycle's flags from it."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import (
    require_POST,
    require_safe,
)

from patients import access, assessment, audit, services
from patients.models import (
    AccessAction,
)
from patients.web.forms import (
    AcknowledgeForm,
    WorklistFilterForm,
    apply_service_errors,
)
from patients.web.presenters import worklist_rows

# --- worklist ----------------------------------------------------------------------

WORKLIST_PAGE_SIZE = 50


@require_safe
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
    shown = assessment.worklist_page(
        start,
        days,
        lambda due: Paginator(due, WORKLIST_PAGE_SIZE).get_page(request.GET.get("page")),
        among=access.cycles(request.user),
        oncologist_id=oncologist.pk if oncologist else None,
        flagged=bool(form.is_valid() and form.cleaned_data.get("flagged")),
    )
    page, items = shown.page, shown.items
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
    cycle = access.cycle(request.user, pk)
    patient = cycle.therapy_line.patient
    form = AcknowledgeForm(request.POST)
    if form.is_valid():
        try:
            services.acknowledge_cycle(cycle=cycle, by=request.user, note=form.cleaned_data["note"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
    if not form.is_valid():
        for message in form.errors.get("note", form.non_field_errors()):
            messages.error(request, f"Not acknowledged: {message}")
    else:
        messages.success(request, f"Acknowledged cycle {cycle.number} for {patient.name}.")
    return back(request, fallback=reverse("patients:worklist"))


def back(request: HttpRequest, *, fallback: str) -> HttpResponseRedirect:
    """Redirect to the safe `next` the form came from, or the fallback."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    # Not redirect(): it would try a `next` such as "x" as a view name (NoReverseMatch, a 500).
    return HttpResponseRedirect(target if safe and target else fallback)
