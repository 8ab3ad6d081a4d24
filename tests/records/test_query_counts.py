"""The assessment's reads run a fixed number of queries, whatever the number of patients.

The patient page, the worklist and the results to review each assess many
patients at once (`series_for_many`); a query per patient, tube or
acknowledgement would grow with the clinic. Each read is counted at two sizes
of a cohort that has every kind of row: duplicate tubes, failed tubes,
acknowledgements of cycles and of results.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from patients import assessment, services
from patients.assessment.results import waiting
from patients.models import CTCDraw, Patient
from tests import builders

pytestmark = pytest.mark.django_db

DAY1 = date(2026, 3, 3)


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _cohort(size: int, by) -> None:
    """`size` patients, each with two lines, cycles due around DAY1 and every kind of tube."""
    today = timezone.localdate()
    for _ in range(size):
        patient = builders.patient(by)
        earlier = builders.therapy_line(patient, by, start_date=date(2025, 6, 2))
        builders.cycle(earlier, by, number=1, status="given")
        line = builders.therapy_line(patient, by, start_date=date(2026, 1, 5))
        due = builders.cycle(line, by, number=3, scheduled_date=DAY1)
        builders.cycle(line, by, number=4, scheduled_date=today + timedelta(days=2))
        builders.draw(patient, by, drawn_at=_at(date(2026, 2, 1)), ctc_count=1)
        for count in (4, 8):  # one venepuncture, two tubes
            builders.draw(patient, by, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=count)
        builders.draw(
            patient, by, drawn_at=_at(DAY1 - timedelta(3)), status="failed", ctc_count=None
        )
        failed = builders.draw(
            patient, by, drawn_at=_at(today - timedelta(1)), status="failed", ctc_count=None
        )
        services.acknowledge_cycle(cycle=due, by=by, note="Seen")
        services.acknowledge_result(draw=failed, by=by, note="Repeat booked")
        builders.draw(patient, by, drawn_at=_at(today - timedelta(2)), ctc_count=40)


def _queries_at_two_sizes(count_queries, oncologist, read) -> tuple[int, int]:
    _cohort(2, oncologist)
    small = count_queries(read)
    _cohort(5, oncologist)
    return small, count_queries(read)


def test_series_for_many_runs_four_queries_for_any_number_of_patients(oncologist, count_queries):
    def read() -> None:
        for series in assessment.series_for_many(Patient.objects.all()).values():
            for cycle in series.cycles:
                series.cycle_assessment(cycle)
            for draw in series.all_draws():
                draw.entered_by.username  # noqa: B018  (shown on the patient page)
            for ack in series.acknowledgements:
                ack.acknowledged_by.username  # noqa: B018
                series.acknowledgements_of_cycle(ack.cycle_id or 0)

    small, large = _queries_at_two_sizes(count_queries, oncologist, read)

    assert small == large == 5  # the patients, then draws, lines, cycles, acknowledgements


def test_worklist_items_run_a_fixed_number_of_queries(oncologist, count_queries):
    def read() -> None:
        page = assessment.due_cycles(DAY1 - timedelta(days=400), 800)[0:50]
        for item in assessment.worklist_items(page):
            item.latest_draw_id  # noqa: B018
            for ack in item.acknowledgements:
                ack.acknowledged_by.username  # noqa: B018

    small, large = _queries_at_two_sizes(count_queries, oncologist, read)

    assert small == large


def test_result_items_run_a_fixed_number_of_queries(oncologist, count_queries):
    def read() -> None:
        items = assessment.result_items(waiting(CTCDraw.objects.all())[:50])
        assert items
        for item in items:
            item.tubes  # noqa: B018
            item.patient.mrn  # noqa: B018
            for ack in item.series.acknowledgements_of_result(item.found):
                ack.acknowledged_by.username  # noqa: B018

    small, large = _queries_at_two_sizes(count_queries, oncologist, read)

    assert small == large
