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
from patients.assessment.loader import rules_fingerprint
from patients.models import AccessAction, CTCDraw
from patients.web import acknowledging, dates
from patients.web.fragments import RESULT_ROW_TEMPLATE, RowCache, result_row_key
from patients.web.presenters import result_rows, waited_text

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
    now = timezone.now()
    just_done = acknowledging.just_done(request)
    can_acknowledge = request.user.has_perm("patients.add_acknowledgement")
    cached = RowCache(RESULT_ROW_TEMPLATE, can_acknowledge=can_acknowledge, just_done=just_done)

    def known(draws: list[CTCDraw]) -> set[int]:
        """The page's rows already rendered, in the cache: their results are not assessed."""
        versions = assessment.acknowledgement_versions(
            {d.patient_id for d in draws}, among=access.acknowledgements(request.user)
        )
        rules_read = rules_fingerprint()
        found = cached.known(
            {
                f"result-{d.pk}": result_row_key(
                    d,
                    acknowledged=versions[d.patient_id],
                    waited=waited_text(d, now),
                    can_acknowledge=can_acknowledge,
                    rules=rules_read,
                )
                for d in draws
            }
        )
        return {d.pk for d in draws if f"result-{d.pk}" in found}

    shown = assessment.results_page(
        lambda waiting: assessment.CountedAheadPaginator(
            waiting, RESULTS_PAGE_SIZE, ahead=RESULTS_COUNTED_AHEAD
        ).get_page(request.GET.get("page")),
        among=access.draws(request.user),
        known=known,
    )
    page = shown.page
    rows = cached.rows([f"result-{d.pk}" for d in shown.draws], result_rows(shown.items, now))
    audit.record_read(
        request,
        AccessAction.RESULTS,
        patient_ids=[row.patient_id for row in rows],
        what="results to review" + (f" page {page.number}" if page.number > 1 else ""),
    )
    ctx = {
        "rows": rows,
        "page": page,
        "just_done": just_done,
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
