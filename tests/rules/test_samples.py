"""Tubes, samples and what is worked out for each sample (specification sections 1 and 2).

No database: the rules are pure. Test names read as the rule a clinician relies on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from patients.rules import (
    STANDARD_VOLUME_ML,
    Category,
    DrawIn,
    FlagCode,
    Severity,
    assess_draws,
    categorize,
    chance_shown,
    chance_text,
    cutoff_for,
    exact_rate,
    lower_bound_classifiable,
    p_at_or_above_cutoff,
    poisson_ci95,
    pool,
    rate_per_7_5_ml,
)
from patients.wording import date_text
from tests.rules.helpers import CUTOFFS, assess, codes, flag, line, series, tube

DAY = date(2026, 3, 2)
V = STANDARD_VOLUME_ML


# --- cut-offs and categories ---------------------------------------------------------------


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
    (only,) = assess([tube(DAY, count)], cancer_type=cancer_type)

    assert only.category is expected


def test_a_short_draw_scaled_up_to_exactly_the_cut_off_is_unfavourable() -> None:
    (only,) = assess([tube(DAY, 3, volume="4.5")])

    assert exact_rate(3, Decimal("4.5")) == 5
    assert only.rate_per_7_5_ml == 5.0
    assert only.category is Category.UNFAVOURABLE


@pytest.mark.parametrize(
    ("rate", "censored", "expected"),
    [
        (Decimal("4.999"), False, Category.FAVOURABLE),
        (Decimal("5"), False, Category.UNFAVOURABLE),
        (4.99, False, Category.FAVOURABLE),
        (5.0, False, Category.UNFAVOURABLE),
        (Decimal("2.5"), True, Category.UNFAVOURABLE),
    ],
)
def test_categorize_counts_the_cut_off_itself_and_any_lower_bound_as_unfavourable(
    rate: Decimal | float, censored: bool, expected: Category
) -> None:
    assert categorize(rate, 5, censored=censored) is expected


def test_cut_offs_are_looked_up_exactly_and_never_guessed() -> None:
    assert cutoff_for("breast", CUTOFFS) == 5
    assert cutoff_for("colorectal", CUTOFFS) == 3
    assert cutoff_for("lung", CUTOFFS) is None
    assert cutoff_for("Breast", CUTOFFS) is None


def test_a_cancer_type_without_a_cut_off_gets_a_no_cutoff_flag_and_no_category_or_chance() -> None:
    first, second = assess(series(1, 40), cancer_type="lung")

    for found in (first, second):
        assert found.category is None
        assert found.p_at_or_above_cutoff is None
        assert flag(found, FlagCode.NO_CUTOFF).severity is Severity.INFO
    assert codes(first) == [FlagCode.NO_CUTOFF]
    assert flag(first, FlagCode.NO_CUTOFF).message == (
        "Cannot be classified as favourable or unfavourable: "
        "no CTC cut-off is set for cancer type 'lung'"
    )
    # The rate and the interval need no cut-off, and nor does the rise test.
    assert second.rate_per_7_5_ml == 40.0
    assert second.ci95 == poisson_ci95(40, V)
    assert codes(second) == [FlagCode.RISE_BEYOND_NOISE, FlagCode.NO_CUTOFF]


def test_a_patient_without_a_cancer_type_is_not_classified_either() -> None:
    (only,) = assess_draws([tube(DAY, 9)], [], [], cancer_type="", cutoff=None)

    assert only.category is None
    assert codes(only) == [FlagCode.NO_CUTOFF]
    assert "a patient with no cancer type" in only.flags[0].message


# --- rates and volumes ---------------------------------------------------------------------


def test_three_cells_in_fifteen_millilitres_is_one_and_a_half_per_seven_and_a_half() -> None:
    (only,) = assess([tube(DAY, 3, volume="15")], cancer_type="colorectal")

    assert only.rate_per_7_5_ml == 1.5
    assert only.category is Category.FAVOURABLE


def test_rates_accept_floats_and_refuse_a_negative_count_or_a_volume_that_is_not_positive() -> None:
    assert rate_per_7_5_ml(3, 15.0) == 1.5
    assert rate_per_7_5_ml(1, 7.1) == pytest.approx(7.5 / 7.1)
    with pytest.raises(ValueError, match="positive"):
        rate_per_7_5_ml(3, Decimal("0"))
    with pytest.raises(ValueError, match="negative"):
        rate_per_7_5_ml(-1, V)


def test_a_tube_of_another_volume_is_flagged_and_says_what_was_counted() -> None:
    (only,) = assess([tube(DAY, 5, volume="5")])

    assert codes(only) == [FlagCode.BASELINE_UNFAVOURABLE, FlagCode.NON_STANDARD_VOLUME]
    volume = flag(only, FlagCode.NON_STANDARD_VOLUME)
    assert volume.severity is Severity.INFO
    assert volume.message == (
        "Non-standard blood volume: 5 CTC counted in 5 mL, scaled to 7.5 CTC/7.5 mL"
    )


def test_two_seven_and_a_half_millilitre_tubes_pooled_are_a_standard_volume() -> None:
    pooled = assess([tube(DAY, 1), tube(DAY, 0)])
    written_differently = assess([tube(DAY, 1, volume="7.50")])

    assert [a.flags for a in pooled] == [(), ()]
    assert pooled[0].sample is not None and pooled[0].sample.sample.volume_ml == 15
    assert written_differently[0].flags == ()


def test_a_sample_with_one_tube_of_another_volume_is_non_standard() -> None:
    first, second = assess([tube(DAY, 1), tube(DAY, 0, volume="5")])

    assert codes(first) == codes(second) == [FlagCode.NON_STANDARD_VOLUME]
    assert "1 CTC counted in 12.5 mL, scaled to 0.6 CTC/7.5 mL" in first.flags[0].message


def test_a_lower_bound_in_another_volume_says_more_than_what_was_counted() -> None:
    # ">4 in 5 mL" is accepted for a breast patient: 6 per 7.5 mL.
    (only,) = assess([tube(DAY, 4, volume="5", more_than=True)])

    assert flag(only, FlagCode.NON_STANDARD_VOLUME).message == (
        "Non-standard blood volume: more than 4 CTC counted in 5 mL, scaled to > 6 CTC/7.5 mL"
    )


def test_a_zero_from_less_blood_never_reads_none_detected_in_seven_and_a_half_ml() -> None:
    _, zero = assess([tube(DAY - timedelta(days=21), 9), tube(DAY, 0, volume="4")])

    assert flag(zero, FlagCode.CONVERSION_TO_FAVOURABLE).message.startswith(
        "Converted to favourable: none detected in 4 mL is below the cut-off of 5 (breast)"
    )
    assert flag(zero, FlagCode.NON_STANDARD_VOLUME).message == (
        "Non-standard blood volume: none detected in 4 mL"
    )
    assert not any("7.5 mL" in f.message for f in zero.flags)


def test_a_zero_in_two_pooled_tubes_reads_none_detected_in_the_blood_of_both() -> None:
    *_, zero = assess([tube(DAY - timedelta(days=21), 9), tube(DAY, 0), tube(DAY, 0)])

    assert flag(zero, FlagCode.CONVERSION_TO_FAVOURABLE).message.startswith(
        "Converted to favourable: none detected in 15 mL is below"
    )


# --- the 95% interval ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "volume", "lower", "upper"),
    [
        (0, "7.5", 0.0, 3.69),
        (5, "7.5", 1.62, 11.67),
        (5, "15", 0.81, 5.83),
    ],
)
def test_the_garwood_interval_matches_the_specification_scaled_to_seven_and_a_half_millilitres(
    count: int, volume: str, lower: float, upper: float
) -> None:
    low, high = poisson_ci95(count, Decimal(volume))

    assert round(low, 2) == lower
    assert high is not None and round(high, 2) == upper


def test_a_censored_count_has_only_the_lower_limit_of_its_bound() -> None:
    assert poisson_ci95(5, V, censored=True) == (poisson_ci95(5, V)[0], None)

    (only,) = assess([tube(DAY, 1000, more_than=True)])

    assert only.ci95 == (poisson_ci95(1000, V)[0], None)


def test_every_tube_of_a_sample_carries_the_interval_of_the_pooled_count() -> None:
    first, second = assess([tube(DAY, 4), tube(DAY, 6)])

    assert first.ci95 == second.ci95 == poisson_ci95(10, Decimal("15"))


# --- the chance at or above the cut-off ----------------------------------------------------


@pytest.mark.parametrize(
    ("cutoff", "count", "chance"),
    [
        (5, 0, "0.002"),
        (5, 2, "0.075"),
        (5, 4, "0.35"),
        (5, 5, "0.53"),
        (5, 6, "0.69"),
        (5, 7, "0.82"),
        (5, 8, "0.90"),
        (5, 10, "0.98"),
        (3, 2, "0.31"),
        (3, 3, "0.54"),
        (3, 5, "0.87"),
        (3, 6, "0.95"),
    ],
)
def test_the_chance_at_or_above_the_cut_off_matches_the_specifications_examples(
    cutoff: int, count: int, chance: str
) -> None:
    p = p_at_or_above_cutoff(count, V, cutoff)

    assert round(p, len(chance.split(".")[1])) == float(chance)


def test_the_chance_accounts_for_the_volume_analysed() -> None:
    # 10 cells in 15 mL is 5 per 7.5 mL, but twice the blood makes it surer than 5 in 7.5.
    assert round(p_at_or_above_cutoff(10, Decimal("15"), 5), 2) == 0.52
    assert p_at_or_above_cutoff(10, 15.0, 5) == p_at_or_above_cutoff(10, Decimal("15"), 5)


def test_a_censored_sample_is_certainly_at_or_above_the_cut_off() -> None:
    assert p_at_or_above_cutoff(5, V, 5, censored=True) == 1.0

    (only,) = assess([tube(DAY, 1000, more_than=True)])

    assert only.p_at_or_above_cutoff == 1.0


@pytest.mark.parametrize(("cutoff", "shown"), [(5, [2, 3, 4, 5, 6, 7, 8]), (3, [1, 2, 3, 4, 5, 6])])
def test_the_chance_is_shown_only_between_five_and_ninety_five_percent(
    cutoff: int, shown: list[int]
) -> None:
    counts = [c for c in range(30) if chance_shown(p_at_or_above_cutoff(c, V, cutoff))]

    assert counts == shown
    assert not chance_shown(None)


def test_the_chance_is_worded_to_the_nearest_whole_per_cent() -> None:
    assert chance_text(p_at_or_above_cutoff(5, V, 5)) == (
        "chance that the true count is at or above the cut-off: about 53%"
    )


# --- samples: tubes from one venepuncture --------------------------------------------------


def test_four_and_six_cells_in_two_tubes_at_one_instant_are_one_sample_of_ten_in_15_ml() -> None:
    first, second = assess([tube(DAY, 4), tube(DAY, 6)])

    assert first.sample is second.sample
    assert first.sample is not None
    sample = first.sample.sample
    assert (sample.count, sample.volume_ml, sample.censored) == (10, Decimal("15"), False)
    assert [t.id for t in sample.tubes] == [first.draw.id, second.draw.id]
    for found in (first, second):
        assert found.evaluable
        assert found.rate_per_7_5_ml == 5.0
        assert found.category is Category.UNFAVOURABLE
        assert found.p_at_or_above_cutoff == p_at_or_above_cutoff(10, Decimal("15"), 5)


def test_two_tubes_of_one_venepuncture_are_never_compared_with_each_other() -> None:
    # Compared with each other, 4 -> 6 would be a persistence or a conversion; pooled,
    # it is one baseline sample, near the cut-off.
    first, second = assess([tube(DAY, 4), tube(DAY, 6)])

    assert codes(first) == codes(second) == [FlagCode.BASELINE_UNFAVOURABLE]
    assert first.flags == second.flags


def test_a_pooled_sample_near_the_cut_off_converts_with_review_not_high() -> None:
    earlier = DAY - timedelta(days=21)
    *_, pooled = assess([tube(earlier, 3), tube(DAY, 4), tube(DAY, 6)])

    conversion = flag(pooled, FlagCode.CONVERSION_TO_UNFAVOURABLE)
    assert conversion.severity is Severity.REVIEW
    assert "about 52%" in conversion.message


def test_three_tubes_at_one_instant_pool_their_counts_and_volumes() -> None:
    tubes = [tube(DAY, 1), tube(DAY, 2), tube(DAY, 3, volume="5")]

    found = assess(tubes, cancer_type="colorectal")

    (sample,) = pool(tubes)
    assert (sample.count, sample.volume_ml) == (6, Decimal("20"))
    assert [a.rate_per_7_5_ml for a in found] == [2.25, 2.25, 2.25]
    assert {a.sample.sample.key for a in found if a.sample} == {tubes[0].id}


def test_tubes_written_in_different_time_zones_at_the_same_instant_are_one_sample() -> None:
    utc = tube(DAY, 2, hour=9)
    plus_one = DrawIn(
        id=utc.id + 1000,
        drawn_at=datetime(2026, 3, 2, 10, tzinfo=timezone(timedelta(hours=1))),
        drawn_on=DAY,
        blood_volume_ml=V,
        status="resulted",
        ctc_count=4,
    )

    (sample,) = pool([utc, plus_one])

    assert (sample.count, sample.volume_ml) == (6, Decimal("15"))


def test_tubes_drawn_at_different_times_of_one_day_are_two_samples() -> None:
    morning, afternoon = assess([tube(DAY, 1, hour=9), tube(DAY, 9, hour=14)])

    assert morning.sample is not afternoon.sample
    assert FlagCode.RISE_BEYOND_NOISE in codes(afternoon)


# --- tubes that are not evaluable ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"), [("rejected", "pre-analytic rejection"), ("failed", "analytic failure")]
)
def test_a_lone_rejected_or_failed_tube_is_not_evaluable_and_needs_a_repeat_draw(
    status: str, reason: str
) -> None:
    lines = [line(1, DAY - timedelta(days=30))]

    (only,) = assess([tube(DAY, None, status=status)], lines)

    assert not only.evaluable
    assert (only.rate_per_7_5_ml, only.category, only.ci95, only.sample) == (None,) * 4
    assert codes(only) == [FlagCode.NOT_EVALUABLE]
    assert only.flags[0].severity is Severity.REVIEW
    assert only.flags[0].source == only.draw.id
    assert only.flags[0].message == (
        f"Not evaluable ({status}: {reason}) on {date_text(DAY)}: no count, not a zero; "
        "a repeat draw is needed"
    )
    assert only.needs_review
    assert only.line_id == 1


def test_a_rejected_tube_beside_a_pending_one_is_still_not_evaluable() -> None:
    rejected, pending = assess(
        [tube(DAY, None, status="rejected"), tube(DAY, None, status="pending")]
    )

    assert codes(rejected) == [FlagCode.NOT_EVALUABLE]
    assert pending.flags == ()


@pytest.mark.parametrize("status", ["pending", "cancelled"])
def test_a_lone_pending_or_cancelled_tube_gets_no_flag(status: str) -> None:
    (only,) = assess([tube(DAY, None, status=status)])

    assert not only.evaluable
    assert only.flags == ()
    assert not only.needs_review


@pytest.mark.parametrize("status", ["rejected", "failed", "pending", "cancelled"])
def test_a_tube_beside_a_resulted_one_refers_to_the_sample_and_needs_no_review(status: str) -> None:
    resulted, beside = assess([tube(DAY, 12), tube(DAY, None, status=status)])

    assert beside.sample is resulted.sample
    assert not beside.evaluable
    assert (beside.rate_per_7_5_ml, beside.category, beside.ci95) == (None, None, None)
    assert beside.p_at_or_above_cutoff is None
    assert beside.flags == ()
    assert not beside.needs_review
    assert not beside.censored
    # The sample is the resulted tube alone: a rejected tube is never a zero.
    assert resulted.sample is not None and resulted.sample.sample.volume_ml == V
    assert resulted.rate_per_7_5_ml == 12.0
    assert resulted.needs_review


def test_a_count_on_a_tube_that_is_not_resulted_is_ignored() -> None:
    (only,) = assess([tube(DAY, 12, status="rejected")])

    assert only.rate_per_7_5_ml is None and only.category is None
    assert pool([tube(DAY, 12, status="failed")]) == []


@pytest.mark.parametrize("status", ["rejected", "failed", "pending", "cancelled"])
def test_a_tube_that_is_not_evaluable_is_never_read_as_a_zero(status: str) -> None:
    # Read as a zero, the middle tube would turn 4 -> 5 into a rise from zero
    # (0 -> 5, p = 0.031) and hide the conversion from 4.
    *_, last = assess(series(4, status, 5))

    assert codes(last) == [FlagCode.CONVERSION_TO_UNFAVOURABLE]
    assert "previously 4 on" in last.flags[0].message


def test_a_rejected_tube_between_two_unfavourable_samples_still_gives_a_persistence() -> None:
    first, rejected, last = assess(series(9, "rejected", 10))

    assert codes(rejected) == [FlagCode.NOT_EVALUABLE]
    assert codes(last) == [FlagCode.PERSISTENT_UNFAVOURABLE]
    assert f"previously 9 on {date_text(first.draw.drawn_on)}" in last.flags[0].message


def test_a_failed_tube_never_makes_a_conversion() -> None:
    *_, after_favourable = assess(series(1, "failed", 2))

    assert after_favourable.flags == ()


# --- counts that are a lower bound ---------------------------------------------------------


def test_a_lower_bound_is_unfavourable_certain_and_prints_with_more_than() -> None:
    (only,) = assess([tube(DAY, 1000, more_than=True)])

    assert only.censored
    assert only.category is Category.UNFAVOURABLE
    assert only.rate_per_7_5_ml == 1000.0
    assert only.p_at_or_above_cutoff == 1.0
    assert only.ci95 is not None and only.ci95[1] is None
    assert flag(only, FlagCode.BASELINE_UNFAVOURABLE).message == (
        "Unfavourable at baseline: > 1000 CTC/7.5 mL is at or above the cut-off of 5 (breast)"
    )


def test_a_lower_bound_pooled_with_a_zero_stays_unfavourable() -> None:
    # 0 in 7.5 mL beside ">5" in 7.5 mL: a bound of 5 in 15 mL, 2.5 per 7.5 mL.
    zero, bound = assess([tube(DAY, 0), tube(DAY, 5, more_than=True)])

    assert bound.sample is zero.sample
    assert bound.censored and zero.censored
    assert bound.rate_per_7_5_ml == 2.5
    assert bound.category is Category.UNFAVOURABLE
    assert bound.p_at_or_above_cutoff == 1.0


@pytest.mark.parametrize(
    ("bound", "volume", "accepted"),
    [(3, "7.5", False), (4, "7.5", False), (5, "7.5", True), (4, "5", True), (3, "4.5", True)],
)
def test_a_lower_bound_below_the_cut_off_cannot_be_classified(
    bound: int, volume: str, accepted: bool
) -> None:
    assert lower_bound_classifiable(bound, Decimal(volume), 5) is accepted


# --- bad input and output order ------------------------------------------------------------


def test_a_resulted_tube_without_a_count_is_refused() -> None:
    with pytest.raises(ValueError, match="resulted but has no CTC count"):
        assess([tube(DAY, None)])


def test_a_tube_without_a_time_zone_is_refused_rather_than_guessed() -> None:
    naive = DrawIn(1, datetime(2026, 3, 2, 9), DAY, V, "pending", None)  # noqa: DTZ001

    with pytest.raises(ValueError, match="time-zone aware"):
        assess([naive])


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="lost"):
        assess([tube(DAY, 1, status="lost")])


def test_tubes_come_out_oldest_first_then_by_id_with_unsaved_tubes_last() -> None:
    unsaved = DrawIn(None, datetime(2026, 3, 2, 9, tzinfo=UTC), DAY, V, "resulted", 1)
    later_id = tube(DAY, 2, tube_id=20)
    earlier_id = tube(DAY, 3, tube_id=10)
    yesterday = tube(DAY - timedelta(days=1), 0, tube_id=30)

    found = assess([unsaved, later_id, earlier_id, yesterday])

    assert [a.draw for a in found] == [yesterday, earlier_id, later_id, unsaved]
    assert found[1].sample is not None and found[1].sample.sample.key == 10


def test_a_sample_is_dated_by_its_tubes() -> None:
    (sample,) = pool([tube(DAY, 3)])

    assert sample.drawn_at == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert sample.drawn_on == DAY
    assert sample.rate == 3
