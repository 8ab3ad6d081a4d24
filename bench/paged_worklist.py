"""A prototype of the proposed worklist page: one page of rows, whatever the cohort's size.

Today the worklist view loads, assesses and renders every cycle due in the
range: about a third of all patients on treatment for a 7-day range. The
proposal (see bench/README.md) keeps each upcoming cycle's severity in the
database, so that the database sorts and pages the worklist and the view
loads, assesses and renders only the page's rows.

This prototype times what such a view would still do for one page: load the
page's cycles and their patients' series, ask the rules, build the rows and
render the real template. The page's cycles are taken from today's full
worklist (computed outside the timing), standing in for the sorted query on
the stored severity, which is one indexed query.
"""

from __future__ import annotations

import statistics
import time
from datetime import date, timedelta
from typing import Any

from django.db.models import Prefetch
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import resolve, reverse

from patients import assessment
from patients.models import Acknowledgement, TreatmentCycle
from patients.web.forms import AcknowledgeForm, WorklistFilterForm
from patients.web.presenters import worklist_rows

PAGE_SIZE = 50


def page_cycle_ids(start: date, days: int) -> list[int]:
    """The first page's cycles, in the worklist's order (most severe first)."""
    return [item.cycle.pk for item in assessment.worklist(start, days)[:PAGE_SIZE]]


def render_page(user: Any, start: date, days: int, cycle_ids: list[int]) -> str:
    cycles = list(
        TreatmentCycle.objects.filter(pk__in=cycle_ids)
        .select_related("therapy_line__patient")
        .prefetch_related(
            Prefetch(
                "acknowledgements",
                queryset=Acknowledgement.objects.select_related("acknowledged_by").order_by(
                    "acknowledged_at"
                ),
            )
        )
    )
    series = assessment.series_for_many({c.therapy_line.patient for c in cycles})
    items = [
        assessment.WorklistItem(
            cycle=c,
            series=series[c.therapy_line.patient_id],
            assessment=series[c.therapy_line.patient_id].cycle_assessment(c),
            acknowledgements=list(c.acknowledgements.all()),
        )
        for c in cycles
    ]
    items.sort(key=assessment.worklist_order)
    ctx = {
        "form": WorklistFilterForm(None),
        "start": start,
        "end": start + timedelta(days=days - 1),
        "rows": worklist_rows(items),
        "ack_form": AcknowledgeForm(),
    }
    return render_to_string("patients/worklist.html", ctx, request=_request(user))


def median_ms(user: Any, start: date, days: int, *, runs: int) -> tuple[float, int]:
    """Median milliseconds to serve the first page, and how many rows it has."""
    ids = page_cycle_ids(start, days)
    render_page(user, start, days, ids)  # warm-up
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        render_page(user, start, days, ids)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, len(ids)


def _request(user: Any) -> Any:
    url = reverse("patients:worklist")
    request = RequestFactory().get(url)
    request.user = user
    request.resolver_match = resolve(url)
    return request
