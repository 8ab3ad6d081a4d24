"""Tests for patients.wording: how values read, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from patients import wording


@pytest.mark.parametrize(
    ("rate", "text"),
    [(0, "0"), (7.0, "7"), (1.5, "1.5"), (7.5 / 7, "1.0"), (4.96, "4.9"), (2177.647, "2177.6")],
)
def test_a_rate_is_whole_or_has_one_decimal_rounded_down(rate: float, text: str) -> None:
    assert wording.format_rate(rate) == text


def test_a_rate_in_words_says_none_detected_for_zero() -> None:
    assert wording.count_phrase(0) == "none detected in 7.5 mL"
    assert wording.count_phrase(0.0) == "none detected in 7.5 mL"
    assert wording.count_phrase(7.0) == "7 CTC/7.5 mL"
    assert wording.count_phrase(13.5) == "13.5 CTC/7.5 mL"


def test_a_short_rate_says_none_detected_for_zero_and_no_unit() -> None:
    assert wording.short_rate(0) == "none detected"
    assert wording.short_rate(4.96) == "4.9"
    assert wording.short_rate(12.0) == "12"


def test_a_lower_bound_reads_as_more_than_its_rate() -> None:
    assert wording.short_rate(1000.0, censored=True) == "> 1000"
    assert wording.count_phrase(1000.0, censored=True) == "> 1000 CTC/7.5 mL"
    assert wording.count_phrase(2.5, censored=True) == "> 2.5 CTC/7.5 mL"


@pytest.mark.parametrize(
    ("volume", "text"),
    [
        (Decimal("7.5"), "7.5"),
        (Decimal("7.50"), "7.5"),
        (Decimal("4.25"), "4.25"),
        (Decimal("5.0"), "5"),
        (Decimal("10"), "10"),
        (Decimal("10.00"), "10"),
        (7.1, "7.1"),
        (5.0, "5"),
    ],
)
def test_a_volume_has_no_trailing_zeros(volume: Decimal | float, text: str) -> None:
    assert wording.volume_text(volume) == text


def test_a_count_in_a_sentence_says_none_detected_for_zero() -> None:
    assert wording.counted_in_volume(0, Decimal("4.0")) == "none detected in 4 mL"
    assert wording.counted_in_volume(0, Decimal("7.5")) == "none detected in 7.5 mL"
    assert wording.counted_in_volume(9, Decimal("5.0")) == "9 CTC counted in 5 mL"
    assert wording.counted_in_volume(1234, Decimal("4.25")) == "1234 CTC counted in 4.25 mL"


def test_a_count_in_a_cell_groups_thousands() -> None:
    assert wording.count_in_volume(0, Decimal("7.5")) == "0 in 7.5 mL"
    assert wording.count_in_volume(14, Decimal("7.50")) == "14 in 7.5 mL"
    assert wording.count_in_volume(1234, Decimal("4.25")) == "1,234 in 4.25 mL"


@pytest.mark.parametrize(
    ("ci95", "text"),
    [
        ((0.0, 3.689), "0.0 to 3.7"),
        ((1.6235, 11.6683), "1.6 to 11.7"),
        ((6.17, 25.63), "6.1 to 25.7"),
        ((4.96, 5.04), "4.9 to 5.1"),
        ((2.0, 7.0), "2.0 to 7.0"),
        ((2057.83, 2302.62), "2,057.8 to 2,302.7"),
    ],
)
def test_an_interval_has_one_decimal_rounded_outward(ci95: tuple[float, float], text: str) -> None:
    assert wording.interval_text(ci95) == text


def test_a_censored_count_has_only_a_lower_limit() -> None:
    assert wording.interval_text((891.27, None)) == "at least 891.2"
    assert wording.interval_text((1.6235, None)) == "at least 1.6"


@pytest.mark.parametrize(
    ("on", "age"),
    [
        (date(2025, 11, 19), 63),  # the day before the birthday
        (date(2025, 11, 20), 64),  # the birthday itself
        (date(2025, 12, 31), 64),
        (date(1961, 11, 20), 0),
    ],
)
def test_the_age_goes_up_on_the_birthday(on: date, age: int) -> None:
    assert wording.age_in_years(date(1961, 11, 20), on) == age


def test_someone_born_on_29_february_is_a_year_older_on_1_march() -> None:
    born = date(2000, 2, 29)
    assert wording.age_in_years(born, date(2025, 2, 28)) == 24
    assert wording.age_in_years(born, date(2025, 3, 1)) == 25
    assert wording.age_in_years(born, date(2024, 2, 29)) == 24


@pytest.mark.parametrize(
    ("day", "text"),
    [
        (date(2026, 12, 3), "Thu 3 Dec 2026"),
        (date(2026, 11, 30), "Mon 30 Nov 2026"),
        (date(2027, 1, 1), "Fri 1 Jan 2027"),
        (date(2025, 3, 7), "Fri 7 Mar 2025"),
    ],
)
def test_a_day_reads_with_its_weekday_and_the_month_in_words(day: date, text: str) -> None:
    assert wording.date_text(day) == text


def test_a_time_reads_to_the_minute_in_the_zone_it_is_in_without_a_weekday() -> None:
    moment = datetime(2025, 7, 1, 13, 5, 59, tzinfo=UTC).astimezone(ZoneInfo("Europe/London"))
    assert wording.time_text(moment) == "1 Jul 2025 14:05"
    assert wording.time_text(datetime(2026, 12, 3, 8, 30, tzinfo=UTC)) == "3 Dec 2026 08:30"


def test_a_lower_bound_reads_more_than_in_every_form() -> None:
    assert wording.count_phrase(1000.0, censored=True) == "> 1000 CTC/7.5 mL"
    assert wording.count_phrase(5.25, censored=True) == "> 5.2 CTC/7.5 mL"  # never above it
    assert wording.short_rate(1000.0, censored=True) == "> 1000"
    assert wording.count_in_volume(1000, Decimal("7.5"), censored=True) == "> 1,000 in 7.5 mL"
    assert (
        wording.counted_in_volume(1000, Decimal("10.0"), censored=True)
        == "more than 1000 CTC counted in 10 mL"
    )


def test_an_exact_count_reads_as_before_with_an_empty_qualifier() -> None:
    assert wording.count_phrase(0, censored=False) == "none detected in 7.5 mL"
    assert wording.short_rate(0, censored=False) == "none detected"
    assert wording.count_in_volume(14, Decimal("7.5"), censored=False) == "14 in 7.5 mL"
    assert wording.counted_in_volume(0, Decimal("4"), censored=False) == "none detected in 4 mL"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 messages"), (1, "1 message"), (2, "2 messages"), (1000, "1,000 messages")],
)
def test_a_number_of_things_agrees_with_its_noun(count: int, text: str) -> None:
    assert wording.how_many(count, "message") == text


def test_the_noun_alone_agrees_with_a_number_and_takes_an_irregular_plural() -> None:
    assert [wording.noun_for(n, "column") for n in (1, 2)] == ["column", "columns"]
    assert wording.noun_for(2, "analysis", "analyses") == "analyses"
