"""Tests for patients.rules: every clinical rule at its boundaries, no database.

The rules are specified in docs/clinical-rules.md; test names read as the rule.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patients.rules import (
    SEVERITY_ORDER,
    STANDARD_VOLUME_ML,
    Category,
    CycleAssessment,
    CycleIn,
    CycleStatus,
    DrawAssessment,
    DrawIn,
    DrawStatus,
    Flag,
    FlagCode,
    LineIn,
    Severity,
    assess_cycle,
    assess_draws,
    categorize,
    count_phrase,
    cutoff_for,
    format_p_value,
    format_rate,
    highest_severity,
    line_for,
    poisson_ci95,
    rate_per_7_5_ml,
    rate_ratio,
    rise_p_value,
    worklist_sort_key,
)

CUTOFFS = {"breast": 5, "prostate": 5, "colorectal": 3}
FORBIDDEN_WORDS = ("normal", "negative", "progression", "change therapy")
DAY_ONE = date(2024, 3, 15)

_ids = itertools.count(1)


def make_draw(
    on: date,
    count: int | None = None,
    *,
    status: str = "resulted",
    volume: str = "7.5",
    draw_id: int | None = -1,
    hour: int = 9,
) -> DrawIn:
    drawn_at = datetime(on.year, on.month, on.day, hour, tzinfo=UTC)
    return DrawIn(
        id=next(_ids) if draw_id == -1 else draw_id,
        drawn_at=drawn_at,
        drawn_on=on,
        blood_volume_ml=Decimal(volume),
        status=status,
        ctc_count=count,
    )


def series(*counts: int | str, start: date = date(2024, 1, 1), every: int = 21) -> list[DrawIn]:
    """Draws every `every` days; a string entry is a non-resulted status."""
    return [
        make_draw(start + timedelta(days=every * i), None, status=c)
        if isinstance(c, str)
        else make_draw(start + timedelta(days=every * i), c)
        for i, c in enumerate(counts)
    ]


def assess(
    draws: list[DrawIn],
    lines: list[LineIn] | None = None,
    cycles: list[CycleIn] | None = None,
    *,
    cancer_type: str = "breast",
) -> list[DrawAssessment]:
    return assess_draws(
        draws,
        lines or [],
        cycles or [],
        cancer_type=cancer_type,
        cutoff=cutoff_for(cancer_type, CUTOFFS),
    )


def codes(item: DrawAssessment | CycleAssessment) -> list[str]:
    return [flag.code for flag in item.flags]


def line(line_id: int, start: date, *, number: int | None = None, dox: bool = False) -> LineIn:
    return LineIn(line_id, number or line_id, start, dox, "AC" if dox else "FOLFOX")


def cycle(
    scheduled: date,
    *,
    status: str = "planned",
    given_on: date | None = None,
    line_id: int = 1,
    number: int = 2,
) -> CycleIn:
    return CycleIn(next(_ids), line_id, number, scheduled, given_on, status)


# --- cut-offs and categories ------------------------------------------------


def test_a_count_of_exactly_five_is_unfavourable_for_breast() -> None:
    (only,) = assess([make_draw(DAY_ONE, 5)], cancer_type="breast")

    assert only.category is Category.UNFAVOURABLE
    assert codes(only) == ["unfavourable"]


@pytest.mark.parametrize(
    ("cancer_type", "count", "expected"),
    [
        ("breast", 4, Category.FAVOURABLE),
        ("breast", 5, Category.UNFAVOURABLE),
        ("prostate", 4, Category.FAVOURABLE),
        ("prostate", 5, Category.UNFAVOURABLE),
        ("colorectal", 2, Category.FAVOURABLE),
        ("colorectal", 3, Category.UNFAVOURABLE),
    ],
)
def test_the_cut_off_is_inclusive_for_every_cancer_type(
    cancer_type: str, count: int, expected: Category
) -> None:
    (only,) = assess([make_draw(DAY_ONE, count)], cancer_type=cancer_type)

    assert only.category is expected
    assert (FlagCode.UNFAVOURABLE in codes(only)) is (expected is Category.UNFAVOURABLE)


@pytest.mark.parametrize(("rate", "expected"), [(4.999, "favourable"), (5.0, "unfavourable")])
def test_categorize_counts_the_cut_off_itself_as_unfavourable(rate: float, expected: str) -> None:
    assert categorize(rate, 5) == expected


def test_cut_offs_are_looked_up_exactly_and_never_guessed() -> None:
    assert cutoff_for("colorectal", CUTOFFS) == 3
    assert cutoff_for("lung", CUTOFFS) is None
    assert cutoff_for("Breast", CUTOFFS) is None


def test_a_cancer_type_without_a_cut_off_is_not_classified_and_says_so() -> None:
    first, second = assess(series(1, 40), cancer_type="lung")

    assert first.category is None and second.category is None
    assert codes(first) == ["no_cutoff"]
    assert "lung" in first.flags[0].message
    assert "cannot be classified" in first.flags[0].message.lower()


def test_the_rise_test_still_applies_without_a_cut_off() -> None:
    _, later = assess(series(0, 9), cancer_type="lung")

    assert codes(later) == ["rise_beyond_noise", "no_cutoff"]


def test_a_patient_without_a_cancer_type_is_not_classified_either() -> None:
    (only,) = assess_draws([make_draw(DAY_ONE, 9)], [], [], cancer_type="", cutoff=None)

    assert only.category is None
    assert "no cancer type" in only.flags[0].message


# --- rates, volumes, intervals and wording ------------------------------------


def test_three_cells_in_fifteen_millilitres_is_a_rate_of_one_and_a_half() -> None:
    (only,) = assess([make_draw(DAY_ONE, 3, volume="15")], cancer_type="colorectal")

    assert only.rate_per_7_5_ml == 1.5
    assert only.category is Category.FAVOURABLE
    assert codes(only) == ["non_standard_volume"]
    assert only.flags[0].severity is Severity.INFO
    assert "3 CTC counted in 15 mL" in only.flags[0].message
    assert "1.5 CTC/7.5 mL" in only.flags[0].message


def test_a_short_draw_scaled_up_to_exactly_the_cut_off_is_unfavourable() -> None:
    (only,) = assess([make_draw(DAY_ONE, 3, volume="4.5")])

    assert only.rate_per_7_5_ml == 5.0
    assert codes(only) == ["unfavourable", "non_standard_volume"]


def test_a_standard_volume_written_differently_is_not_flagged() -> None:
    (only,) = assess([make_draw(DAY_ONE, 1, volume="7.50")])

    assert only.flags == ()


def test_rates_accept_floats_and_refuse_impossible_inputs() -> None:
    assert rate_per_7_5_ml(3, 15.0) == 1.5
    assert rate_per_7_5_ml(1, 7.1) == pytest.approx(7.5 / 7.1)
    with pytest.raises(ValueError, match="positive"):
        rate_per_7_5_ml(3, Decimal("0"))
    with pytest.raises(ValueError, match="negative"):
        rate_per_7_5_ml(-1, STANDARD_VOLUME_ML)


def test_a_count_of_zero_reads_none_detected() -> None:
    (only,) = assess([make_draw(DAY_ONE, 0)])

    assert only.rate_per_7_5_ml == 0
    assert only.category is Category.FAVOURABLE
    assert count_phrase(0) == "none detected in 7.5 mL"


def test_rates_print_whole_or_with_one_decimal_never_rounding_up_to_a_cut_off() -> None:
    assert count_phrase(7.0) == "7 CTC/7.5 mL"
    assert format_rate(1.5) == "1.5"
    assert format_rate(7.5 / 7) == "1.0"
    assert format_rate(4.96) == "4.9"


def test_p_values_print_with_three_decimals() -> None:
    assert format_p_value(0.0327) == "p = 0.033"
    assert format_p_value(0.0009) == "p < 0.001"


def test_a_p_value_just_below_a_decision_level_is_never_printed_as_reaching_it() -> None:
    assert format_p_value(0.00960540771484375) == "p = 0.0096"  # 4 -> 15, against a nadir
    assert format_p_value(0.04996) == "p = 0.0499"
    assert format_p_value(0.0104) == "p = 0.010"


@pytest.mark.parametrize(
    ("count", "volume", "lower", "upper"),
    [
        (0, "7.5", 0.0, 3.69),
        (5, "7.5", 1.62, 11.67),
        (5, "15", 0.81, 5.83),
        (0, "3.75", 0.0, 7.38),
    ],
)
def test_the_garwood_interval_is_exact_and_scaled_to_seven_and_a_half_millilitres(
    count: int, volume: str, lower: float, upper: float
) -> None:
    assert poisson_ci95(count, Decimal(volume)) == (
        pytest.approx(lower, abs=0.006),
        pytest.approx(upper, abs=0.006),
    )


def test_an_evaluable_draw_carries_its_interval() -> None:
    (only,) = assess([make_draw(DAY_ONE, 5)])

    assert only.ci95 == poisson_ci95(5, STANDARD_VOLUME_ML)


# --- non-evaluable draws ----------------------------------------------------


@pytest.mark.parametrize("status", ["rejected", "failed"])
def test_a_rejected_or_failed_draw_is_not_evaluable_and_needs_a_repeat(status: str) -> None:
    (only,) = assess([make_draw(DAY_ONE, None, status=status, volume="3")])

    assert (only.evaluable, only.rate_per_7_5_ml, only.category, only.ci95) == (
        False,
        None,
        None,
        None,
    )
    assert codes(only) == ["not_evaluable"]
    assert only.flags[0].severity is Severity.REVIEW
    assert status in only.flags[0].message
    assert "repeat draw" in only.flags[0].message


@pytest.mark.parametrize("status", ["pending", "cancelled"])
def test_a_pending_or_cancelled_draw_is_not_evaluable_and_gets_no_flag(status: str) -> None:
    (only,) = assess([make_draw(DAY_ONE, None, status=status)])

    assert not only.evaluable
    assert only.flags == ()


def test_a_count_on_a_draw_that_is_not_resulted_is_ignored() -> None:
    (only,) = assess([make_draw(DAY_ONE, 12, status="rejected")])

    assert only.rate_per_7_5_ml is None and only.category is None


def test_a_rejected_draw_between_two_unfavourable_draws_still_yields_persistent_unfavourable() -> (
    None
):
    first, rejected, last = assess(series(7, "rejected", 8))

    assert codes(rejected) == ["not_evaluable"]
    assert codes(last) == ["persistent_unfavourable", "unfavourable"]
    assert first.draw.drawn_on.isoformat() in last.flags[0].message


def test_a_failed_draw_never_makes_a_conversion() -> None:
    *_, after_unfavourable = assess(series(7, "failed", 8))
    *_, after_favourable = assess(series(1, "failed", 2))

    assert "conversion_to_unfavourable" not in codes(after_unfavourable)
    assert after_favourable.flags == ()


@pytest.mark.parametrize("status", ["rejected", "failed", "pending", "cancelled"])
def test_a_non_evaluable_draw_is_never_read_as_a_zero(status: str) -> None:
    # Read as a zero, the middle draw would turn 4 -> 5 into a rise from zero
    # (0 -> 5, p = 0.031) and hide the conversion from 4.
    *_, last = assess(series(4, status, 5))

    assert codes(last) == ["conversion_to_unfavourable", "unfavourable"]


# --- conversions --------------------------------------------------------------


def test_conversion_to_unfavourable_is_high_and_names_the_previous_value_and_date() -> None:
    first, second = assess(series(2, 7))

    assert codes(second) == ["conversion_to_unfavourable", "unfavourable"]
    assert [flag.severity for flag in second.flags] == [Severity.HIGH, Severity.REVIEW]
    assert second.flags[0].message == (
        f"Converted to unfavourable: 7 CTC/7.5 mL; previously favourable "
        f"(2 CTC/7.5 mL) on {first.draw.drawn_on}"
    )
    assert second.flags[1].message == (
        "Unfavourable: 7 CTC/7.5 mL is at or above the cut-off of 5 (breast)"
    )


def test_conversion_to_favourable_is_info_and_names_the_previous_value() -> None:
    _, second = assess(series(7, 0))

    assert codes(second) == ["conversion_to_favourable"]
    assert second.flags[0].severity is Severity.INFO
    assert "none detected in 7.5 mL" in second.flags[0].message
    assert "previously unfavourable (7 CTC/7.5 mL)" in second.flags[0].message


def test_two_favourable_draws_in_a_row_get_no_flag() -> None:
    _, second = assess(series(4, 3))

    assert second.flags == ()


def test_the_previous_draw_is_any_line_and_by_drawn_at() -> None:
    lines = [line(1, date(2024, 1, 1)), line(2, date(2024, 2, 1))]
    draws = series(2, 6, start=date(2024, 1, 10), every=30)

    _, second = assess(list(reversed(draws)), lines)

    assert "conversion_to_unfavourable" in codes(second)


# --- the rise test ----------------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "v1", "x2", "v2", "p"),
    [
        (0, 7.5, 5, 7.5, "0.031"),
        (2, 7.5, 8, 7.5, "0.055"),
        (2, 7.5, 9, 7.5, "0.033"),
        (5, 7.5, 12, 7.5, "0.072"),
        (10, 7.5, 20, 7.5, "0.049"),
        (1, 7.5, 9, 7.5, "0.011"),
        (3, 7.5, 10, 15.0, "0.32"),
    ],
)
def test_the_worked_p_values_of_the_specification_are_reproduced(
    x1: int, v1: float, x2: int, v2: float, p: str
) -> None:
    p_value = rise_p_value(x1, v1, x2, v2)

    assert p_value is not None
    assert round(p_value, len(p.split(".")[1])) == float(p)  # to the decimals printed


@pytest.mark.parametrize(
    ("earlier", "minimum"),
    [(0, 5), (1, 7), (2, 9), (3, 10), (4, 12), (5, 13), (6, 15), (8, 18), (10, 20), (20, 33)],
)
def test_the_minimum_later_count_for_p_below_five_percent_matches_the_table(
    earlier: int, minimum: int
) -> None:
    assert rise_p_value(earlier, 7.5, minimum, 7.5) < 0.05
    assert rise_p_value(earlier, 7.5, minimum - 1, 7.5) >= 0.05


def test_there_is_no_p_value_when_neither_draw_has_a_cell() -> None:
    assert rise_p_value(0, 7.5, 0, 7.5) is None
    assert rise_p_value(3, 7.5, 0, 7.5) == 1.0


def test_the_rate_ratio_from_zero_is_infinite_and_from_zero_to_zero_undefined() -> None:
    assert rate_ratio(0, 3) == math.inf
    assert rate_ratio(0, 0) is None
    assert rate_ratio(2, 9) == 4.5


def test_a_rise_from_two_to_nine_is_larger_than_counting_noise() -> None:
    first, second = assess(series(2, 9), cancer_type="prostate")

    assert "rise_beyond_noise" in codes(second)
    (rise,) = [flag for flag in second.flags if flag.code == "rise_beyond_noise"]
    assert rise.severity is Severity.REVIEW
    assert rise.message == (
        f"Rose from 2 to 9 CTC/7.5 mL since the previous draw on {first.draw.drawn_on}: "
        "larger than counting noise (p = 0.033)"
    )


@pytest.mark.parametrize(
    ("earlier", "later", "flagged"),
    [(2, 8, False), (2, 9, True), (0, 4, False), (0, 5, True), (10, 20, True), (5, 12, False)],
)
def test_the_rise_against_the_previous_draw_needs_p_below_five_percent(
    earlier: int, later: int, flagged: bool
) -> None:
    _, second = assess(series(earlier, later), cancer_type="lung")

    assert ("rise_beyond_noise" in codes(second)) is flagged


def test_a_significant_rise_smaller_than_double_is_not_flagged() -> None:
    assert rise_p_value(20, 7.5, 33, 7.5) < 0.05

    _, second = assess(series(20, 33), cancer_type="lung")

    assert "rise_beyond_noise" not in codes(second)


def test_the_same_concentration_in_a_larger_volume_is_not_a_rise() -> None:
    draws = [make_draw(DAY_ONE, 3), make_draw(DAY_ONE + timedelta(21), 10, volume="15")]

    _, second = assess(draws)

    assert "rise_beyond_noise" not in codes(second)


def test_a_rise_from_zero_says_none_detected_and_gives_no_percentage() -> None:
    _, second = assess(series(0, 30), cancer_type="lung")

    (rise,) = [flag for flag in second.flags if flag.code == "rise_beyond_noise"]
    assert rise.message.startswith("Rose from none detected to 30 CTC/7.5 mL")
    assert "p < 0.001" in rise.message
    assert "%" not in rise.message


def test_a_rise_against_the_nadir_fires_at_one_percent_when_the_previous_test_does_not() -> None:
    # 5 -> 10 is not beyond noise (p = 0.15), but the line's nadir 1 -> 10 is (p = 0.006).
    draws = series(1, 1, 5, 10)

    *_, last = assess(draws, cancer_type="lung")

    assert codes(last) == ["rise_beyond_noise", "no_cutoff"]
    message = last.flags[0].message
    assert "nadir" in message
    assert "the draws before any therapy line" in message
    assert "p = 0.006" in message


def test_the_nadir_tie_picks_the_most_recent_draw() -> None:
    first, second, *_, last = assess(series(1, 1, 5, 10), cancer_type="lung")

    assert str(second.draw.drawn_on) in last.flags[0].message
    assert str(first.draw.drawn_on) not in last.flags[0].message


def test_a_rise_against_the_nadir_needs_p_below_one_percent() -> None:
    # 1 -> 9 has p = 0.011: enough against the previous draw, not against a nadir.
    *_, last = assess(series(1, 5, 9), cancer_type="lung")

    assert "rise_beyond_noise" not in codes(last)


def test_both_comparisons_are_named_when_both_fire() -> None:
    *_, last = assess(series(0, 2, 20), cancer_type="lung")

    message = last.flags[0].message
    assert "since the previous draw" in message
    assert "; also rose from the nadir" in message


def test_the_nadir_is_only_taken_from_the_same_therapy_line() -> None:
    lines = [line(1, date(2024, 1, 1)), line(2, date(2024, 3, 1))]
    draws = [
        make_draw(date(2024, 1, 10), 0),  # line 1
        make_draw(date(2024, 3, 1), 6),  # line 2
        make_draw(date(2024, 3, 11), 5),
        make_draw(date(2024, 3, 21), 11),  # 5 -> 11: p = 0.105
    ]

    *_, last = assess(draws, lines, cancer_type="lung")

    assert "rise_beyond_noise" not in codes(last)


def test_a_baseline_fourteen_days_before_day_one_is_the_new_lines_nadir() -> None:
    lines = [line(1, date(2024, 1, 1)), line(2, DAY_ONE)]
    draws = [
        make_draw(DAY_ONE - timedelta(days=14), 1),
        make_draw(DAY_ONE + timedelta(days=21), 5),
        make_draw(DAY_ONE + timedelta(days=42), 10),
    ]

    baseline, _, last = assess(draws, lines, cancer_type="lung")

    assert baseline.line_id == 2
    assert codes(last) == ["rise_beyond_noise", "no_cutoff"]
    assert f"the nadir of therapy line 2 (1 CTC/7.5 mL on {baseline.draw.drawn_on})" in (
        last.flags[0].message
    )


def test_a_baseline_fifteen_days_before_day_one_stays_with_the_previous_line() -> None:
    lines = [line(1, date(2024, 1, 1)), line(2, DAY_ONE)]
    draws = [
        make_draw(DAY_ONE - timedelta(days=15), 1),
        make_draw(DAY_ONE + timedelta(days=21), 5),
        make_draw(DAY_ONE + timedelta(days=42), 10),
    ]

    baseline, _, last = assess(draws, lines, cancer_type="lung")

    assert baseline.line_id == 1
    assert "rise_beyond_noise" not in codes(last)


# --- line membership --------------------------------------------------------


def test_line_membership_looks_fourteen_days_ahead() -> None:
    lines = [line(1, date(2024, 1, 1)), line(2, DAY_ONE)]

    assert line_for(DAY_ONE - timedelta(days=14), lines) == lines[1]
    assert line_for(DAY_ONE - timedelta(days=15), lines) == lines[0]
    assert line_for(date(2023, 12, 18), lines) == lines[0]
    assert line_for(date(2023, 12, 17), lines) is None


def test_on_equal_start_dates_the_higher_line_number_wins() -> None:
    lines = [line(7, DAY_ONE, number=3), line(8, DAY_ONE, number=2)]

    assert line_for(DAY_ONE, lines) == lines[0]


def test_draws_before_every_line_or_without_lines_form_one_group() -> None:
    assert line_for(DAY_ONE, []) is None

    (only,) = assess([make_draw(DAY_ONE, 2)], [line(1, DAY_ONE + timedelta(days=30))])

    assert only.line_id is None


# --- doxorubicin --------------------------------------------------------------


@pytest.mark.parametrize(("days_after", "flagged"), [(0, False), (1, True), (6, True), (7, False)])
def test_the_doxorubicin_window_is_days_one_to_six_after_a_dose(
    days_after: int, flagged: bool
) -> None:
    dose = cycle(DAY_ONE, status="given", given_on=DAY_ONE)

    (only,) = assess(
        [make_draw(DAY_ONE + timedelta(days=days_after), 1)],
        [line(1, DAY_ONE, dox=True)],
        [dose],
    )

    assert ("doxorubicin_window" in codes(only)) is flagged
    if flagged:
        assert only.flags[0].severity is Severity.INFO
        assert f"{days_after} day" in only.flags[0].message
        assert "interpret with caution" in only.flags[0].message


def test_a_line_without_doxorubicin_or_a_cycle_not_given_has_no_doxorubicin_window() -> None:
    on = DAY_ONE + timedelta(days=3)

    (plain,) = assess([make_draw(on, 1)], [line(1, DAY_ONE)], [cycle(DAY_ONE, given_on=DAY_ONE)])
    (not_given,) = assess([make_draw(on, 1)], [line(1, DAY_ONE, dox=True)], [cycle(DAY_ONE)])

    assert plain.flags == () and not_given.flags == ()


def test_the_doxorubicin_window_uses_the_most_recent_dose() -> None:
    doses = [
        cycle(DAY_ONE, status="given", given_on=DAY_ONE),
        cycle(DAY_ONE + timedelta(3), status="given", given_on=DAY_ONE + timedelta(3)),
    ]

    (only,) = assess(
        [make_draw(DAY_ONE + timedelta(days=5), 1)], [line(1, DAY_ONE, dox=True)], doses
    )

    assert "Drawn 2 days after" in only.flags[0].message


def test_a_rejected_draw_in_the_doxorubicin_window_gets_both_flags() -> None:
    dose = cycle(DAY_ONE, status="given", given_on=DAY_ONE)

    (only,) = assess(
        [make_draw(DAY_ONE + timedelta(days=2), None, status="rejected")],
        [line(1, DAY_ONE, dox=True)],
        [dose],
    )

    assert codes(only) == ["not_evaluable", "doxorubicin_window"]


# --- flag order and severities ----------------------------------------------


def test_flags_come_most_severe_first_and_in_table_order_within_a_severity() -> None:
    dose = cycle(DAY_ONE, status="given", given_on=DAY_ONE)
    draws = [
        make_draw(DAY_ONE - timedelta(days=10), 0),
        make_draw(DAY_ONE + timedelta(days=2), 30, volume="10"),
    ]

    _, last = assess(draws, [line(1, DAY_ONE, dox=True)], [dose])

    assert codes(last) == [
        "conversion_to_unfavourable",
        "unfavourable",
        "rise_beyond_noise",
        "non_standard_volume",
        "doxorubicin_window",
    ]


def test_highest_severity_and_the_worklist_order() -> None:
    high = Flag("x", Severity.HIGH, "x")
    info = Flag("y", Severity.INFO, "y")
    assert highest_severity([info, high]) is Severity.HIGH
    assert highest_severity([]) is None
    assert SEVERITY_ORDER == {Severity.HIGH: 0, Severity.REVIEW: 1, Severity.INFO: 2, None: 3}

    early_none = CycleAssessment(cycle(DAY_ONE), (), None, None)
    late_high = CycleAssessment(cycle(DAY_ONE + timedelta(7)), (high,), None, Severity.HIGH)
    early_info = CycleAssessment(cycle(DAY_ONE), (info,), None, Severity.INFO)
    late_info = CycleAssessment(cycle(DAY_ONE + timedelta(7)), (info,), None, Severity.INFO)

    ordered = sorted([late_info, early_none, early_info, late_high], key=worklist_sort_key)

    assert ordered == [late_high, early_info, late_info, early_none]


def test_enum_values_compare_equal_to_the_stored_strings() -> None:
    assert DrawStatus.RESULTED == "resulted"
    assert CycleStatus.DELAYED == "delayed"
    assert Category.UNFAVOURABLE == "unfavourable"
    assert Decimal("7.50") == STANDARD_VOLUME_ML


# --- output order and bad input ---------------------------------------------


def test_draws_at_the_same_instant_are_ordered_by_id_with_unsaved_draws_last() -> None:
    unsaved = make_draw(DAY_ONE, 1, draw_id=None)
    later_id = make_draw(DAY_ONE, 2, draw_id=20)
    earlier_id = make_draw(DAY_ONE, 3, draw_id=10)

    result = assess([unsaved, later_id, earlier_id])

    assert [a.draw for a in result] == [earlier_id, later_id, unsaved]


@pytest.mark.parametrize(
    ("draw", "match"),
    [
        (make_draw(DAY_ONE, 1, status="lost"), "lost"),
        (make_draw(DAY_ONE, None), "no CTC count"),
        (
            DrawIn(1, datetime(2024, 3, 15, 9), DAY_ONE, STANDARD_VOLUME_ML, "resulted", 1),  # noqa: DTZ001
            "aware",
        ),
    ],
)
def test_impossible_draws_are_refused_rather_than_guessed(draw: DrawIn, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        assess([draw])


# --- before each cycle --------------------------------------------------------


@pytest.mark.parametrize(
    ("days_before", "in_window"), [(7, True), (3, True), (0, True), (8, False), (-1, False)]
)
def test_the_pre_cycle_window_is_the_seven_days_before_day_one_inclusive(
    days_before: int, in_window: bool
) -> None:
    assessments = assess([make_draw(DAY_ONE - timedelta(days=days_before), 7)])

    result = assess_cycle(cycle(DAY_ONE), assessments)

    if in_window:
        assert result.draw == assessments[0]
        assert result.flags == assessments[0].flags
        assert result.severity is Severity.REVIEW
    else:
        assert result.draw is None
        assert codes(result) == ["missing_pre_cycle_draw"]


def test_the_window_length_comes_from_the_caller() -> None:
    assessments = assess([make_draw(DAY_ONE - timedelta(days=4), 1)])

    assert assess_cycle(cycle(DAY_ONE), assessments, window_days=4).draw == assessments[0]
    assert assess_cycle(cycle(DAY_ONE), assessments, window_days=3).draw is None
    with pytest.raises(ValueError, match="negative"):
        assess_cycle(cycle(DAY_ONE), assessments, window_days=-1)


def test_the_cycle_takes_the_flags_of_the_latest_evaluable_draw_in_the_window() -> None:
    draws = [
        make_draw(DAY_ONE - timedelta(days=6), 9),
        make_draw(DAY_ONE - timedelta(days=3), 2),
        make_draw(DAY_ONE - timedelta(days=1), None, status="rejected"),
    ]
    assessments = assess(list(reversed(draws)))

    result = assess_cycle(cycle(DAY_ONE), list(reversed(assessments)))

    assert result.draw == assessments[1]
    assert codes(result) == ["conversion_to_favourable"]
    assert result.severity is Severity.INFO


def test_a_cycle_whose_window_draw_has_no_flags_has_no_severity() -> None:
    assessments = assess([make_draw(DAY_ONE - timedelta(days=3), 1)])

    result = assess_cycle(cycle(DAY_ONE), assessments)

    assert (result.flags, result.severity) == ((), None)


def test_a_missing_pre_cycle_draw_is_flagged_for_review() -> None:
    result = assess_cycle(cycle(DAY_ONE, number=3), [])

    assert codes(result) == ["missing_pre_cycle_draw"]
    assert result.severity is Severity.REVIEW
    assert str(DAY_ONE - timedelta(days=7)) in result.flags[0].message
    assert "cycle 3" in result.flags[0].message


def test_a_rejected_draw_in_the_window_adds_not_evaluable_naming_its_date_and_status() -> None:
    rejected_on = DAY_ONE - timedelta(days=5)
    assessments = assess(
        [
            make_draw(rejected_on, None, status="rejected"),
            make_draw(DAY_ONE - timedelta(days=2), None, status="failed"),
        ]
    )

    result = assess_cycle(cycle(DAY_ONE), assessments)

    assert codes(result) == ["missing_pre_cycle_draw", "not_evaluable"]
    assert f"rejected on {rejected_on}" in result.flags[1].message
    assert "failed on" in result.flags[1].message
    assert "repeat draw" in result.flags[1].message


def test_a_pending_draw_in_the_window_does_not_replace_a_result() -> None:
    pending_on = DAY_ONE - timedelta(days=4)
    assessments = assess([make_draw(pending_on, None, status="pending")])

    result = assess_cycle(cycle(DAY_ONE), assessments)

    assert codes(result) == ["missing_pre_cycle_draw"]
    assert f"pending for the draw of {pending_on}" in result.flags[0].message


@pytest.mark.parametrize("status", ["given", "cancelled"])
def test_given_and_cancelled_cycles_get_no_flags(status: str) -> None:
    assessments = assess([make_draw(DAY_ONE - timedelta(days=2), 9)])

    result = assess_cycle(cycle(DAY_ONE, status=status, given_on=DAY_ONE), assessments)

    assert (result.flags, result.severity) == ((), None)
    assert result.draw == assessments[0]
    assert assess_cycle(cycle(DAY_ONE, status=status), []).flags == ()


def test_a_delayed_cycle_is_still_upcoming() -> None:
    result = assess_cycle(cycle(DAY_ONE, status="delayed"), [])

    assert codes(result) == ["missing_pre_cycle_draw"]


def test_an_unknown_cycle_status_is_refused() -> None:
    with pytest.raises(ValueError, match="postponed"):
        assess_cycle(cycle(DAY_ONE, status="postponed"), [])


# --- properties over generated patients ---------------------------------------

STATUS_CHOICES = ["resulted"] * 6 + ["rejected", "failed", "pending", "cancelled"]
VOLUME_CHOICES = ["7.5", "7.5", "7.5", "4", "10", "15"]


@st.composite
def patients(draw: st.DrawFn) -> tuple[list[DrawIn], list[LineIn], list[CycleIn], str]:
    start = date(2024, 1, 1)
    day_offsets = draw(st.lists(st.integers(0, 400), min_size=1, max_size=25))
    draws = []
    for offset in day_offsets:
        status = draw(st.sampled_from(STATUS_CHOICES))
        count = draw(st.integers(0, 60)) if status == "resulted" else None
        on = start + timedelta(days=offset)
        draws.append(
            make_draw(on, count, status=status, volume=draw(st.sampled_from(VOLUME_CHOICES)))
        )
    starts = sorted(draw(st.lists(st.integers(0, 400), max_size=3)))
    lines = [
        line(i + 1, start + timedelta(days=s), dox=draw(st.booleans()))
        for i, s in enumerate(starts)
    ]
    cycles = [
        cycle(
            start + timedelta(days=s),
            status=draw(st.sampled_from(list(CycleStatus))),
            given_on=start + timedelta(days=s) if draw(st.booleans()) else None,
            line_id=draw(st.sampled_from([ln.id for ln in lines])),
        )
        for s in (draw(st.lists(st.integers(0, 420), max_size=12)) if lines else [])
    ]
    cancer_type = draw(st.sampled_from(["breast", "prostate", "colorectal", "lung"]))
    return draws, lines, cycles, cancer_type


def _all_messages(
    draws: list[DrawIn], lines: list[LineIn], cycles: list[CycleIn], cancer_type: str
) -> list[str]:
    assessments = assess(draws, lines, cycles, cancer_type=cancer_type)
    cycle_flags = [f for c in cycles for f in assess_cycle(c, assessments).flags]
    return [f.message for a in assessments for f in a.flags] + [f.message for f in cycle_flags]


@settings(max_examples=300, deadline=None)
@given(patients())
def test_no_message_ever_uses_a_forbidden_word_or_a_percentage(
    patient: tuple[list[DrawIn], list[LineIn], list[CycleIn], str],
) -> None:
    for message in _all_messages(*patient):
        lowered = message.lower()
        assert not any(word in lowered for word in FORBIDDEN_WORDS), message
        assert "%" not in message


def test_no_message_uses_a_forbidden_word_over_a_large_seeded_scenario_set() -> None:
    rng = random.Random(20240315)
    seen = set()
    for _ in range(300):
        start = date(2024, 1, 1)
        draws = [_random_draw(rng, start) for _ in range(rng.randint(1, 30))]
        lines = [line(1, start + timedelta(30), dox=True), line(2, start + timedelta(150))]
        cycles = [
            cycle(
                start + timedelta(days=d),
                status=rng.choice(list(CycleStatus)),
                given_on=start + timedelta(days=d),
                line_id=1 if d < 150 else 2,
            )
            for d in range(30, 300, 21)
        ]
        assessments = assess(draws, lines, cycles, cancer_type=rng.choice(list(CUTOFFS) + ["lung"]))
        flags = [f for a in assessments for f in a.flags]
        flags += [f for c in cycles for f in assess_cycle(c, assessments).flags]
        for flag in flags:
            seen.add(flag.code)
            assert not any(word in flag.message.lower() for word in FORBIDDEN_WORDS)
    assert seen == set(FlagCode)  # the scenario set reaches every flag


def _random_draw(rng: random.Random, start: date) -> DrawIn:
    status = rng.choice(STATUS_CHOICES)
    count = rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 9, 12, 30, 200]) if status == "resulted" else None
    on = start + timedelta(days=rng.randint(0, 300))
    return make_draw(on, count, status=status, volume=rng.choice(VOLUME_CHOICES))


@given(
    count=st.integers(0, 500),
    volume=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("20"), places=1),
    factor=st.integers(1, 20),
)
def test_scaling_count_and_volume_together_keeps_the_rate(
    count: int, volume: Decimal, factor: int
) -> None:
    assert rate_per_7_5_ml(count * factor, volume * factor) == rate_per_7_5_ml(count, volume)


@settings(max_examples=200, deadline=None)
@given(patients())
def test_a_non_evaluable_draw_never_gets_a_category_or_interval(
    patient: tuple[list[DrawIn], list[LineIn], list[CycleIn], str],
) -> None:
    draws, lines, cycles, cancer_type = patient

    for assessment in assess(draws, lines, cycles, cancer_type=cancer_type):
        if assessment.draw.status != "resulted":
            assert not assessment.evaluable
            assert assessment.category is None and assessment.ci95 is None
            assert assessment.rate_per_7_5_ml is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=1, max_size=20), st.sampled_from(["7.5", "10"]))
def test_with_equal_volumes_counts_that_never_rise_never_get_rise_beyond_noise(
    counts: list[int], volume: str
) -> None:
    falling = sorted(counts, reverse=True)
    draws = [
        make_draw(DAY_ONE + timedelta(days=7 * i), c, volume=volume) for i, c in enumerate(falling)
    ]

    for assessment in assess(draws, [line(1, DAY_ONE)]):
        assert "rise_beyond_noise" not in codes(assessment)


@settings(max_examples=200, deadline=None)
@given(patients(), st.randoms(use_true_random=False))
def test_output_is_oldest_first_whatever_the_input_order(
    patient: tuple[list[DrawIn], list[LineIn], list[CycleIn], str], rng: random.Random
) -> None:
    draws, lines, cycles, cancer_type = patient
    shuffled = rng.sample(draws, len(draws))

    result = assess(shuffled, lines, cycles, cancer_type=cancer_type)

    assert [a.draw for a in result] == sorted(draws, key=lambda d: (d.drawn_at, d.id))
    assert result == assess(draws, lines, cycles, cancer_type=cancer_type)
