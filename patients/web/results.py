"""Results to review: every result with a high or review flag not yet acknowledged.

A nurse's morning starts here and on the worklist: a high result drawn outside
every cycle's window, or for a patient with no cycle entered, is listed here
until someone acknowledges it, with a note, from this page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from patients import access, assessment, audit, services
from patients.models import AccessAction
from patients.web import acknowledging, dates
from patients.web.presenters import result_rows

RESULTS_PAGE_SIZE = 50
# The list counts the results up to this many beyond the page shown, then says "more
# than": an exact count of tens of thousands (after an upgrade from rules version 1)
# would cost more than the page itself, and tells a nurse nothing more.
RESULTS_COUNTED_AHEAD = 1000


@require_safe
@login_required
@permission_required("patients.view_ctcdraw", raise_exception=True)
def results(request: HttpRequest) -> HttpResponse:
    """Most severe first, then the oldest result first."""
    shown = assessment.results_page(
        lambda waiting: assessment.CountedAheadPaginator(
            waiting, RESULTS_PAGE_SIZE, ahead=RESULTS_COUNTED_AHEAD
        ).get_page(request.GET.get("page")),
        among=access.draws(request.user),
    )
    page, items = shown.page, shown.items
    audit.record_read(
        request,
        AccessAction.RESULTS,
        patient_ids=[item.patient.pk for item in items],
        what="results to review" + (f" page {page.number}" if page.number > 1 else ""),
    )
    ctx = {
        "rows": result_rows(items, timezone.now()),
        "page": page,
        "just_done": acknowledging.just_done(request),
    }
    return render(request, "patients/results.html", ctx)


@require_POST
@login_required
@permission_required("patients.add_acknowledgement", raise_exception=True)
def acknowledge_result(request: HttpRequest, pk: int) -> HttpResponse:
    draw = access.draw(request.user, pk)
    patient = draw.patient
    drawn = dates.moment(draw.drawn_at)
    return acknowledging.acknowledge(
        request,
        lambda note: services.acknowledge_result(draw=draw, by=request.user, note=note),
        patient=patient,
        row=f"result-{draw.pk}",
        also=(f"draw-{draw.pk}",),
        done=(
            f"the result drawn {drawn} for {patient.family_name}, {patient.given_name} "
            f"(MRN {patient.mrn})"
        ),
        fallback=reverse("patients:results"),
    )
