"""The rise test, the nadir and therapy lines, replicate variation (specification section 3).

No database. Worked values are the specification's, to the decimals it prints.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal

import pytest
from scipy.stats import norm

from patients.rules import (
    FlagCode,
    Settings,
    Severity,
    duplicate_pairs,
    format_p_value,
    line_for,
    pool,
    rate_ratio,
    rise_p_value,
)
from patients.wording import date_text
from tests.rules.helpers import DEFAULTS, assess, codes, flag, line, series, tube

START = date(2026, 1, 5)
RISE = FlagCode.RISE_BEYOND_NOISE


def rises(*counts: int, cancer_type: str = "breast", settings: Settings = DEFAULTS) -> list[bool]:
    """Whether each sample of a series (7.5 mL, 21 days apart) gets rise_beyond_noise."""
    found = assess(series(*counts), cancer_type=cancer_type, settings=settings)
    return [RISE in codes(a) for a in found]


# --- the exact test and its worked values --------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "v1", "x2", "v2", "p"),
    [
        (0, "7.5", 5, "7.5", "0.031"),
        (2, "7.5", 8, "7.5", "0.055"),
        (2, "7.5", 9, "7.5", "0.033"),
        (5, "7.5", 12, "7.5", "0.072"),
        (10, "7.5", 20, "7.5", "0.049"),
        (1, "7.5", 9, "7.5", "0.011"),
        (3, "7.5", 10, "15", "0.32"),
        (3, "7.5", 6, "15", "0.65"),
    ],
)
def test_the_specifications_worked_p_values_are_reproduced(
    x1: int, v1: str, x2: int, v2: str, p: str
) -> None:
    found = rise_p_value(x1, Decimal(v1), x2, Decimal(v2))

    assert found is not None
    assert round(found, len(p.split(".")[1])) == float(p)


@pytest.mark.parametrize(
    ("earlier", "later", "later_volume", "flagged"),
    [
        (0, 5, "7.5", True),  # p 0.031, ratio infinite
        (2, 8, "7.5", False),  # p 0.055
        (2, 9, "7.5", True),  # p 0.033
        (5, 12, "7.5", False),  # p 0.072
        (10, 20, "7.5", True),  # p 0.049, ratio exactly 2
        (1, 9, "7.5", True),  # p 0.011
        (3, 10, "15", False),  # 3 -> 5 per 7.5 mL: ratio 1.67, p 0.32
        (3, 6, "15", False),  # the same concentration, p 0.65
    ],
)
def test_a_rise_against_the_previous_sample_needs_p_below_five_percent_and_a_doubling(
    earlier: int, later: int, later_volume: str, flagged: bool
) -> None:
    tubes = [tube(START, earlier), tube(START + timedelta(days=21), later, volume=later_volume)]

    _, found = assess(tubes)

    assert (RISE in codes(found)) is flagged


@pytest.mark.parametrize(
    ("earlier", "minimum"),
    [(0, 5), (1, 7), (2, 9), (3, 10), (4, 12), (5, 13), (6, 15), (8, 18), (10, 20), (20, 33)],
)
def test_the_minimum_later_count_for_p_below_five_percent_matches_the_table(
    earlier: int, minimum: int
) -> None:
    at_minimum = rise_p_value(earlier, 7.5, minimum, 7.5)
    one_fewer = rise_p_value(earlier, 7.5, minimum - 1, 7.5)

    assert at_minimum is not None and at_minimum < 0.05
    assert one_fewer is not None and one_fewer >= 0.05


def test_after_twenty_the_first_flagged_count_is_forty() -> None:
    # 20 -> 33 is beyond counting noise (p < 0.05) but not a doubling.
    flagged = [later for later in range(21, 60) if rises(20, later)[1]]

    assert flagged[0] == 40
    assert flagged == list(range(40, 60))


def test_there_is_no_rise_when_neither_sample_has_a_cell() -> None:
    assert rise_p_value(0, 7.5, 0, 7.5) is None
    assert rise_p_value(3, 7.5, 0, 7.5) == 1.0
    assert rises(0, 0) == [False, False]


def test_the_rate_ratio_from_zero_is_infinite_and_from_zero_to_zero_undefined() -> None:
    assert rate_ratio(0, 3) == math.inf
    assert rate_ratio(0, 0) is None
    assert rate_ratio(2, 9) == 4.5


def test_a_rise_is_for_review_and_says_it_is_larger_than_counting_noise() -> None:
    first, later = assess(series(2, 9), cancer_type="prostate")

    rise = flag(later, RISE)
    assert rise.severity is Severity.REVIEW
    assert rise.message == (
        f"Rose from 2 CTC/7.5 mL to 9 CTC/7.5 mL since the previous sample on "
        f"{date_text(first.draw.drawn_on)}: larger than counting noise (p = 0.033)"
    )


def test_a_rise_from_zero_says_none_detected_and_gives_no_percentage() -> None:
    _, later = assess(series(0, 30))

    message = flag(later, RISE).message
    assert message.startswith("Rose from none detected in 7.5 mL to 30 CTC/7.5 mL")
    assert message.endswith("(p < 0.001)")
    assert "%" not in message


def test_a_rise_from_a_zero_in_less_blood_says_the_volume_actually_analysed() -> None:
    _, later = assess([tube(START, 0, volume="4"), tube(START + timedelta(days=21), 30)])

    assert flag(later, RISE).message.startswith("Rose from none detected in 4 mL to 30 CTC/7.5 mL")


def test_the_previous_sample_is_the_previous_one_in_time_in_any_therapy_line() -> None:
    lines = [line(1, START), line(2, START + timedelta(days=20))]
    tubes = series(2, 9)

    _, later = assess(list(reversed(tubes)), lines)

    assert later.line_id == 2
    assert "since the previous sample" in flag(later, RISE).message


# --- p-values in messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0327, "p = 0.033"),
        (0.0009, "p < 0.001"),
        (0.00960540771484375, "p = 0.0096"),  # 4 -> 15 against a nadir
        (0.04996, "p = 0.0499"),
        (0.0104, "p = 0.010"),
        (0.05, "p = 0.050"),
    ],
)
def test_a_p_value_just_below_a_decision_level_is_never_printed_as_reaching_it(
    p: float, text: str
) -> None:
    assert format_p_value(p) == text


# --- the nadir -----------------------------------------------------------------------------


def test_a_rise_from_the_nadir_needs_p_below_one_percent() -> None:
    # 5 -> 10 is within counting noise (p 0.15); the nadir 1 -> 10 is not (p 0.006).
    # 1 -> 9 (p 0.011) would be enough against the previous sample, not against a nadir.
    assert rises(1, 5, 10)[2]
    assert not rises(1, 5, 9)[2]


def test_a_rise_from_the_nadir_names_the_nadir_its_line_and_its_date() -> None:
    first, second, _, last = assess(series(1, 1, 5, 10))

    message = flag(last, RISE).message
    assert message == (
        "Rose from the nadir of the samples before any therapy line "
        f"(1 CTC/7.5 mL on {date_text(second.draw.drawn_on)}) to 10 CTC/7.5 mL: "
        "larger than counting noise (p = 0.006)"
    )
    # On a tie the most recent sample is the nadir.
    assert str(first.draw.drawn_on) not in message


def test_a_nadir_p_just_below_one_percent_is_printed_below_it() -> None:
    *_, last = assess(series(4, 7, 15))

    assert flag(last, RISE).message.endswith("(p = 0.0096)")


def test_when_both_comparisons_hold_the_message_names_both() -> None:
    first, _, last = assess(series(0, 2, 20))

    message = flag(last, RISE).message
    assert message.startswith("Rose from 2 CTC/7.5 mL to 20 CTC/7.5 mL since the previous sample")
    assert (
        "; also rose from the nadir of the samples before any therapy line "
        f"(none detected in 7.5 mL on {date_text(first.draw.drawn_on)}) to 20 CTC/7.5 mL"
    ) in message


def test_a_falling_count_never_rises_from_the_nadir() -> None:
    # 40 then 20, with a nadir of 2: 2 -> 20 is far beyond noise, but the count is falling.
    assert rises(2, 40, 20) == [False, True, False]
    # Holding at 40 is not falling: that does rise from the nadir.
    assert rises(2, 40, 40) == [False, True, True]


def test_the_nadir_is_taken_only_from_the_samples_own_therapy_line() -> None:
    lines = [line(1, START), line(2, date(2026, 3, 1))]
    tubes = [
        tube(date(2026, 1, 10), 0),  # line 1
        tube(date(2026, 3, 1), 6),  # line 2
        tube(date(2026, 3, 11), 5),
        tube(date(2026, 3, 21), 11),  # 5 -> 11: p 0.105; 0 -> 11 would be p < 0.001
    ]

    *_, by_line = assess(tubes, lines)
    *_, one_group = assess(tubes)

    assert RISE not in codes(by_line)
    assert flag(one_group, RISE).message.startswith("Rose from the nadir")


@pytest.mark.parametrize(("days_before", "flagged"), [(14, True), (15, False)])
def test_a_baseline_up_to_fourteen_days_before_day_one_is_the_new_lines_nadir(
    days_before: int, flagged: bool
) -> None:
    new_line = date(2026, 3, 2)
    lines = [line(1, START), line(2, new_line)]
    tubes = [
        tube(new_line - timedelta(days=days_before), 1),
        tube(new_line + timedelta(days=21), 5),
        tube(new_line + timedelta(days=42), 10),  # 5 -> 10: p 0.15; 1 -> 10: p 0.006
    ]

    baseline, _, last = assess(tubes, lines)

    assert baseline.line_id == (2 if flagged else 1)
    assert (RISE in codes(last)) is flagged
    if flagged:
        assert "rose from the nadir of therapy line 2" in flag(last, RISE).message.lower()


def test_line_membership_reaches_fourteen_days_ahead_of_the_start_date() -> None:
    first, second = line(1, date(2026, 1, 1)), line(2, date(2026, 3, 1))
    lines = [second, first]

    assert line_for(date(2026, 2, 15), lines) == second
    assert line_for(date(2026, 2, 14), lines) == first
    assert line_for(date(2025, 12, 18), lines) == first
    assert line_for(date(2025, 12, 17), lines) is None
    assert line_for(date(2026, 6, 1), []) is None


def test_on_equal_start_dates_the_later_entered_line_wins() -> None:
    day = date(2026, 3, 1)
    lines = [line(7, day, number=3), line(8, day, number=2)]

    assert line_for(day, lines) == lines[0]
    assert line_for(day, list(reversed(lines))) == lines[0]


def test_samples_before_every_line_form_one_group() -> None:
    (only,) = assess([tube(START, 2)], [line(1, START + timedelta(days=30))])

    assert only.line_id is None


# --- counts that are a lower bound ---------------------------------------------------------


def test_a_lower_bound_is_never_compared_against() -> None:
    # 10 -> 25 is a rise (p 0.008); from "> 10" nothing can be said.
    exact = [tube(START, 10), tube(START + timedelta(days=21), 25)]
    bound = [tube(START, 10, more_than=True), tube(START + timedelta(days=21), 25)]

    assert RISE in codes(assess(exact)[1])
    assert RISE not in codes(assess(bound)[1])


def test_a_later_lower_bound_is_compared_with_its_bound() -> None:
    _, to_bound = assess([tube(START, 2), tube(START + timedelta(days=21), 20, more_than=True)])
    _, small_bound = assess([tube(START, 2), tube(START + timedelta(days=21), 6, more_than=True)])

    assert flag(to_bound, RISE).message.startswith("Rose from 2 CTC/7.5 mL to > 20 CTC/7.5 mL")
    assert f"({format_p_value(rise_p_value(2, 7.5, 20, 7.5) or 1)})" in flag(to_bound, RISE).message
    # 2 -> 6 is within counting noise (p 0.14), whatever the true count above 6.
    assert RISE not in codes(small_bound)


def test_a_lower_bound_is_never_the_nadir() -> None:
    # Colorectal, cut-off 3. A nadir of 3 would make 14 a rise (p 0.006); the lowest
    # exact count, 6, does not (p 0.058), and 10 -> 14 is no doubling.
    days = [START + timedelta(days=21 * i) for i in range(4)]
    exact = [tube(days[0], 6), tube(days[1], 3), tube(days[2], 10), tube(days[3], 14)]
    bound = [tube(days[0], 6), tube(days[1], 3, more_than=True), tube(days[2], 10)]
    bound.append(tube(days[3], 14))

    assert RISE in codes(assess(exact, cancer_type="colorectal")[3])
    assert RISE not in codes(assess(bound, cancer_type="colorectal")[3])


def test_a_lower_bound_never_takes_the_place_of_the_true_nadir() -> None:
    # Colorectal: 4, then "> 3", 8 and 15. Against the nadir of 4, 15 is a rise (p 0.0096);
    # a bound taking the nadir's place would hide it (and 8 -> 15 is no doubling).
    days = [START + timedelta(days=21 * i) for i in range(4)]
    tubes = [tube(days[0], 4), tube(days[1], 3, more_than=True), tube(days[2], 8)]
    tubes.append(tube(days[3], 15))

    *_, last = assess(tubes, cancer_type="colorectal")

    assert flag(last, RISE).message == (
        f"Rose from the nadir of the samples before any therapy line (4 CTC/7.5 mL on "
        f"{date_text(days[0])}) to 15 CTC/7.5 mL: larger than counting noise (p = 0.0096)"
    )


@pytest.mark.parametrize(("previous_bound", "flagged"), [(40, False), (15, True)])
def test_a_previous_lower_bound_counts_with_its_bound_when_deciding_if_the_count_falls(
    previous_bound: int, flagged: bool
) -> None:
    days = [START + timedelta(days=21 * i) for i in range(3)]
    tubes = [tube(days[0], 1), tube(days[1], previous_bound, more_than=True), tube(days[2], 20)]

    *_, last = assess(tubes)

    assert (RISE in codes(last)) is flagged


# --- replicate variation -------------------------------------------------------------------


def z_test_p(x1: int, v1: float, x2: int, v2: float, cv: float) -> float:
    """The specification's log-rate test with replicate variation, written out again."""
    r1, r2 = (x1 + 0.5) * 7.5 / v1, (x2 + 0.5) * 7.5 / v2
    z = (math.log(r2) - math.log(r1)) / math.sqrt(1 / (x1 + 0.5) + 1 / (x2 + 0.5) + 2 * cv**2)
    return float(norm.sf(z))


