"""The page, the PDF report, the chart text and the FHIR notes word values through
patients.wording: the same function, so the same words. No database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from patients import rules, wording
from patients.interop.fhir import resources
from patients.models import CTCDraw, Patient
from patients.reports import chart_data, chart_text, ctc_report
from patients.web import presenters
from tests.reports.test_report import text_of

DRAWN_AT = datetime(2025, 10, 2, 9, 30, tzinfo=UTC)
GENERATED_AT = datetime(2025, 11, 20, 14, 5, tzinfo=UTC)


def _draw_in(count: int, volume: str) -> rules.DrawIn:
    return rules.DrawIn(
        id=1,
        drawn_at=DRAWN_AT,
        drawn_on=DRAWN_AT.date(),
        blood_volume_ml=Decimal(volume),
        status="resulted",
        ctc_count=count,
    )


def _assessed(count: int, volume: str) -> rules.DrawAssessment:
    (found,) = rules.assess_draws([_draw_in(count, volume)], [], [], cancer_type="breast", cutoff=5)
    return found


def _report(found: rules.DrawAssessment) -> ctc_report.ReportData:
    chart = chart_data.ChartData(
        cancer_type="breast",
        cutoff=5,
        assessments=[found],
        lines=[],
        cycles=[],
        imaging=[],
        today=GENERATED_AT.date(),
    )
    return ctc_report.ReportData(
        patient_name="Jane Doe",
        mrn="MRN-1",
        birth_date=date(1961, 11, 20),
        sex="Female",
        cancer_type="breast",
        cutoff=5,
        oncologist="",
        chart=chart,
        assessments=[found],
        voided=[],
        cycles=[],
        imaging=[],
        accessions={},
        comments={},
        time_zone="Europe/London",
        generated_at=GENERATED_AT,
        generated_by="nina",
    )


def _model_draw(count: int, volume: str) -> CTCDraw:
    return CTCDraw(
        pk=1,
        drawn_at=DRAWN_AT,
        blood_volume_ml=Decimal(volume),
        status="resulted",
        ctc_count=count,
        entered_at=DRAWN_AT,
    )


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], list[Any]]:
    """Record the first argument of every call of a wording function, still calling it."""

    def watch(name: str) -> list[Any]:
        calls: list[Any] = []
        real = getattr(wording, name)

        def recorded(value: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(value)
            return real(value, *args, **kwargs)

        monkeypatch.setattr(wording, name, recorded)
        return calls

    return watch


def test_the_page_and_the_report_word_the_volume_with_one_function(spy) -> None:
    found = _assessed(9, "5.0")
    volumes = spy("volume_text")

    row = presenters.draw_row(_model_draw(9, "5.0"), found)
    assert volumes and set(volumes) == {Decimal("5.0")}  # the volume and the count in it
    shown = len(volumes)

    ctc_report.report_pdf(_report(found))
    assert Decimal("5.0") in volumes[shown:]  # the draws table's result cell
    assert row.volume_text == "5"


def test_the_page_the_report_and_the_chart_word_the_rate_with_one_function(spy) -> None:
    found = _assessed(9, "5.0")
    rates = spy("count_phrase")

    page = presenters.rate_text(found.rate_per_7_5_ml)
    assert rates == [13.5]
    rates.clear()

    ctc_report.report_pdf(_report(found))
    assert 13.5 in rates  # the summary's latest count (and the chart's alt text)
    assert page == wording.count_phrase(13.5) == "13.5 CTC/7.5 mL"


def test_the_page_the_csv_and_fhir_show_the_same_volume() -> None:
    draw = _model_draw(0, "4.250")

    page = presenters.draw_row(draw, None).volume_text
    observation = resources.observation(draw, None, patient=Patient(pk=1), cutoff=5)

    assert page == wording.volume_text(draw.blood_volume_ml) == "4.25"
    # A count of 0 reads "none detected" in the volume analysed (spec section 1).
    note = "none detected in 4.25 mL; the rate per 7.5 mL is indicative only."
    assert observation["note"] == [{"text": note}]


def test_the_page_and_the_report_intervals_come_from_wording() -> None:
    # One form on the page, in the report and the tooltips: one decimal, rounded outward.
    found = _assessed(5, "7.5")
    assert found.ci95 is not None

    assert presenters.ci_text(found.ci95) == wording.interval_text(found.ci95) == "1.6 to 11.7"


# --- a count that is a lower bound ----------------------------------------------------------


def _lower_bound(count: int, volume: str) -> tuple[rules.DrawAssessment, CTCDraw]:
    draw_in = replace(_draw_in(count, volume), count_qualifier=">")
    (found,) = rules.assess_draws([draw_in], [], [], cancer_type="breast", cutoff=5)
    model = _model_draw(count, volume)
    model.count_qualifier = ">"
    return found, model


def test_a_lower_bound_reads_more_than_on_the_page_the_report_the_chart_and_fhir() -> None:
    found, model = _lower_bound(1000, "7.5")

    page = presenters.draw_row(model, found).rate_text
    report = text_of(ctc_report.report_pdf(_report(found)))
    chart = chart_text.chart_text_alternative(_report(found).chart)

    assert page == "> 1000 CTC/7.5 mL"
    assert "Latest evaluable count: > 1000 CTC/7.5 mL" in report  # the summary
    assert "> 1,000 in 7.5 mL" in report  # the draws table's result cell
    assert "Latest CTC count > 1000 CTC/7.5 mL" in chart


def test_a_lower_bound_in_another_volume_reads_the_rate_of_its_bound() -> None:
    found, model = _lower_bound(7, "10")
    observation = resources.observation(model, found, patient=Patient(pk=1), cutoff=5)

    assert presenters.draw_row(model, found).rate_text == "> 5.2 CTC/7.5 mL"
    assert observation["note"] == [
        {"text": "more than 7 CTC counted in 10 mL; the rate per 7.5 mL is indicative only."}
    ]
