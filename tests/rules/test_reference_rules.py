"""The reference rules against every worked value of docs/clinical-rules.md, and its boundaries.

No database: the reference is a pure module, as the rules are. It runs without Django
(`pytest -p no:django --noconftest tests/rules/test_reference_rules.py`); under the project's pytest
configuration it needs only DEBUG=True in the environment, as `make test` sets.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from scipy.stats import norm, poisson

from tests.reference_rules import (
    Line,
    Sample,
    cv_from_pairs,
    garwood_ci,
    is_clear,
    line_of,
    p_at_or_above_cutoff,
    reference_assess,
    rise_p_value,
)

SETTINGS = {
    "clear_probability": 0.90,
    "extra_poisson_cv": 0.0,
    "pre_cycle_window_days": 7,
    "time_zone": "Europe/London",
}
CUTOFFS = {"breast": 5, "prostate": 5, "colorectal": 3}
V = Decimal("7.5")


def tube(
    id: int,
    day: str,
    count: int | None,
    volume: str = "7.5",
    status: str = "resulted",
    qualifier: str = "",
    time: str = "09:00:00+00:00",
) -> dict[str, Any]:
    return {
        "id": id,
        "drawn_at": f"{day}T{time}",
        "volume_ml": volume,
        "status": status,
        "count": count if status == "resulted" else None,
        "qualifier": qualifier,
    }


def cycle(
    id: int,
    scheduled: str,
    first: str | None = None,
    status: str = "planned",
    given: str | None = None,
    line_id: int = 1,
    number: int = 1,
) -> dict[str, Any]:
    return {
        "id": id,
        "line_id": line_id,
        "number": number,
        "scheduled_date": scheduled,
        "first_scheduled_date": first or scheduled,
        "given_date": given,
        "status": status,
    }


def line(id: int, start: str, doxorubicin: bool = False) -> dict[str, Any]:
    return {"id": id, "start_date": start, "contains_doxorubicin": doxorubicin}


def assess(
    tubes: list[dict[str, Any]],
    *,
    cycles: list[dict[str, Any]] | None = None,
    lines: list[dict[str, Any]] | None = None,
    today: str = "2026-12-31",
    cancer_type: str = "breast",
    **settings: Any,
) -> dict[str, Any]:
    return reference_assess(
        {
            "cancer_type": cancer_type,
            "cutoffs": CUTOFFS,
            "settings": {**SETTINGS, **settings},
            "today": today,
            "tubes": tubes,
            "lines": lines or [],
            "cycles": cycles or [],
        }
    )


def series(*counts: int, volume: str = "7.5", **kwargs: Any) -> dict[str, Any]:
    """One tube per count, on consecutive weeks of November/December 2026."""
    days = [(date(2026, 11, 1) + timedelta(weeks=i)).isoformat() for i in range(len(counts))]
    return assess([tube(i + 1, days[i], c, volume) for i, c in enumerate(counts)], **kwargs)


def flags_of(result: dict[str, Any], tube_id: int) -> list[list[str]]:
    return result["tubes"][tube_id]["flags"]


def codes_of(result: dict[str, Any], tube_id: int) -> set[str]:
    return {code for code, _ in flags_of(result, tube_id)}


# --- section 2: p_at_or_above_cutoff, ci95, rate, category ----------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, 0.002), (2, 0.075), (4, 0.35), (5, 0.53), (6, 0.69), (7, 0.82), (8, 0.90), (10, 0.98)],
)
def test_p_at_or_above_cutoff_5_matches_the_specification(count: int, expected: float) -> None:
    digits = len(str(expected).split(".")[1])
    assert round(p_at_or_above_cutoff(count, V, Fraction(5)), digits) == expected


@pytest.mark.parametrize(("count", "expected"), [(2, 0.31), (3, 0.54), (5, 0.87), (6, 0.95)])
def test_p_at_or_above_cutoff_3_matches_the_specification(count: int, expected: float) -> None:
    assert round(p_at_or_above_cutoff(count, V, Fraction(3)), 2) == expected


def test_p_at_or_above_cutoff_through_the_entry_point_uses_the_patients_cutoff() -> None:
    result = assess([tube(1, "2026-11-04", 3)], cancer_type="colorectal")
    assert round(result["tubes"][1]["p_at_or_above_cutoff"], 2) == 0.54


def test_a_censored_sample_has_probability_one_and_a_lower_limit_only() -> None:
    result = assess([tube(1, "2026-11-04", 1000, qualifier=">")])
    out = result["tubes"][1]
    low, _ = garwood_ci(1000, V)
    assert out["censored"] is True
    assert out["p_at_or_above_cutoff"] == 1.0
    assert out["ci95"] == [low, None]
    assert out["rate_per_7_5_ml"] == 1000.0
    assert out["category"] == "unfavourable"


@pytest.mark.parametrize(
    ("count", "volume", "low", "high"),
    [(0, "7.5", 0.0, 3.69), (5, "7.5", 1.62, 11.67), (5, "15", 0.81, 5.83)],
)
def test_garwood_interval_matches_the_specification(
    count: int, volume: str, low: float, high: float
) -> None:
    got_low, got_high = garwood_ci(count, Decimal(volume))
    assert (round(got_low, 2), round(got_high, 2)) == (low, high)


def test_ci95_of_a_pooled_sample_is_on_the_pooled_count_and_volume() -> None:
    result = assess([tube(1, "2026-11-04", 2), tube(2, "2026-11-04", 3)])
    assert [round(x, 2) for x in result["tubes"][1]["ci95"]] == [0.81, 5.83]


@pytest.mark.parametrize(
    ("cancer_type", "count", "volume", "category"),
    [
        ("breast", 5, "7.5", "unfavourable"),
        ("breast", 4, "7.5", "favourable"),
        ("prostate", 5, "7.5", "unfavourable"),
        ("colorectal", 3, "7.5", "unfavourable"),
        ("colorectal", 2, "7.5", "favourable"),
        # 3 cells in 4.5 mL is exactly 5 per 7.5 mL: inclusive, compared exactly.
        ("breast", 3, "4.5", "unfavourable"),
        # 2 cells in 3 mL is exactly 5 per 7.5 mL too.
        ("breast", 2, "3.0", "unfavourable"),
        ("breast", 4, "6.1", "favourable"),
        ("breast", 0, "7.5", "favourable"),
    ],
)
def test_the_cutoff_is_inclusive(cancer_type: str, count: int, volume: str, category: str) -> None:
    result = assess([tube(1, "2026-11-04", count, volume)], cancer_type=cancer_type)
    assert result["tubes"][1]["category"] == category


def test_a_rate_of_4_5_at_a_cutoff_of_4_5_is_unfavourable() -> None:
    case = {
        "cancer_type": "other",
        "cutoffs": {"other": 4.5},
        "settings": SETTINGS,
        "today": "2026-12-31",
        "tubes": [tube(1, "2026-11-04", 3, "5.0")],
        "lines": [],
        "cycles": [],
    }
    out = reference_assess(case)["tubes"][1]
    assert out["rate_per_7_5_ml"] == 4.5
    assert out["category"] == "unfavourable"


def test_a_cancer_type_without_cutoff_is_not_classified() -> None:
    result = assess([tube(1, "2026-11-04", 1), tube(2, "2026-11-11", 20)], cancer_type="lung")
    first, second = result["tubes"][1], result["tubes"][2]
    assert first["category"] is None and first["p_at_or_above_cutoff"] is None
    assert first["rate_per_7_5_ml"] == 1.0 and first["ci95"] is not None
    assert first["flags"] == []
    # The rise test needs no cut-off (reading R4).
    assert second["flags"] == [["rise_beyond_noise", "review"]]


def test_rate_is_count_times_7_5_over_volume() -> None:
    result = assess([tube(1, "2026-11-04", 10, "10")])
    assert result["tubes"][1]["rate_per_7_5_ml"] == 7.5


# --- section 2: samples ----------------------------------------------------------------------


def test_two_tubes_of_one_venepuncture_are_pooled() -> None:
    result = assess([tube(1, "2026-11-04", 3), tube(2, "2026-11-04", 4)])
    for tube_id in (1, 2):
        out = result["tubes"][tube_id]
        assert out["sample"] == [1, 2]
        assert out["rate_per_7_5_ml"] == 3.5
        assert out["category"] == "favourable"
        # Two 7.5 mL tubes pooled are standard; a favourable first sample has no flag.
        assert out["flags"] == []


def test_three_tubes_are_pooled_and_a_rejected_tube_beside_them_is_referenced() -> None:
    tubes = [
        tube(1, "2026-11-04", 2),
        tube(2, "2026-11-04", 2),
        tube(3, "2026-11-04", 2),
        tube(4, "2026-11-04", None, status="rejected"),
    ]
    result = assess(tubes)
    for tube_id in (1, 2, 3):
        assert result["tubes"][tube_id]["sample"] == [1, 2, 3]
        assert result["tubes"][tube_id]["rate_per_7_5_ml"] == 2.0
    rejected = result["tubes"][4]
    assert rejected["sample"] == [1, 2, 3]
    assert rejected["evaluable"] is False
    assert rejected["flags"] == [] and rejected["needs_review"] is False


def test_a_rejected_tube_beside_a_resulted_one_does_not_spoil_the_sample() -> None:
    tubes = [tube(1, "2026-11-04", 8), tube(2, "2026-11-04", None, status="failed")]
    result = assess(tubes)
    assert result["tubes"][1]["sample"] == [1]
    assert result["tubes"][1]["flags"] == [["baseline_unfavourable", "review"]]
    assert result["tubes"][1]["needs_review"] is True
    assert result["tubes"][2]["sample"] == [1]
    assert result["tubes"][2]["flags"] == [] and result["tubes"][2]["needs_review"] is False


def test_two_tubes_of_one_venepuncture_are_never_compared_with_each_other() -> None:
    result = assess([tube(1, "2026-11-04", 0), tube(2, "2026-11-04", 6)])
    assert result["tubes"][2]["flags"] == [] and result["tubes"][1]["flags"] == []


def test_the_same_instant_written_in_two_offsets_is_one_sample() -> None:
    tubes = [
        tube(1, "2026-11-04", 1, time="09:00:00+00:00"),
        tube(2, "2026-11-04", 1, time="10:00:00+01:00"),
    ]
    assert assess(tubes)["tubes"][2]["sample"] == [1, 2]


def test_a_censored_tube_makes_the_pooled_sample_censored_with_the_summed_bound() -> None:
    result = assess([tube(1, "2026-11-04", 1000, qualifier=">"), tube(2, "2026-11-04", 5)])
    out = result["tubes"][2]
    assert out["censored"] is True and out["sample"] == [1, 2]
    assert out["rate_per_7_5_ml"] == 502.5
    assert out["ci95"][1] is None
    assert out["ci95"][0] == pytest.approx(garwood_ci(1005, Decimal(15))[0])


def test_a_censored_sample_is_unfavourable_even_below_the_cutoff_after_pooling() -> None:
    result = assess([tube(1, "2026-11-04", 5, qualifier=">"), tube(2, "2026-11-04", 0)])
    assert result["tubes"][1]["rate_per_7_5_ml"] == 2.5
    assert result["tubes"][1]["category"] == "unfavourable"


# --- section 3: category flags and clarity ---------------------------------------------------


def test_the_near_cutoff_message_example() -> None:
    """5 CTC/7.5 mL, previously 3 on 2026-11-04; chance about 53%: a review, not high."""
    result = assess([tube(1, "2026-11-04", 3), tube(2, "2026-11-18", 5)])
    out = result["tubes"][2]
    assert result["tubes"][1]["rate_per_7_5_ml"] == 3.0
    assert out["rate_per_7_5_ml"] == 5.0
    assert out["category"] == "unfavourable"
    assert round(out["p_at_or_above_cutoff"] * 100) == 53
    assert out["flags"] == [["conversion_to_unfavourable", "review"]]
    assert not is_clear("unfavourable", out["p_at_or_above_cutoff"], 0.90)


def test_a_clear_conversion_is_high_and_a_near_one_is_review() -> None:
    assert flags_of(series(2, 8), 2) == [["conversion_to_unfavourable", "high"]]
    assert flags_of(series(2, 7), 2) == [["conversion_to_unfavourable", "review"]]


def test_persistent_unfavourable_severity_depends_on_clarity() -> None:
    result = series(6, 10, 6)
    assert flags_of(result, 1) == [["baseline_unfavourable", "review"]]
    assert flags_of(result, 2) == [["persistent_unfavourable", "high"]]
    assert flags_of(result, 3) == [["persistent_unfavourable", "review"]]


def test_baseline_unfavourable_is_review_even_when_clear() -> None:
    assert flags_of(series(30), 1) == [["baseline_unfavourable", "review"]]


def test_conversion_to_favourable_is_info_and_favourable_after_favourable_has_none() -> None:
    result = series(6, 2, 1)
    assert flags_of(result, 2) == [["conversion_to_favourable", "info"]]
    assert flags_of(result, 3) == []
    assert result["tubes"][3]["needs_review"] is False


def test_a_new_lines_baseline_is_compared_with_the_previous_sample() -> None:
    tubes = [tube(1, "2026-10-01", 8), tube(2, "2026-11-25", 8)]
    result = assess(tubes, lines=[line(1, "2026-01-01"), line(2, "2026-12-01")])
    assert flags_of(result, 2) == [["persistent_unfavourable", "high"]]


def test_non_evaluable_tubes_are_skipped_in_comparisons() -> None:
    tubes = [
        tube(1, "2026-11-04", 2),
        tube(2, "2026-11-11", None, status="rejected"),
        tube(3, "2026-11-18", 8),
    ]
    result = assess(tubes)
    assert flags_of(result, 2) == [["not_evaluable", "review"]]
    assert flags_of(result, 3) == [["conversion_to_unfavourable", "high"]]


def test_clarity_at_exactly_the_setting_on_both_sides() -> None:
    assert is_clear("unfavourable", 0.90, 0.90)
    assert not is_clear("unfavourable", math.nextafter(0.90, 0.0), 0.90)
    assert is_clear("favourable", 0.10, 0.90)
    assert not is_clear("favourable", math.nextafter(0.10, 1.0), 0.90)


def test_clarity_at_exactly_the_setting_through_the_entry_point() -> None:
    p8 = p_at_or_above_cutoff(8, V, Fraction(5))
    at = series(2, 8, clear_probability=p8)
    above = series(2, 8, clear_probability=math.nextafter(p8, 1.0))
    assert flags_of(at, 2) == [["conversion_to_unfavourable", "high"]]
    assert flags_of(above, 2) == [["conversion_to_unfavourable", "review"]]


def test_a_censored_persistence_is_high() -> None:
    result = assess([tube(1, "2026-11-04", 6), tube(2, "2026-11-11", 1000, qualifier=">")])
    assert ["persistent_unfavourable", "high"] in flags_of(result, 2)


def test_counting_noise_a_true_mean_of_4_reads_5_or_more_in_37_percent() -> None:
    assert round(float(poisson.sf(4, 4)), 2) == 0.37


# --- section 3: the rise test ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "x2", "expected"),
    [(0, 5, 0.031), (2, 8, 0.055), (2, 9, 0.033), (5, 12, 0.072), (10, 20, 0.049), (1, 9, 0.011)],
)
def test_rise_p_values_match_the_specification(x1: int, x2: int, expected: float) -> None:
    assert round(rise_p_value(x1, V, x2, V, 0.0) or -1, 3) == expected


@pytest.mark.parametrize(
    ("x1", "x2", "flagged"),
    [(0, 5, True), (2, 8, False), (2, 9, True), (5, 12, False), (10, 20, True), (1, 9, True)],
)
def test_rise_worked_values_through_the_entry_point(x1: int, x2: int, flagged: bool) -> None:
    result = series(x1, x2)
    assert ("rise_beyond_noise" in codes_of(result, 2)) is flagged


def test_unequal_volumes_3_in_7_5_then_10_in_15_is_3_to_5_and_no_rise() -> None:
    assert round(rise_p_value(3, V, 10, Decimal(15), 0.0) or -1, 2) == 0.32
    # 15 mL is two 7.5 mL tubes of one venepuncture (a tube holds at most 10 mL).
    result = assess([tube(1, "2026-11-04", 3), tube(2, "2026-11-18", 4), tube(3, "2026-11-18", 6)])
    out = result["tubes"][2]
    assert out["rate_per_7_5_ml"] == 5.0
    assert round(out["rate_per_7_5_ml"] / 3.0, 2) == 1.67
    assert "rise_beyond_noise" not in codes_of(result, 2)


def test_unequal_volumes_3_in_7_5_then_6_in_15_is_the_same_concentration() -> None:
    assert round(rise_p_value(3, V, 6, Decimal(15), 0.0) or -1, 2) == 0.65
    result = assess([tube(1, "2026-11-04", 3), tube(2, "2026-11-18", 2), tube(3, "2026-11-18", 4)])
    assert result["tubes"][2]["rate_per_7_5_ml"] == 3.0
    assert "rise_beyond_noise" not in codes_of(result, 2)


@pytest.mark.parametrize(
    ("earlier", "minimum"),
    [(0, 5), (1, 7), (2, 9), (3, 10), (4, 12), (5, 13), (6, 15), (8, 18), (10, 20), (20, 33)],
)
def test_minimum_later_count_for_p_below_0_05(earlier: int, minimum: int) -> None:
    def p(x2: int) -> float:
        return rise_p_value(earlier, V, x2, V, 0.0) or 1.0

    assert p(minimum) < 0.05 <= p(minimum - 1)


def test_after_20_the_first_flagged_count_is_40() -> None:
    flagged = [x2 for x2 in range(21, 60) if "rise_beyond_noise" in codes_of(series(20, x2), 2)]
    assert flagged[0] == 40


def test_no_rise_when_both_counts_are_zero() -> None:
    assert rise_p_value(0, V, 0, V, 0.0) is None
    assert "rise_beyond_noise" not in codes_of(series(0, 0), 2)


def test_the_extra_poisson_test_takes_the_larger_p_value() -> None:
    cv = 0.2
    r1, r2 = 10.5, 20.5
    z = (math.log(r2) - math.log(r1)) / math.sqrt(1 / 10.5 + 1 / 20.5 + 2 * cv**2)
    expected = max(rise_p_value(10, V, 20, V, 0.0) or 1.0, float(norm.sf(z)))
    assert rise_p_value(10, V, 20, V, cv) == pytest.approx(expected)
    assert expected > 0.05
    assert "rise_beyond_noise" in codes_of(series(10, 20), 2)
    assert "rise_beyond_noise" not in codes_of(series(10, 20, extra_poisson_cv=cv), 2)


def test_the_extra_poisson_test_scales_rates_by_volume() -> None:
    cv = 0.1
    r1, r2 = 3.5 * 7.5 / 7.5, 30.5 * 7.5 / 15
    z = (math.log(r2) - math.log(r1)) / math.sqrt(1 / 3.5 + 1 / 30.5 + 2 * cv**2)
    exact = rise_p_value(3, V, 30, Decimal(15), 0.0) or 1.0
    got = rise_p_value(3, V, 30, Decimal(15), cv)
    assert got == pytest.approx(max(exact, float(norm.sf(z))))


def test_a_censored_earlier_sample_is_never_compared_against() -> None:
    tubes = [tube(1, "2026-11-04", 5, qualifier=">"), tube(2, "2026-11-11", 20)]
    assert "rise_beyond_noise" not in codes_of(assess(tubes), 2)
    assert "rise_beyond_noise" in codes_of(series(5, 20), 2)


def test_a_censored_later_sample_uses_its_bound() -> None:
    tubes = [tube(1, "2026-11-04", 2), tube(2, "2026-11-11", 20, qualifier=">")]
    assert "rise_beyond_noise" in codes_of(assess(tubes), 2)


def test_a_rise_from_the_nadir_is_flagged_at_p_below_0_01() -> None:
    # 1 -> 8 -> 10: against the previous (8) no rise; against the nadir 1 -> 10, p = 0.0059.
    result = series(1, 8, 10)
    assert "rise_beyond_noise" in codes_of(result, 3)
    # 1 -> 8 -> 9: 1 -> 9 has p = 0.011, not below 0.01.
    assert "rise_beyond_noise" not in codes_of(series(1, 8, 9), 3)


def test_no_rise_from_the_nadir_on_a_falling_count() -> None:
    # 1 -> 30 -> 12: 12 is far above the nadir, but below the previous sample.
    result = series(1, 30, 12)
    assert "rise_beyond_noise" in codes_of(result, 2)
    assert "rise_beyond_noise" not in codes_of(result, 3)


def test_the_nadir_rise_is_allowed_at_an_equal_rate_to_the_previous() -> None:
    # 1 -> 10 (flagged against the previous) -> 10: not below the previous; 1 -> 10 p < 0.01.
    assert "rise_beyond_noise" in codes_of(series(1, 10, 10), 3)


def test_nadir_ties_go_to_the_most_recent() -> None:
    # 1 in 7.5 and 2 in 15 have the same rate; against 2 in 15, 8 in 7.5 has p = 0.0034,
    # against 1 in 7.5 it has p = 0.0195.
    tubes = [
        tube(1, "2026-11-01", 1),
        tube(2, "2026-11-08", 1),
        tube(5, "2026-11-08", 1),
        tube(3, "2026-11-15", 5),
        tube(4, "2026-11-22", 8),
    ]
    assert "rise_beyond_noise" in codes_of(assess(tubes), 4)
    swapped = [
        tube(1, "2026-11-01", 1),
        tube(5, "2026-11-01", 1),
        tube(2, "2026-11-08", 1),
        tube(3, "2026-11-15", 5),
        tube(4, "2026-11-22", 8),
    ]
    assert "rise_beyond_noise" not in codes_of(assess(swapped), 4)


def test_the_nadir_is_of_the_current_therapy_line_with_the_14_day_rule() -> None:
    lines = [line(1, "2026-01-01"), line(2, "2026-12-15")]

    def third_flags(first_day: str) -> set[str]:
        tubes = [
            tube(1, first_day, 1),
            tube(2, "2026-12-05", 8),
            tube(3, "2026-12-20", 10),
        ]
        return codes_of(assess(tubes, lines=lines), 3)

    # 1 Dec + 14 days = 15 Dec: the 1 on 1 Dec is the new line's baseline, hence its nadir.
    assert "rise_beyond_noise" in third_flags("2026-12-01")
    # 30 Nov belongs to the old line: the new line's nadir is 8, and 8 -> 10 is noise.
    assert "rise_beyond_noise" not in third_flags("2026-11-30")


def test_samples_before_every_line_form_one_group() -> None:
    ref_lines = [Line(1, _d("2026-12-15"), False)]
    assert line_of(_d("2026-11-30"), ref_lines) is None
    assert line_of(_d("2026-12-01"), ref_lines) == 1
    assert line_of(_d("2026-12-01"), []) is None
    # With no lines at all, every sample is in the one group: the nadir spans them all.
    assert "rise_beyond_noise" in codes_of(series(1, 8, 10), 3)


def test_the_nadir_uses_the_local_date_for_the_line() -> None:
    # 30 Nov 23:30 UTC is 30 Nov in London (GMT); it stays in the old line.
    lines = [line(1, "2026-01-01"), line(2, "2026-12-15")]
    tubes = [
        tube(1, "2026-11-30", 1, time="23:30:00+00:00"),
        tube(2, "2026-12-05", 8),
        tube(3, "2026-12-20", 10),
    ]
    assert "rise_beyond_noise" not in codes_of(assess(tubes, lines=lines), 3)


def test_a_censored_sample_is_never_a_nadir() -> None:
    # The censored >5 is skipped; the nadir of the line is then 8, and 8 -> 10 is noise.
    tubes = [
        tube(1, "2026-11-01", 5, qualifier=">"),
        tube(2, "2026-11-08", 8),
        tube(3, "2026-11-15", 10),
    ]
    assert "rise_beyond_noise" not in codes_of(assess(tubes), 3)


def test_a_ratio_from_zero_is_infinite() -> None:
    assert "rise_beyond_noise" in codes_of(series(0, 5), 2)
    assert "rise_beyond_noise" not in codes_of(series(0, 4), 2)


# --- section 3: other flags ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volumes", "flagged"),
    [(["10"], True), (["7.5"], False), (["7.50"], False), (["7.5", "7.5"], False)],
)
def test_non_standard_volume(volumes: list[str], flagged: bool) -> None:
    tubes = [tube(i + 1, "2026-11-04", 1, v) for i, v in enumerate(volumes)]
    assert (["non_standard_volume", "info"] in flags_of(assess(tubes), 1)) is flagged


def test_non_standard_volume_when_any_pooled_tube_is_non_standard() -> None:
    tubes = [tube(1, "2026-11-04", 1, "7.5"), tube(2, "2026-11-04", 1, "5")]
    result = assess(tubes)
    assert flags_of(result, 1) == [["non_standard_volume", "info"]] == flags_of(result, 2)
    assert result["tubes"][1]["needs_review"] is False


@pytest.mark.parametrize(
    ("day", "in_window"),
    [("2026-11-01", False), ("2026-11-02", True), ("2026-11-07", True), ("2026-11-08", False)],
)
def test_the_doxorubicin_window_is_days_1_to_6(day: str, in_window: bool) -> None:
    tubes = [tube(1, "2026-10-20", 2), tube(2, day, 8)]
    cycles = [cycle(1, "2026-11-01", status="given", given="2026-11-01")]
    result = assess(tubes, lines=[line(1, "2026-10-01", doxorubicin=True)], cycles=cycles)
    if in_window:
        assert flags_of(result, 2) == [
            ["conversion_to_unfavourable", "review"],
            ["doxorubicin_window", "info"],
        ]
    else:
        assert flags_of(result, 2) == [["conversion_to_unfavourable", "high"]]


def test_no_doxorubicin_window_for_a_line_without_doxorubicin() -> None:
    tubes = [tube(1, "2026-10-20", 2), tube(2, "2026-11-03", 8)]
    cycles = [cycle(1, "2026-11-01", status="given", given="2026-11-01")]
    result = assess(tubes, lines=[line(1, "2026-10-01")], cycles=cycles)
    assert flags_of(result, 2) == [["conversion_to_unfavourable", "high"]]


def test_the_doxorubicin_window_counts_local_days() -> None:
    # 7 Jun 23:30 UTC is 8 Jun 00:30 in London (BST): day 7 after a 1 Jun dose.
    tubes = [tube(1, "2026-05-20", 2), tube(2, "2026-06-07", 8, time="23:30:00+00:00")]
    cycles = [cycle(1, "2026-06-01", status="given", given="2026-06-01")]
    result = assess(tubes, lines=[line(1, "2026-05-01", doxorubicin=True)], cycles=cycles)
    assert flags_of(result, 2) == [["conversion_to_unfavourable", "high"]]


def test_the_doxorubicin_window_lowers_persistent_high_too() -> None:
    tubes = [tube(1, "2026-10-20", 10), tube(2, "2026-11-03", 10)]
    cycles = [cycle(1, "2026-11-01", status="given", given="2026-11-01")]
    result = assess(tubes, lines=[line(1, "2026-10-01", doxorubicin=True)], cycles=cycles)
    assert ["persistent_unfavourable", "review"] in flags_of(result, 2)


@pytest.mark.parametrize("status", ["rejected", "failed"])
def test_a_lone_non_evaluable_tube_needs_a_repeat(status: str) -> None:
    out = assess([tube(1, "2026-11-04", None, status=status)])["tubes"][1]
    assert out["sample"] is None and out["evaluable"] is False
    assert out["flags"] == [["not_evaluable", "review"]]
    assert out["needs_review"] is True
    assert out["category"] is None and out["rate_per_7_5_ml"] is None


@pytest.mark.parametrize("status", ["pending", "cancelled"])
def test_a_lone_pending_or_cancelled_tube_has_no_flag(status: str) -> None:
    out = assess([tube(1, "2026-11-04", None, status=status)])["tubes"][1]
    assert out["sample"] is None and out["flags"] == [] and out["needs_review"] is False


def test_a_rejected_tube_beside_a_pending_one_still_needs_review() -> None:
    tubes = [
        tube(1, "2026-11-04", None, status="rejected"),
        tube(2, "2026-11-04", None, status="pending"),
    ]
    result = assess(tubes)
    assert flags_of(result, 1) == [["not_evaluable", "review"]]
    assert flags_of(result, 2) == []


# --- section 4: cycles -----------------------------------------------------------------------


def test_the_pre_cycle_window_example() -> None:
    """'Draw due by Thu 3 Dec: no CTC result yet in the window 26 Nov - 3 Dec'."""
    result = assess([], cycles=[cycle(1, "2026-12-03")], today="2026-12-01")
    out = result["cycles"][1]
    assert out["window"] == ["2026-11-26", "2026-12-03"]
    assert out["state"] == "draw_due"
    assert out["flags"] == [] and out["most_severe"] == "draw_due"


@pytest.mark.parametrize(
    ("today", "state", "flags", "most_severe"),
    [
        ("2026-11-25", "not_yet_due", [], "none"),
        ("2026-11-26", "draw_due", [], "draw_due"),
        ("2026-11-30", "draw_due", [], "draw_due"),
        ("2026-12-03", "draw_due", [], "draw_due"),
        ("2026-12-04", "missing", [["missing_pre_cycle_draw", "review"]], "review"),
    ],
)
def test_states_by_today(today: str, state: str, flags: list[Any], most_severe: str) -> None:
    out = assess([], cycles=[cycle(1, "2026-12-03")], today=today)["cycles"][1]
    assert (out["state"], out["flags"], out["most_severe"]) == (state, flags, most_severe)


@pytest.mark.parametrize(
    ("day", "in_window"),
    [("2026-11-25", False), ("2026-11-26", True), ("2026-12-03", True), ("2026-12-04", False)],
)
def test_window_edges_and_a_draw_on_day_1(day: str, in_window: bool) -> None:
    result = assess([tube(1, day, 2)], cycles=[cycle(1, "2026-12-03")], today="2026-12-10")
    state = result["cycles"][1]["state"]
    assert state == ("result_in_window" if in_window else "missing")


def test_a_draw_on_day_1_uses_the_local_date() -> None:
    # 3 Dec 23:30 UTC is still 3 Dec in London in winter; 2 Dec 23:30 -0200 is 3 Dec 01:30.
    tubes = [tube(1, "2026-12-02", 2, time="23:30:00-02:00")]
    result = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-10")
    assert result["cycles"][1]["state"] == "result_in_window"
    late = [tube(1, "2026-12-03", 2, time="23:30:00-02:00")]
    result = assess(late, cycles=[cycle(1, "2026-12-03")], today="2026-12-10")
    assert result["cycles"][1]["state"] == "missing"


def test_a_delayed_cycle_keeps_its_original_window() -> None:
    delayed = cycle(1, "2026-12-10", first="2026-12-03", status="delayed")
    result = assess([tube(1, "2026-11-27", 2)], cycles=[delayed], today="2026-12-08")
    out = result["cycles"][1]
    assert out["window"] == ["2026-11-26", "2026-12-10"]
    assert out["state"] == "result_in_window"
    no_draw = assess([], cycles=[delayed], today="2026-12-08")["cycles"][1]
    assert no_draw["state"] == "draw_due"


def test_a_cycle_brought_forward_opens_earlier() -> None:
    earlier = cycle(1, "2026-12-01", first="2026-12-03")
    out = assess([], cycles=[earlier], today="2026-11-20")["cycles"][1]
    assert out["window"] == ["2026-11-24", "2026-12-01"]


def test_the_window_follows_the_setting() -> None:
    out = assess([], cycles=[cycle(1, "2026-12-03")], pre_cycle_window_days=3)["cycles"][1]
    assert out["window"] == ["2026-11-30", "2026-12-03"]


def test_a_cycle_shows_the_flags_of_the_latest_sample_in_the_window() -> None:
    tubes = [tube(1, "2026-11-20", 2), tube(2, "2026-11-27", 3), tube(3, "2026-12-01", 8)]
    result = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-02")
    out = result["cycles"][1]
    # 3 on 27 Nov and 8 on 1 Dec disagree.
    assert out["flags"] == [
        ["conversion_to_unfavourable", "high"],
        ["discordant_in_window", "review"],
    ]
    assert out["most_severe"] == "high"


def test_discordant_in_window_example_20_then_3() -> None:
    tubes = [tube(1, "2026-11-30", 20), tube(2, "2026-12-03", 3, time="08:00:00+00:00")]
    out = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-03")["cycles"][1]
    assert out["state"] == "result_in_window"
    assert out["flags"] == [
        ["conversion_to_favourable", "info"],
        ["discordant_in_window", "review"],
    ]
    assert out["most_severe"] == "review"


def test_no_discordance_when_the_window_agrees() -> None:
    tubes = [tube(1, "2026-11-27", 2), tube(2, "2026-12-01", 3)]
    out = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-02")["cycles"][1]
    assert out["flags"] == [] and out["most_severe"] == "none"


def test_a_rejected_tube_in_the_window_adds_not_evaluable() -> None:
    tubes = [tube(1, "2026-11-28", None, status="rejected")]
    due = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-01")["cycles"][1]
    assert due["state"] == "draw_due"
    assert due["flags"] == [["not_evaluable", "review"]] and due["most_severe"] == "review"
    late = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-04")["cycles"][1]
    assert late["state"] == "missing"
    assert late["flags"] == [["missing_pre_cycle_draw", "review"], ["not_evaluable", "review"]]


def test_a_pending_tube_makes_the_cycle_result_pending_whatever_today_is() -> None:
    tubes = [
        tube(1, "2026-11-28", None, status="pending"),
        tube(2, "2026-11-29", None, status="failed"),
    ]
    for today in ("2026-11-20", "2026-12-01", "2026-12-20"):
        out = assess(tubes, cycles=[cycle(1, "2026-12-03")], today=today)["cycles"][1]
        assert (out["state"], out["flags"], out["most_severe"]) == ("result_pending", [], "none")


def test_an_evaluable_sample_beats_a_pending_tube() -> None:
    tubes = [tube(1, "2026-11-28", None, status="pending"), tube(2, "2026-11-29", 2)]
    out = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-01")["cycles"][1]
    assert out["state"] == "result_in_window"


def test_a_cancelled_tube_in_the_window_is_nothing() -> None:
    tubes = [tube(1, "2026-11-28", None, status="cancelled")]
    out = assess(tubes, cycles=[cycle(1, "2026-12-03")], today="2026-12-04")["cycles"][1]
    assert out["flags"] == [["missing_pre_cycle_draw", "review"]]


def test_a_given_cycle_keeps_its_evaluation() -> None:
    given = cycle(1, "2026-12-03", status="given", given="2026-12-03")
    out = assess([], cycles=[given], today="2026-12-20")["cycles"][1]
    assert out["state"] == "missing"
    assert out["flags"] == [["missing_pre_cycle_draw", "review"]]


def test_a_cancelled_cycle_owes_nothing() -> None:
    cancelled = cycle(1, "2026-12-03", status="cancelled")
    tubes = [tube(1, "2026-11-28", None, status="rejected")]
    out = assess(tubes, cycles=[cancelled], today="2026-12-20")["cycles"][1]
    assert (out["state"], out["flags"], out["most_severe"]) == ("not_yet_due", [], "none")
    with_result = assess([tube(1, "2026-11-28", 8)], cycles=[cancelled], today="2026-12-20")
    assert with_result["cycles"][1]["flags"] == [["baseline_unfavourable", "review"]]
    assert with_result["worklist_order"] == []


# --- section 4: the worklist -----------------------------------------------------------------


def test_worklist_order() -> None:
    tubes = [
        tube(1, "2026-11-10", 2),
        tube(2, "2026-11-28", 9),  # conversion, high: window of cycle 11
        tube(3, "2026-12-06", 4),  # conversion to favourable, info: window of cycle 12
    ]
    cycles = [
        cycle(10, "2026-12-20"),  # not yet due: none
        cycle(11, "2026-12-02", number=2),  # high
        cycle(12, "2026-12-10", status="delayed", first="2026-12-08", number=3),  # info
        cycle(13, "2026-11-25", number=4),  # missing: review
        cycle(14, "2026-12-15"),  # draw due
        cycle(15, "2026-12-15"),  # draw due, same date: by id
        cycle(16, "2026-11-24"),  # missing: review, earlier date
        cycle(17, "2026-11-10", status="given", given="2026-11-10"),  # not upcoming
        cycle(18, "2026-12-12", status="cancelled"),  # not upcoming
        cycle(19, "2026-12-21"),  # not yet due, later
    ]
    result = assess(tubes, cycles=cycles, today="2026-12-09")
    severities = {cid: result["cycles"][cid]["most_severe"] for cid in result["cycles"]}
    assert severities[11] == "high" and severities[12] == "info"
    assert severities[13] == severities[16] == "review"
    assert severities[14] == severities[15] == "draw_due"
    assert result["worklist_order"] == [11, 16, 13, 12, 14, 15, 10, 19]


# --- section 5: needs review -----------------------------------------------------------------


def test_a_high_result_outside_every_window_needs_review() -> None:
    result = series(2, 9)
    assert result["tubes"][2]["needs_review"] is True
    assert result["cycles"] == {} and result["worklist_order"] == []


def test_info_only_results_need_no_review() -> None:
    result = assess([tube(1, "2026-11-04", 1, "10")])
    assert result["tubes"][1]["needs_review"] is False


# --- replicate variation ---------------------------------------------------------------------


def test_replicate_cv_method_of_moments() -> None:
    tubes = [
        tube(1, "2026-11-01", 10),
        tube(2, "2026-11-01", 20),
        tube(3, "2026-11-08", 10),
        tube(4, "2026-11-08", 14),
        # Not pairs: three tubes, a censored tube, unequal volumes.
        tube(5, "2026-11-15", 1),
        tube(6, "2026-11-15", 2),
        tube(7, "2026-11-15", 3),
        tube(8, "2026-11-22", 100, qualifier=">"),
        tube(9, "2026-11-22", 5),
        tube(10, "2026-11-29", 5, "5"),
        tube(11, "2026-11-29", 50),
        # A pair with a rejected tube beside it is still a pair.
        tube(12, "2026-12-06", 8),
        tube(13, "2026-12-06", 6),
        tube(14, "2026-12-06", None, status="rejected"),
    ]
    pairs = [(10, 20), (10, 14), (8, 6)]
    excess = sum((a - b) ** 2 - (a + b) for a, b in pairs)
    expected = math.sqrt(excess / (2 * sum(a * b for a, b in pairs)))
    got = assess(tubes)["replicate_cv"]
    assert got["pairs"] == 3
    assert got["cv"] == pytest.approx(expected)


def test_replicate_cv_is_never_negative_and_undefined_without_pairs() -> None:
    assert cv_from_pairs([(10, 10)]) == 0.0
    assert cv_from_pairs([]) is None
    assert cv_from_pairs([(0, 3)]) is None
    assert assess([tube(1, "2026-11-01", 4)])["replicate_cv"] == {"pairs": 0, "cv": None}


def _d(value: str) -> date:
    return date.fromisoformat(value)


def test_sample_rate_is_exact() -> None:
    sample = Sample(
        drawn_at=None,  # type: ignore[arg-type]
        local_date=_d("2026-11-01"),
        tube_ids=(1,),
        volumes=(Decimal("4.5"),),
        count=3,
        volume=Decimal("4.5"),
        censored=False,
    )
    assert sample.rate == 5


# --- refused at entry ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        tube(1, "2026-11-01", 3, "0.9"),
        tube(1, "2026-11-01", 3, "10.1"),
        tube(1, "2026-11-01", -1),
        {**tube(1, "2026-11-01", 3), "count": None},
        # >3 in 7.5 mL is below the breast cut-off of 5: it cannot be classified.
        tube(1, "2026-11-01", 3, qualifier=">"),
        # >4 in 7.5 mL is 4 per 7.5 mL (refused); >4 in 5 mL is 6 per 7.5 mL (accepted below).
        tube(1, "2026-11-01", 4, qualifier=">"),
    ],
)
def test_inputs_the_specification_refuses_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        assess([bad])


@pytest.mark.parametrize(
    "good",
    [
        tube(1, "2026-11-01", 3, "1.0"),
        tube(1, "2026-11-01", 3, "10.0"),
        tube(1, "2026-11-01", 4, "5", qualifier=">"),
        tube(1, "2026-11-01", 5, qualifier=">"),
    ],
)
def test_inputs_at_the_limits_are_accepted(good: dict[str, Any]) -> None:
    assert assess([good])["tubes"][1]["evaluable"] is True


def test_a_pending_tube_beside_a_resulted_one_references_the_sample() -> None:
    tubes = [tube(1, "2026-11-04", 2), tube(2, "2026-11-04", None, status="pending")]
    out = assess(tubes)["tubes"][2]
    assert out["sample"] == [1] and out["evaluable"] is False and out["flags"] == []
