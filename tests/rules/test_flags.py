"""Flags on a sample (specification section 3): the one category flag, its severity, doxorubicin.

No database. The rise test has its own file (test_rise.py).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal

import pytest

from patients.rules import (
    STANDARD_VOLUME_ML,
    Category,
    DrawAssessment,
    DrawIn,
    Flag,
    FlagCode,
    Settings,
    Severity,
    assess_samples,
    categorize,
    highest_severity,
    is_clear,
    p_at_or_above_cutoff,
    pool,
)
from patients.wording import date_text
from tests.rules.helpers import assess, codes, cycle, flag, line, series, tube

START = date(2026, 1, 5)
CATEGORY_FLAGS = {
    FlagCode.BASELINE_UNFAVOURABLE,
    FlagCode.CONVERSION_TO_UNFAVOURABLE,
    FlagCode.PERSISTENT_UNFAVOURABLE,
    FlagCode.CONVERSION_TO_FAVOURABLE,
}


def category_flags(counts: tuple[int, ...]) -> list[list[str]]:
    return [[c for c in codes(a) if c in CATEGORY_FLAGS] for a in assess(series(*counts))]


# --- clear, or near the cut-off ------------------------------------------------------------

# The project's table (docs/clinical-rules.md, section 3), at 7.5 mL and the default 0.90.
CLEARLY_FAVOURABLE, NEAR_FAVOURABLE, NEAR_UNFAVOURABLE, CLEARLY_UNFAVOURABLE = range(4)
SIDES = {
    5: {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 3, 9: 3, 12: 3},
    3: {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 2, 6: 3, 7: 3, 12: 3},
}


@pytest.mark.parametrize(
    ("cutoff", "count"), [(cutoff, count) for cutoff, table in SIDES.items() for count in table]
)
def test_a_sample_is_clear_or_near_the_cut_off_as_the_table_says(cutoff: int, count: int) -> None:
    category = categorize(count, cutoff)
    clear = is_clear(category, p_at_or_above_cutoff(count, STANDARD_VOLUME_ML, cutoff), 0.90)

    side = {
        (Category.FAVOURABLE, True): CLEARLY_FAVOURABLE,
        (Category.FAVOURABLE, False): NEAR_FAVOURABLE,
        (Category.UNFAVOURABLE, False): NEAR_UNFAVOURABLE,
        (Category.UNFAVOURABLE, True): CLEARLY_UNFAVOURABLE,
    }[(category, clear)]
    assert side == SIDES[cutoff][count]


def test_both_clarity_boundaries_are_inclusive_as_the_numbers_print() -> None:
    # In floats 1 - 0.90 is 0.09999999999999998, which would make exactly 0.10 "near".
    assert is_clear(Category.FAVOURABLE, 0.10, 0.90)
    assert not is_clear(Category.FAVOURABLE, math.nextafter(0.10, 1), 0.90)
    assert is_clear(Category.UNFAVOURABLE, 0.90, 0.90)
    assert not is_clear(Category.UNFAVOURABLE, math.nextafter(0.90, 0), 0.90)


@pytest.mark.parametrize(
    ("cancer_type", "count", "severity"),
    [
        ("breast", 7, Severity.REVIEW),  # chance 0.82
        ("breast", 8, Severity.HIGH),  # chance 0.90
        ("colorectal", 5, Severity.REVIEW),  # chance 0.87
        ("colorectal", 6, Severity.HIGH),  # chance 0.95
    ],
)
def test_a_conversion_is_high_only_when_the_sample_is_clearly_unfavourable(
    cancer_type: str, count: int, severity: Severity
) -> None:
    _, later = assess(series(0, count), cancer_type=cancer_type)

    assert flag(later, FlagCode.CONVERSION_TO_UNFAVOURABLE).severity is severity


def test_a_stable_count_near_the_cut_off_gets_review_not_high() -> None:
    _, near, clear = assess(series(9, 7, 8))

    assert flag(near, FlagCode.PERSISTENT_UNFAVOURABLE).severity is Severity.REVIEW
    assert flag(clear, FlagCode.PERSISTENT_UNFAVOURABLE).severity is Severity.HIGH


@pytest.mark.parametrize(
    ("clear_probability", "count", "severity"),
    [
        (0.80, 7, Severity.HIGH),
        (0.95, 8, Severity.REVIEW),
        (0.95, 9, Severity.HIGH),
        (p_at_or_above_cutoff(8, STANDARD_VOLUME_ML, 5), 8, Severity.HIGH),
        (math.nextafter(p_at_or_above_cutoff(8, STANDARD_VOLUME_ML, 5), 1), 8, Severity.REVIEW),
    ],
)
def test_how_clear_a_sample_must_be_comes_from_the_clear_probability_setting(
    clear_probability: float, count: int, severity: Severity
) -> None:
    config = Settings(clear_probability=clear_probability)

    _, later = assess(series(1, count), settings=config)

    assert flag(later, FlagCode.CONVERSION_TO_UNFAVOURABLE).severity is severity


# --- the one category flag -----------------------------------------------------------------


@pytest.mark.parametrize("count", [5, 20])
def test_an_unfavourable_first_sample_is_a_baseline_for_review_however_clear(count: int) -> None:
    (only,) = assess([tube(START, count)])

    assert codes(only) == [FlagCode.BASELINE_UNFAVOURABLE]
    assert only.flags[0].severity is Severity.REVIEW


def test_a_baseline_near_the_cut_off_says_so_and_gives_the_chance() -> None:
    (only,) = assess([tube(START, 5)])

    assert only.flags[0].message == (
        "Unfavourable at baseline: 5 CTC/7.5 mL is at or above the cut-off of 5 (breast); "
        "near the cut-off: chance that the true count is at or above it about 53%. "
        "A repeat draw would settle it"
    )


@pytest.mark.parametrize(("counts"), [(0,), (4,), (2, 4), (4, 0, 3)])
def test_favourable_samples_after_favourable_ones_have_no_flag(counts: tuple[int, ...]) -> None:
    assert all(a.flags == () for a in assess(series(*counts)))


def test_a_new_lines_baseline_is_compared_with_the_previous_sample() -> None:
    lines = [line(1, START), line(2, START + timedelta(days=21))]

    _, baseline = assess(series(9, 12), lines)

    assert codes(baseline) == [FlagCode.PERSISTENT_UNFAVOURABLE]


def test_the_near_the_cut_off_conversion_reads_as_the_specifications_example() -> None:
    earlier = tube(date(2026, 11, 4), 3)

    _, later = assess([earlier, tube(date(2026, 11, 25), 5)])

    assert later.flags[0] == Flag(
        FlagCode.CONVERSION_TO_UNFAVOURABLE,
        Severity.REVIEW,
        "Converted to unfavourable: 5 CTC/7.5 mL (previously 3 on Wed 4 Nov 2026); near the "
        "cut-off: chance that the true count is at or above it about 53%. "
        "A repeat draw would settle it",
        later.draw.id,
    )


def test_a_clear_conversion_is_high_and_names_the_previous_value_and_date() -> None:
    first, later = assess(series(4, 9))

    assert later.flags[0] == Flag(
        FlagCode.CONVERSION_TO_UNFAVOURABLE,
        Severity.HIGH,
        "Converted to unfavourable: 9 CTC/7.5 mL "
        f"(previously 4 on {date_text(first.draw.drawn_on)})",
        later.draw.id,
    )


def test_a_clear_persistence_is_high_and_names_the_previous_value_and_date() -> None:
    first, later = assess(series(9, 10))

    assert later.flags[0] == Flag(
        FlagCode.PERSISTENT_UNFAVOURABLE,
        Severity.HIGH,
        f"Still unfavourable: 10 CTC/7.5 mL (previously 9 on {date_text(first.draw.drawn_on)})",
        later.draw.id,
    )


def test_a_conversion_to_favourable_is_information_only() -> None:
    first, later = assess(series(9, 0))

    assert codes(later) == [FlagCode.CONVERSION_TO_FAVOURABLE]
    assert later.flags[0].severity is Severity.INFO
    assert later.flags[0].message == (
        "Converted to favourable: none detected in 7.5 mL is below the cut-off of 5 (breast) "
        f"(previously 9 on {date_text(first.draw.drawn_on)})"
    )
    assert not later.needs_review


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((7,), [["baseline_unfavourable"]]),
        ((2, 9), [[], ["conversion_to_unfavourable"]]),
        ((9, 30), [["baseline_unfavourable"], ["persistent_unfavourable"]]),
        ((9, 1), [["baseline_unfavourable"], ["conversion_to_favourable"]]),
    ],
)
def test_every_sample_has_at_most_one_category_flag(
    counts: tuple[int, ...], expected: list[list[str]]
) -> None:
    assert category_flags(counts) == expected


def test_a_lower_bound_after_a_favourable_sample_is_a_high_conversion() -> None:
    first, bound = assess([tube(START, 2), tube(START + timedelta(days=21), 1000, more_than=True)])

    conversion = flag(bound, FlagCode.CONVERSION_TO_UNFAVOURABLE)
    assert conversion.severity is Severity.HIGH
    assert conversion.message == (
        "Converted to unfavourable: > 1000 CTC/7.5 mL "
        f"(previously 2 on {date_text(first.draw.drawn_on)})"
    )


def test_a_sample_after_a_lower_bound_names_the_bound_as_the_previous_value() -> None:
    tubes = [tube(START, 1000, more_than=True), tube(START + timedelta(days=21), 900)]

    bound, later = assess(tubes)

    assert flag(later, FlagCode.PERSISTENT_UNFAVOURABLE).message == (
        "Still unfavourable: 900 CTC/7.5 mL "
        f"(previously > 1000 on {date_text(bound.draw.drawn_on)})"
    )


# --- doxorubicin ---------------------------------------------------------------------------

DOSE = date(2026, 2, 2)


def doxorubicin_patient(
    *tubes: DrawIn, doxorubicin: bool = True, given: bool = True
) -> list[DrawAssessment]:
    """A line started 30 days before DOSE, and one cycle given (or only planned) on DOSE."""
    lines = [line(1, DOSE - timedelta(days=30), doxorubicin=doxorubicin)]
    cycles = [cycle(DOSE, status="given" if given else "planned", given_on=DOSE if given else None)]
    return assess(tubes, lines, cycles)


@pytest.mark.parametrize(("days_after", "flagged"), [(0, False), (1, True), (6, True), (7, False)])
def test_the_doxorubicin_window_is_days_one_to_six_after_a_dose(
    days_after: int, flagged: bool
) -> None:
    (only,) = doxorubicin_patient(tube(DOSE + timedelta(days=days_after), 1))

    assert (codes(only) == [FlagCode.DOXORUBICIN_WINDOW]) is flagged
    if not flagged:
        assert only.flags == ()


def test_the_doxorubicin_flag_is_information_that_says_why_and_when() -> None:
    (one_day,) = doxorubicin_patient(tube(DOSE + timedelta(days=1), 1))
    (six_days,) = doxorubicin_patient(tube(DOSE + timedelta(days=6), 1))

    assert one_day.flags[0].severity is Severity.INFO
    assert one_day.flags[0].message == (
        "Drawn 1 day after a doxorubicin dose given on Mon 2 Feb 2026: doxorubicin can make the "
        "count falsely high (lab guidance: draw at least 7 days after the dose)"
    )
    assert six_days.flags[0].message.startswith("Drawn 6 days after")


@pytest.mark.parametrize(("days_after", "severity"), [(0, Severity.HIGH), (3, Severity.REVIEW)])
def test_a_high_flag_in_the_doxorubicin_window_is_lowered_to_review_saying_why(
    days_after: int, severity: Severity
) -> None:
    _, later = doxorubicin_patient(
        tube(DOSE - timedelta(days=21), 1), tube(DOSE + timedelta(days=days_after), 9)
    )

    conversion = flag(later, FlagCode.CONVERSION_TO_UNFAVOURABLE)
    assert conversion.severity is severity
    lowered = (
        "Lowered from high to review: drawn within 6 days of a doxorubicin dose, "
        "which can make the count falsely high"
    )
    assert (lowered in conversion.message) is (severity is Severity.REVIEW)
    assert highest_severity(later.flags) is severity


def test_a_review_flag_in_the_doxorubicin_window_is_left_as_it_was() -> None:
    day = DOSE + timedelta(days=3)

    _, plain = assess([tube(DOSE - timedelta(days=21), 1), tube(day, 6)])
    _, in_window = doxorubicin_patient(tube(DOSE - timedelta(days=21), 1), tube(day, 6))

    conversion = flag(in_window, FlagCode.CONVERSION_TO_UNFAVOURABLE)
    assert conversion.severity is Severity.REVIEW
    assert conversion.message == plain.flags[0].message
    assert "Lowered" not in conversion.message


def test_the_doxorubicin_window_counts_from_the_latest_dose_before_the_draw() -> None:
    lines = [line(1, DOSE - timedelta(days=30), doxorubicin=True)]
    doses = [
        cycle(DOSE, status="given", given_on=DOSE),
        cycle(DOSE + timedelta(days=3), status="given", given_on=DOSE + timedelta(days=3)),
    ]

    (after_both,) = assess([tube(DOSE + timedelta(days=5), 1)], lines, doses)
    (on_second_dose_day,) = assess([tube(DOSE + timedelta(days=3), 1)], lines, doses)

    assert after_both.flags[0].message.startswith("Drawn 2 days after")
    # A pre-dose draw on a dose day is still 3 days after the dose before it.
    assert on_second_dose_day.flags[0].message.startswith("Drawn 3 days after")


@pytest.mark.parametrize(("doxorubicin", "given"), [(False, True), (True, False)])
def test_no_doxorubicin_window_without_doxorubicin_in_the_line_or_without_a_given_date(
    doxorubicin: bool, given: bool
) -> None:
    (only,) = doxorubicin_patient(
        tube(DOSE + timedelta(days=2), 1), doxorubicin=doxorubicin, given=given
    )

    assert only.flags == ()


def test_a_tube_that_is_not_evaluable_gets_no_doxorubicin_flag() -> None:
    (only,) = doxorubicin_patient(tube(DOSE + timedelta(days=2), None, status="rejected"))

    assert codes(only) == [FlagCode.NOT_EVALUABLE]


# --- order and identity of the flags -------------------------------------------------------


def test_flags_come_most_severe_first_then_in_the_specifications_table_order() -> None:
    tubes = [tube(START, 0), tube(START + timedelta(days=21), 30, volume="10")]

    _, later = assess(tubes)

    assert codes(later) == [
        FlagCode.CONVERSION_TO_UNFAVOURABLE,
        FlagCode.RISE_BEYOND_NOISE,
        FlagCode.NON_STANDARD_VOLUME,
    ]
    assert [f.severity for f in later.flags] == [Severity.HIGH, Severity.REVIEW, Severity.INFO]


def test_a_lowered_flag_takes_its_place_among_the_review_flags() -> None:
    _, later = doxorubicin_patient(
        tube(DOSE - timedelta(days=21), 0), tube(DOSE + timedelta(days=2), 30, volume="10")
    )

    assert codes(later) == [
        FlagCode.CONVERSION_TO_UNFAVOURABLE,
        FlagCode.RISE_BEYOND_NOISE,
        FlagCode.NON_STANDARD_VOLUME,
        FlagCode.DOXORUBICIN_WINDOW,
    ]
    assert [f.severity for f in later.flags] == [Severity.REVIEW] * 2 + [Severity.INFO] * 2


def test_every_flag_of_a_sample_names_the_sample_by_its_first_tube() -> None:
    first = tube(START + timedelta(days=21), 20, volume="5")
    second = tube(START + timedelta(days=21), 10)

    *_, found = assess_samples(
        pool([tube(START, 1), second, first]), [], [], cancer_type="breast", cutoff=5
    )

    assert found.sample.key == first.id
    assert len(found.flags) == 3
    assert {f.source for f in found.flags} == {first.id}
    assert found.needs_review


def test_the_most_severe_of_no_flags_is_none() -> None:
    info = Flag(FlagCode.NON_STANDARD_VOLUME, Severity.INFO, "")
    high = Flag(FlagCode.CONVERSION_TO_UNFAVOURABLE, Severity.HIGH, "")

    assert highest_severity([info, high]) is Severity.HIGH
    assert highest_severity([info]) is Severity.INFO
    assert highest_severity([]) is None


def test_a_sample_at_exactly_the_cut_off_after_a_scaled_volume_is_unfavourable() -> None:
    # 3 cells in 4.5 mL is exactly 5 per 7.5 mL: compared exactly, never after rounding.
    _, later = assess([tube(START, 1), tube(START + timedelta(days=21), 3, volume="4.5")])

    assert later.category is Category.UNFAVOURABLE
    assert later.p_at_or_above_cutoff == p_at_or_above_cutoff(3, Decimal("4.5"), 5)
    assert FlagCode.CONVERSION_TO_UNFAVOURABLE in codes(later)