def test_with_replicate_variation_the_larger_of_the_two_p_values_counts() -> None:
    exact = rise_p_value(2, 7.5, 9, 7.5)
    # 2 -> 9 with cv 0.5: the log-rate test is the stricter one.
    assert rise_p_value(2, 7.5, 9, 7.5, cv=0.5) == pytest.approx(z_test_p(2, 7.5, 9, 7.5, 0.5))
    assert exact is not None and z_test_p(2, 7.5, 9, 7.5, 0.5) > exact
    # 10 -> 20 with cv 0.01: the exact test is the stricter one.
    assert z_test_p(10, 7.5, 20, 7.5, 0.01) < 0.0494
    assert rise_p_value(10, 7.5, 20, 7.5, cv=0.01) == rise_p_value(10, 7.5, 20, 7.5)


def test_a_rise_beyond_the_labs_replicate_variation_says_so() -> None:
    _, later = assess(series(2, 9), settings=Settings(extra_poisson_cv=0.25))

    assert flag(later, RISE).message.endswith(
        "larger than counting noise and than the lab's replicate variation (p = 0.046)"
    )


def test_enough_replicate_variation_removes_a_rise_that_counting_noise_alone_would_flag() -> None:
    assert rises(2, 9) == [False, True]
    assert rises(2, 9, settings=Settings(extra_poisson_cv=0.5)) == [False, False]


def test_duplicate_pairs_are_samples_of_two_exact_tubes_of_equal_volume() -> None:
    days = [START + timedelta(days=i) for i in range(6)]
    tubes = [
        *[tube(days[0], 3), tube(days[0], 5)],  # a pair
        *[tube(days[1], 1), tube(days[1], 2), tube(days[1], 3)],  # three tubes
        *[tube(days[2], 1), tube(days[2], 2, volume="5")],  # unequal volumes
        *[tube(days[3], 9, more_than=True), tube(days[3], 7)],  # a lower bound
        tube(days[4], 4),  # one tube
        *[tube(days[5], 0), tube(days[5], 2), tube(days[5], None, status="rejected")],
    ]

    assert duplicate_pairs(pool(tubes)) == [(3, 5), (0, 2)]
