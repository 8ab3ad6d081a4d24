"""The worklist a nurse opens every morning, and acknowledging a cycle's flags from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import (
    require_POST,
    require_safe,
)

from patients import access, assessment, audit, services
from patients.assessment.loader import rules_fingerprint
from patients.models import (
    AccessAction,
    TreatmentCycle,
)
from patients.web import acknowledging
from patients.web.forms import WorklistFilterForm
from patients.web.fragments import (
    WORKLIST_ROW_TEMPLATE,
    RenderedRow,
    RowCache,
    names_generation,
    worklist_row_key,
)
from patients.web.presenters import worklist_rows

# --- worklist ----------------------------------------------------------------------

WORKLIST_PAGE_SIZE = 50
# The worklist's view ("day": grouped by day 1, today first; "urgency": the rules' order
# over the whole range), chosen with `?view=` and kept for the session.
VIEW_KEY = "worklist_view"
VIEWS = ("day", "urgency")


@require_safe
@login_required
@permission_required("patients.view_treatmentcycle", raise_exception=True)
def worklist(request: HttpRequest) -> HttpResponse:
    """The cycles due: what a nurse opens every morning.

    Grouped by day 1, today first, each day in the rules' order (most severe
    first); or, one click away, in the rules' order over the whole range ("by
    urgency", the API's order). The database sorts and pages the cycles by their
    stored rank; only the page's rows are assessed, live, for the flags shown.
    """
    form = WorklistFilterForm(request.GET or None)
    view = _view(request)
    today = timezone.localdate()
    start, days = form.start_date(today), form.day_count()
    valid = form.is_valid()
    oncologist = form.cleaned_data.get("oncologist") if valid else None
    just_done = acknowledging.just_done(request)
    can_acknowledge = request.user.has_perm("patients.add_acknowledgement")
    cached = RowCache(WORKLIST_ROW_TEMPLATE, can_acknowledge=can_acknowledge, just_done=just_done)

    def known(cycles: list[TreatmentCycle]) -> set[int]:
        """The page's rows already rendered, in the cache: their cycles are not assessed."""
        versions = assessment.acknowledgement_versions(
            {c.therapy_line.patient_id for c in cycles},
            among=access.acknowledgements(request.user),
        )
        rules_read = rules_fingerprint()
        names = names_generation()
        found = cached.known(
            {
                f"cycle-{c.pk}": worklist_row_key(
                    c,
                    acknowledged=versions[c.therapy_line.patient_id],
                    today=today,
                    can_acknowledge=can_acknowledge,
                    rules=rules_read,
                    names=names,
                )
                for c in cycles
            }
        )
        return {c.pk for c in cycles if f"cycle-{c.pk}" in found}

    shown = assessment.worklist_page(
        start,
        days,
        lambda due: Paginator(due, WORKLIST_PAGE_SIZE).get_page(request.GET.get("page")),
        among=access.cycles(request.user),
        oncologist_id=oncologist.pk if oncologist else None,
        flagged=bool(valid and form.cleaned_data.get("flagged")),
        unacknowledged=bool(valid and form.cleaned_data.get("unacknowledged")),
        by_day=view == "day",
        known=known,
    )
    page = shown.page
    end = start + timedelta(days=days - 1)
    what = f"worklist {start}..{end}" + (f" page {page.number}" if page.number > 1 else "")
    audit.record_read(
        request,
        AccessAction.WORKLIST,
        patient_ids=[cycle.therapy_line.patient_id for cycle in shown.cycles],
        what=what,
    )
    rows = cached.rows([f"cycle-{c.pk}" for c in shown.cycles], worklist_rows(shown.items))
    ctx = {
        "form": form,
        "start": start,
        "end": end,
        "view": view,
        "groups": _by_day(rows, today) if view == "day" else [DayGroup(None, "", rows)],
        "rows": rows,
        "page": page,
        "page_query": _without(request, "page", "view"),
        "view_query": _without(request, "page", "view"),
        "showing": _showing(page),
        "filter_errors": _filter_errors(form),
        "just_done": just_done,
    }
    return render(request, "patients/worklist.html", ctx)


@dataclass(frozen=True)
class DayGroup:
    day: date | None  # None: one group over the whole range (by urgency)
    label: str  # "Today", "Tomorrow", or "" (the template writes the date)
    rows: list[RenderedRow]


def _by_day(rows: list[RenderedRow], today: date) -> list[DayGroup]:
    """The page's rows in runs of one day 1 (they come sorted by day 1 first)."""
    names = {today: "Today", today + timedelta(days=1): "Tomorrow"}
    groups: list[DayGroup] = []
    for day, run in groupby(rows, key=lambda row: row.day):
        groups.append(DayGroup(day, names.get(day, ""), list(run)))
    return groups


def _filter_errors(form: WorklistFilterForm) -> list[str]:
    """Each filter's errors under its label, as the form shows it ("Days: ...")."""
    return [
        f"{form.fields[name].label if name in form.fields else 'Filters'}: "
        + " ".join(map(str, errors))
        for name, errors in form.errors.items()
    ]


def _view(request: HttpRequest) -> str:
    """The view asked for (and then remembered), else the session's, else by day."""
    asked = request.GET.get("view")
    if asked in VIEWS:
        request.session[VIEW_KEY] = asked
        return asked
    kept = request.session.get(VIEW_KEY)
    return kept if kept in VIEWS else "day"


def _showing(page: Page) -> str:
    """'1–50 of 3,312': the rows shown and how many are due."""
    count = page.paginator.count
    return f"{page.start_index():,}–{page.end_index():,} of {count:,}" if count else "0"


def _without(request: HttpRequest, *names: str) -> str:
    """The filters of this request as a query string for links, minus `names`."""
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@require_POST
@login_required
@permission_required("patients.add_acknowledgement", raise_exception=True)
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    cycle = access.cycle(request.user, pk)
    line, patient = cycle.therapy_line, cycle.therapy_line.patient
    return acknowledging.acknowledge(
        request,
        lambda note: services.acknowledge_cycle(cycle=cycle, by=request.user, note=note),
        patient=patient,
        row=f"cycle-{cycle.pk}",
        done=(
            f"cycle {cycle.number} of {line.regimen} for {patient.family_name}, "
            f"{patient.given_name} (MRN {patient.mrn})"
        ),
        fallback=reverse("patients:worklist"),
    )
