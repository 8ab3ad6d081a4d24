"""The production rules against the independent reference implementation, on random patients.

`tests/reference_rules.py` was written from the specification alone. Hypothesis builds
patients (tubes pooled into samples, censored counts, odd volumes, rejected and pending
tubes, lines with doxorubicin, delayed and given cycles, any `today`) and both
implementations must agree on every tube, every cycle and the worklist order. Where the
project reads the specification differently (a cancer type with no cut-off gets a
`no_cutoff` flag), the cases stay out of this comparison and have their own tests.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients import rules
from tests.reference_rules import reference_assess

ZONE = ZoneInfo("Europe/London")
CUTOFFS = {"breast": 5, "prostate": 5, "colorectal": 3}
START = date(2026, 1, 5)
VOLUMES = ["7.5", "7.5", "7.5", "7.5", "5", "10", "3.75", "1.0", "4.5", "6.25"]


def production_assess(case: dict[str, Any]) -> dict[str, Any]:
    """The production rules, with the reference's input and output shapes."""
    settings_ = case["settings"]
    zone = ZoneInfo(settings_["time_zone"])
    draws = [
        rules.DrawIn(
            id=raw["id"],
            drawn_at=datetime.fromisoformat(raw["drawn_at"]),
            drawn_on=datetime.fromisoformat(raw["drawn_at"]).astimezone(zone).date(),
            blood_volume_ml=Decimal(raw["volume_ml"]),
            status=raw["status"],
            ctc_count=raw["count"],
            count_qualifier=raw["qualifier"] if raw["status"] == "resulted" else "",
        )
        for raw in case["tubes"]
    ]
    lines = [
        rules.LineIn(
            id=raw["id"],
            line_number=raw["id"],
            start_date=date.fromisoformat(raw["start_date"]),
            contains_doxorubicin=raw["contains_doxorubicin"],
        )
        for raw in case["lines"]
    ]
    cycles = [
        rules.CycleIn(
            id=raw["id"],
            line_id=raw["line_id"],
            number=raw["number"],
            scheduled_date=date.fromisoformat(raw["scheduled_date"]),
            first_scheduled_date=date.fromisoformat(raw["first_scheduled_date"]),
            given_date=date.fromisoformat(raw["given_date"]) if raw["given_date"] else None,
            status=raw["status"],
        )
        for raw in case["cycles"]
    ]
    config = rules.Settings(
        clear_probability=settings_["clear_probability"],
        extra_poisson_cv=settings_["extra_poisson_cv"],
        window_days=settings_["pre_cycle_window_days"],
    )
    tubes = rules.assess_draws(
        draws,
        lines,
        cycles,
        cancer_type=case["cancer_type"],
        cutoff=rules.cutoff_for(case["cancer_type"], case["cutoffs"]),
        settings=config,
    )
    today = date.fromisoformat(case["today"])
    evaluated = {
        c.id: rules.assess_cycle(c, tubes, today=today, window_days=config.window_days)
        for c in cycles
    }
    upcoming = [c for c in cycles if c.status in rules.UPCOMING_CYCLE_STATUSES]
    upcoming.sort(key=lambda c: (*rules.worklist_sort_key(evaluated[c.id], False), c.id))
    return {
        "tubes": {t.draw.id: _tube(t) for t in tubes},
        "cycles": {cid: _cycle(found) for cid, found in evaluated.items()},
        "worklist_order": [c.id for c in upcoming],
        "pairs": sorted(rules.duplicate_pairs(rules.pool(draws))),
    }


def _flags(flags: tuple[rules.Flag, ...]) -> list[list[str]]:
    return sorted([flag.code, flag.severity.value] for flag in flags)


def _tube(found: rules.DrawAssessment) -> dict[str, Any]:
    sample = found.sample
    return {
        "sample": None if sample is None else sorted(t.id for t in sample.sample.tubes),
        "evaluable": found.evaluable,
        "rate_per_7_5_ml": found.rate_per_7_5_ml,
        "censored": found.censored,
        "category": None if found.category is None else found.category.value,
        "ci95": None if found.ci95 is None else list(found.ci95),
        "p_at_or_above_cutoff": found.p_at_or_above_cutoff,
        "flags": _flags(found.flags),
        "needs_review": found.needs_review,
    }


