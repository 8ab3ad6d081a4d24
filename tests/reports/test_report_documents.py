"""patients.web.documents.report_data: the report's data from a patient's record, with
the cycles as they stand on the day it is generated and who acknowledged what."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.utils import timezone

from patients import assessment
from patients.models import CycleStatus, DrawStatus
from patients.reports.ctc_report import report_pdf
from patients.services.records import acknowledge_result
from patients.web import documents
from tests import builders
from tests.reports.test_report import text_of

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)


def _nine_am(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)


@pytest.fixture
def record(oncologist, nurse, patient):
    """A breast patient: a favourable baseline, C1 given, then two tubes drawn together
    (9 and 11 cells: 10 per 7.5 mL, a clear conversion) before C2, given; C3 planned,
    its window not yet open on NOW."""
    line = builders.therapy_line(patient, oncologist, start_date=date(2026, 1, 5))
    builders.draw(patient, oncologist, drawn_at=_nine_am(date(2026, 1, 2)), ctc_count=1)
    c1 = builders.cycle(line, oncologist, number=1, status=CycleStatus.GIVEN)
    first = builders.draw(patient, oncologist, drawn_at=_nine_am(date(2026, 1, 22)), ctc_count=9)
    builders.draw(patient, oncologist, drawn_at=_nine_am(date(2026, 1, 22)), ctc_count=11)
    builders.draw(
        patient,
        oncologist,
        drawn_at=_nine_am(date(2026, 1, 22)),
        status=DrawStatus.REJECTED,
        ctc_count=None,
    )
    c2 = builders.cycle(line, oncologist, number=2, status=CycleStatus.GIVEN)
    c3 = builders.cycle(line, oncologist, number=3, scheduled_date=date(2026, 3, 16))
    return {"c1": c1, "c2": c2, "c3": c3, "first": first}


def _data(patient):
    series = assessment.series_for(patient)
    return documents.report_data(series, documents.imaging_of(patient), by="nina", now=NOW)


def test_every_cycle_is_assessed_on_the_day_the_report_is_generated(patient, record):
    data = _data(patient)

    states = {cycle.number: found.state.value for _, cycle, found in data.cycles}
    # C1: given with only a baseline 3 days before day 1 (in its window); C3 not yet due.
    assert states == {1: "result_in_window", 2: "result_in_window", 3: "not_yet_due"}
    text = text_of(report_pdf(data))
    assert (
        "C3 Mon 16 Mar 2026 — planned Nothing due yet: the draw window opens Mon 9 Mar 2026" in text
    )


def test_an_acknowledged_sample_reads_acknowledged_in_the_draws_and_its_cycle(
    patient, record, nurse
):
    acknowledge_result(draw=record["first"], by=nurse, note="Seen; CT booked")

    data = _data(patient)

    (stands_for,) = data.result_acknowledged
    assert stands_for == record["first"].pk  # the sample's first tube
    assert data.result_acknowledged[stands_for].by == "nina"
    # The sample's flag is what C2 shows: acknowledging the sample covers the cycle.
    assert list(data.cycle_acknowledged) == [record["c2"].pk]
    text = text_of(report_pdf(data))
    at = timezone.localtime(data.result_acknowledged[stands_for].at)
    when = f"{at.day} {at:%b %Y %H:%M}"  # "3 Dec 2026 16:55"
    assert text.count(f"acknowledged by nina on {when}") == 2  # the sample's row and C2's
    # Both tubes in one row; the rejected tube beside it refers to it.
    assert "9 in 7.5 mL 11 in 7.5 mL 2 tubes pooled 10" in text
    assert "rejected — — — with the sample of" in text


def test_nothing_reads_acknowledged_before_anyone_acknowledges(patient, record):
    data = _data(patient)

    assert data.result_acknowledged == {}
    assert data.cycle_acknowledged == {}
    assert "not acknowledged" in text_of(report_pdf(data))
