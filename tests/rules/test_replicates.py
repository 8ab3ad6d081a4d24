"""Tests for patients.replicates: duplicate pairs and the replicate cv, no database.

The worked values are computed by hand from the specification's formula,
cv^2 = max(0, sum((a - b)^2 - (a + b)) / (2 * sum(a * b))).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patients import replicates, rules
from patients.replicates import MIN_PAIRS, ReplicateEstimate, Tube

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
STANDARD = Decimal("7.5")


def tube(
    count: int | None,
    *,
    patient: int = 1,
    at: datetime = AT,
    volume: Decimal = STANDARD,
    status: str = "resulted",
    qualifier: str = "",
) -> Tube:
    return Tube(patient, at, volume, status, count, qualifier)


# --- which samples are duplicate pairs -------------------------------------------------


def test_the_vocabulary_is_the_records():
    assert replicates.EVALUABLE_STATUS == rules.DrawStatus.RESULTED
    assert replicates.CENSORED == ">"


def test_two_resulted_tubes_of_one_venepuncture_are_a_pair():
    assert replicates.duplicate_pairs([tube(6), tube(4)]) == [(4, 6)]


def test_a_lone_tube_is_no_pair():
    assert replicates.duplicate_pairs([tube(6)]) == []


def test_a_sample_of_three_tubes_is_no_pair():
    assert replicates.duplicate_pairs([tube(4), tube(6), tube(5)]) == []


@pytest.mark.parametrize("censored", [0, 1])
def test_a_sample_with_a_censored_tube_is_no_pair(censored):
    tubes = [tube(1000), tube(1000)]
    tubes[censored] = tube(1000, qualifier=">")

    assert replicates.duplicate_pairs(tubes) == []


def test_tubes_of_unequal_volume_are_no_pair():
    assert replicates.duplicate_pairs([tube(4), tube(6, volume=Decimal("10"))]) == []


def test_equal_volumes_written_differently_are_equal():
    assert replicates.duplicate_pairs([tube(4), tube(6, volume=Decimal("7.50"))]) == [(4, 6)]


@pytest.mark.parametrize("status", ["rejected", "failed", "pending", "cancelled"])
def test_a_tube_that_is_not_evaluable_beside_two_resulted_ones_changes_nothing(status):
    tubes = [tube(4), tube(None, status=status), tube(6)]

    assert replicates.duplicate_pairs(tubes) == [(4, 6)]


def test_a_resulted_tube_beside_one_that_is_not_evaluable_is_no_pair():
    assert replicates.duplicate_pairs([tube(4), tube(None, status="rejected")]) == []


def test_tubes_drawn_at_different_times_are_different_samples():
    later = AT + timedelta(minutes=1)

    assert replicates.duplicate_pairs([tube(4), tube(6, at=later)]) == []


def test_tubes_of_different_patients_at_the_same_time_are_different_samples():
    assert replicates.duplicate_pairs([tube(4, patient=1), tube(6, patient=2)]) == []


def test_one_instant_in_two_time_zones_is_one_sample():
    paris = AT.astimezone(ZoneInfo("Europe/Paris"))

    assert replicates.duplicate_pairs([tube(4), tube(6, at=paris)]) == [(4, 6)]


def test_pairs_come_by_patient_and_time_whatever_the_order_of_the_tubes():
    later = AT + timedelta(days=7)
    tubes = [
        tube(9, patient=2),
        tube(3, at=later),
        tube(1, patient=2),
        tube(2),
        tube(8, patient=2),  # patient 2 at AT: three tubes, no pair
        tube(5, at=later),
        tube(1),
    ]

    assert replicates.duplicate_pairs(tubes) == [(1, 2), (3, 5)]


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="time-zone aware"):
        replicates.duplicate_pairs([tube(4, at=datetime(2026, 3, 2, 9, 30))])  # noqa: DTZ001


def test_a_resulted_tube_without_a_count_is_refused_not_paired():
    with pytest.raises(ValueError, match="without a count"):
        replicates.duplicate_pairs([tube(4), tube(None)])


# --- the estimate -------------------------------------------------------------------------


def test_the_formula_on_two_pairs():
    # (10, 20): 100 - 30 = 70, ab = 200; (4, 6): 4 - 10 = -6, ab = 24.
    # cv^2 = 64 / (2 * 224) = 1/7.
    assert replicates.moment_cv([(10, 20), (4, 6)]) == pytest.approx(math.sqrt(1 / 7))


def test_the_estimate_on_twenty_pairs():
    # 10 x (10, 20): 10 * 70 = 700, ab 2000; 10 x (5, 5): 10 * -10 = -100, ab 250.
    # cv^2 = 600 / (2 * 2250) = 2/15.
    pairs = [(10, 20)] * 10 + [(5, 5)] * 10

    estimate = replicates.estimate_cv(pairs)

    assert estimate.pairs == 20
    assert estimate.cv == pytest.approx(math.sqrt(2 / 15))
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low < estimate.cv < estimate.high


def test_equal_counts_give_a_cv_of_zero():
    # Each (5, 5): 0 - 10 = -10, so the sum is negative and cv^2 is 0, in every resample too.
    estimate = replicates.estimate_cv([(5, 5)] * 20)

    assert (estimate.cv, estimate.low, estimate.high) == (0.0, 0.0, 0.0)


def test_less_spread_than_counting_noise_gives_zero_not_an_error():
    # (3, 4): 1 - 7 = -6 per pair.
    assert replicates.moment_cv([(3, 4)] * 5) == 0.0


def test_identical_pairs_give_an_interval_of_one_point_by_the_same_formula():
    # 20 x (10, 20): cv^2 = 20 * 70 / (2 * 20 * 200) = 0.175 in the data and every resample.
    estimate = replicates.estimate_cv([(10, 20)] * 20)

    assert estimate.cv == pytest.approx(math.sqrt(0.175))
    assert estimate.low == pytest.approx(math.sqrt(0.175))
    assert estimate.high == pytest.approx(math.sqrt(0.175))


def varied_pairs(n: int = 40) -> list[tuple[int, int]]:
    rng = np.random.default_rng(7)
    counts = rng.poisson(rng.uniform(2, 40, size=(n, 1)) * rng.gamma(4, 0.25, size=(n, 2)))
    return [(int(a), int(b)) for a, b in counts]


def test_the_fixed_seed_makes_the_interval_reproducible():
    pairs = varied_pairs()

    assert replicates.estimate_cv(pairs) == replicates.estimate_cv(pairs)
    assert replicates.estimate_cv(pairs, seed=1) != replicates.estimate_cv(pairs)


def test_the_order_of_the_pairs_does_not_change_the_interval():
    pairs = varied_pairs()

    assert replicates.estimate_cv(pairs[::-1]) == replicates.estimate_cv(pairs)


def test_more_resamples_than_one_block_holds_give_a_like_interval(monkeypatch):
    pairs = varied_pairs()
    whole = replicates.estimate_cv(pairs)
    monkeypatch.setattr(replicates, "_MAX_BLOCK_CELLS", 7 * len(pairs))  # blocks of 7

    blocked = replicates.estimate_cv(pairs)

    assert blocked.cv == whole.cv
    assert blocked.low == pytest.approx(whole.low, abs=0.05)
    assert blocked.high == pytest.approx(whole.high, abs=0.05)


def test_nineteen_pairs_are_too_few():
    estimate = replicates.estimate_cv([(10, 20)] * (MIN_PAIRS - 1))

    assert estimate == ReplicateEstimate(pairs=19, cv=None, low=None, high=None)
    assert estimate.too_few


def test_twenty_pairs_are_enough():
    estimate = replicates.estimate_cv([(10, 20)] * MIN_PAIRS)

    assert not estimate.too_few
    assert estimate.cv is not None


def test_no_pair_with_cells_in_both_tubes_gives_no_estimate():
    # sum(a * b) = 0: the formula has no denominator.
    estimate = replicates.estimate_cv([(0, 3)] * 20 + [(0, 0)] * 5)

    assert estimate == ReplicateEstimate(pairs=25, cv=None, low=None, high=None)
    assert not estimate.too_few


def test_resamples_with_no_pair_with_cells_in_both_tubes_are_left_out_of_the_interval():
    # About a third of the resamples miss the one (4, 6) pair: they have no estimate.
    estimate = replicates.estimate_cv([(0, 3)] * 19 + [(4, 6)])

    assert estimate.low is not None and not math.isnan(estimate.low)
    assert estimate.high is not None and not math.isnan(estimate.high)


def test_no_interval_when_no_resample_has_an_estimate():
    pairs = [(0, 3)] * 19 + [(4, 6)]
    # One resample, which misses the (4, 6) pair for about a third of the seeds.
    missing = next(
        e
        for seed in range(100)
        if (e := replicates.estimate_cv(pairs, resamples=1, seed=seed)).low is None
    )

    assert missing.cv == replicates.moment_cv(pairs)
    assert missing.high is None


def test_a_bootstrap_of_no_resamples_is_refused():
    with pytest.raises(ValueError, match="at least one resample"):
        replicates.estimate_cv([(10, 20)] * 20, resamples=0)


# --- what it says ---------------------------------------------------------------------------


def test_it_says_the_pairs_the_cv_and_its_interval_and_that_the_setting_is_unchanged():
    estimate = ReplicateEstimate(pairs=42, cv=0.1834, low=0.0912, high=0.2571)

    assert replicates.describe(estimate, 0.0) == (
        "42 duplicate pairs; replicate cv 0.18 (95% interval 0.09 to 0.26); "
        "this does not change CTC_EXTRA_POISSON_CV: a person decides to set it (now 0.0)"
    )


def test_it_says_too_few_pairs():
    estimate = ReplicateEstimate(pairs=12, cv=None, low=None, high=None)

    assert replicates.describe(estimate, 0.15).startswith(
        "too few pairs (12; at least 20 are needed); this does not change CTC_EXTRA_POISSON_CV"
    )


def test_it_says_when_no_pair_has_cells_in_both_tubes():
    estimate = ReplicateEstimate(pairs=25, cv=None, low=None, high=None)

    assert replicates.describe(estimate, 0.0).startswith(
        "25 duplicate pairs, but no pair has cells in both tubes: no estimate;"
    )


def test_it_says_when_there_is_no_interval():
    estimate = ReplicateEstimate(pairs=20, cv=0.25, low=None, high=None)

    assert "replicate cv 0.25 (no bootstrap interval)" in replicates.describe(estimate, 0.0)


@pytest.mark.parametrize(
    ("estimate", "text"),
    [
        (ReplicateEstimate(pairs=42, cv=0.18, low=0.0912, high=0.2571), "0.09 to 0.26"),
        (ReplicateEstimate(pairs=42, cv=0.18, low=None, high=None), "no bootstrap interval"),
        (ReplicateEstimate(pairs=42, cv=None, low=None, high=None), "no estimate"),
    ],
)
def test_the_interval_reads_as_two_fractions_or_says_why_there_is_none(estimate, text):
    assert replicates.interval_text(estimate) == text


# --- properties -----------------------------------------------------------------------------


def gamma_poisson_pairs(seed: int, n: int, cv: float, low_mean: float) -> list[tuple[int, int]]:
    """`n` duplicate pairs: each patient's true mean between `low_mean` and 4 times it, each
    tube's mean that times a gamma factor of mean 1 and cv `cv`, each count Poisson."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(low_mean, 4 * low_mean, size=(n, 1))
    factors = rng.gamma(shape=1 / cv**2, scale=cv**2, size=(n, 2))
    counts = rng.poisson(means * factors)
    return [(int(a), int(b)) for a, b in counts]


@settings(derandomize=True, max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), low_mean=st.floats(3, 60))
def test_the_estimate_recovers_the_cv_of_simulated_gamma_poisson_tubes(seed, low_mean):
    pairs = gamma_poisson_pairs(seed, n=2000, cv=0.3, low_mean=low_mean)

    estimate = replicates.estimate_cv(pairs)

    assert estimate.cv == pytest.approx(0.3, abs=0.1)
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low <= estimate.cv <= estimate.high


@settings(derandomize=True, max_examples=50, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=20, max_size=60),
    data=st.data(),
)
def test_neither_the_order_of_the_pairs_nor_of_their_tubes_changes_the_estimate(pairs, data):
    shuffled = data.draw(st.permutations([(b, a) for a, b in pairs]))

    assert replicates.estimate_cv(shuffled) == replicates.estimate_cv(pairs)