def _cycle(found: rules.CycleAssessment) -> dict[str, Any]:
    most_severe = found.severity.value if found.severity is not None else "none"
    if found.severity is None and found.state is rules.PreCycleState.DRAW_DUE:
        most_severe = "draw_due"
    return {
        "window": [found.window[0].isoformat(), found.window[1].isoformat()],
        "state": found.state.value,
        "flags": _flags(found.flags),
        "most_severe": most_severe,
    }


# --- random patients -------------------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    cancer_type = draw(st.sampled_from(sorted(CUTOFFS)))
    cutoff = CUTOFFS[cancer_type]
    days = draw(st.lists(st.integers(0, 120), min_size=1, max_size=6, unique=True))
    tubes = []
    for tube_id in range(1, draw(st.integers(0, 12)) + 1):
        day = START + timedelta(days=draw(st.sampled_from(days)))
        hour = draw(st.sampled_from([9, 9, 9, 14]))  # same instants often: samples pool
        status = draw(
            st.sampled_from(["resulted"] * 6 + ["rejected", "failed", "pending", "cancelled"])
        )
        volume = draw(st.sampled_from(VOLUMES))
        count = censored = None
        qualifier = ""
        if status == "resulted":
            censored = draw(st.integers(0, 14)) == 0
            if censored:
                least = math.ceil(cutoff * Decimal(volume) / Decimal("7.5"))
                count = draw(st.integers(least, least + 1000))
                qualifier = ">"
            else:
                count = draw(st.one_of(st.integers(0, 12), st.integers(0, 60)))
        drawn_at = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
        tubes.append(
            {
                "id": tube_id,
                "drawn_at": drawn_at.isoformat(),
                "volume_ml": volume,
                "status": status,
                "count": count,
                "qualifier": qualifier,
            }
        )
    lines = [
        {
            "id": line_id,
            "start_date": (START + timedelta(days=draw(st.integers(-10, 100)))).isoformat(),
            "contains_doxorubicin": draw(st.booleans()),
        }
        for line_id in range(1, draw(st.integers(0, 2)) + 1)
    ]
    cycles = []
    for cycle_id in range(1, (draw(st.integers(0, 5)) if lines else 0) + 1):
        scheduled = START + timedelta(days=draw(st.integers(0, 130)))
        first = scheduled - timedelta(days=draw(st.sampled_from([0, 0, 0, 3, 7, 14, -2])))
        status = draw(st.sampled_from(["planned", "planned", "delayed", "given", "cancelled"]))
        given = None
        if status == "given":
            given = (scheduled + timedelta(days=draw(st.integers(0, 2)))).isoformat()
        cycles.append(
            {
                "id": cycle_id,
                "line_id": draw(st.sampled_from([line["id"] for line in lines])),
                "number": cycle_id,
                "scheduled_date": scheduled.isoformat(),
                "first_scheduled_date": first.isoformat(),
                "given_date": given,
                "status": status,
            }
        )
    return {
        "cancer_type": cancer_type,
        "cutoffs": CUTOFFS,
        "settings": {
            "clear_probability": draw(st.sampled_from([0.90, 0.90, 0.80, 0.95])),
            "extra_poisson_cv": draw(st.sampled_from([0.0, 0.0, 0.25])),
            "pre_cycle_window_days": 7,
            "time_zone": "Europe/London",
        },
        "today": (START + timedelta(days=draw(st.integers(-5, 140)))).isoformat(),
        "tubes": tubes,
        "lines": lines,
        "cycles": cycles,
    }


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_production_rules_agree_with_the_reference(case: dict[str, Any]) -> None:
    expected = reference_assess(case)
    found = production_assess(case)
    for tube_id, tube in expected["tubes"].items():
        assert _close(found["tubes"][tube_id], tube), (tube_id, found["tubes"][tube_id], tube)
    for cycle_id, cycle in expected["cycles"].items():
        assert _close(found["cycles"][cycle_id], cycle), (cycle_id, found["cycles"][cycle_id])
    assert found["worklist_order"] == expected["worklist_order"]
    assert len(found["pairs"]) == expected["replicate_cv"]["pairs"]
