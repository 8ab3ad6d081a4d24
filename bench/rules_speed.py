"""How fast patients.rules.assess_draws is, as a ratio to merely computing rates.

Run from the project root:  python bench/rules_speed.py [number_of_draws]

Builds one synthetic patient with 10,000 draws (mixed statuses, volumes, three
therapy lines with doxorubicin cycles) and times, in the same run:
  - baseline: rate_per_7_5_ml for every resulted draw;
  - assess_draws over the same draws, plus assess_cycle for every cycle.
Times are the best of several runs, reported as draws per second and as a ratio
to the baseline, because this machine is shared and absolute times are noisy.
Tests never assert on time; this script is where speed is watched.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patients import rules  # noqa: E402 (the path must be set first)
from patients.rules import (  # noqa: E402
    CycleIn,
    DrawIn,
    LineIn,
    assess_cycle,
    assess_draws,
    rate_per_7_5_ml,
)

# Roughly what a clinic sees: most draws resulted, a few rejected, failed or open.
STATUSES = ["resulted"] * 90 + ["rejected"] * 4 + ["failed"] * 2 + ["pending", "cancelled"] * 2
VOLUMES = [Decimal("7.5")] * 9 + [Decimal("5.0"), Decimal("10"), Decimal("15")]


def synthetic_patient(n: int, seed: int = 1) -> tuple[list[DrawIn], list[LineIn], list[CycleIn]]:
    rng = random.Random(seed)
    start = datetime(2000, 1, 3, 9, 30, tzinfo=UTC)
    draws = []
    level = 5.0
    for i in range(n):
        drawn_at = start + timedelta(days=i, hours=rng.randint(0, 8))
        status = rng.choice(STATUSES)
        level = max(0.2, level * rng.choice([0.5, 0.8, 1.0, 1.25, 2.0]))
        count = min(int(rng.expovariate(1 / level)), 500) if status == "resulted" else None
        draws.append(DrawIn(i + 1, drawn_at, drawn_at.date(), rng.choice(VOLUMES), status, count))
    span = n // 3
    lines = [
        LineIn(k + 1, k + 1, start.date() + timedelta(days=k * span), k % 2 == 0) for k in range(3)
    ]
    cycles = [
        CycleIn(c + 1, lines[min(c * 21 // span, 2)].id, c + 1, day, day, "given")
        for c, day in enumerate(_every(start.date(), 21, n))
    ]
    return draws, lines, cycles


def _every(first: date, days: int, span_days: int) -> list[date]:
    return [first + timedelta(days=d) for d in range(0, span_days, days)]


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    draws, lines, cycles = synthetic_patient(n)
    shuffled = random.Random(2).sample(draws, len(draws))

    def rates_only() -> object:
        return [
            rate_per_7_5_ml(d.ctc_count, d.blood_volume_ml)
            for d in draws
            if d.ctc_count is not None
        ]

    def assess() -> object:
        return assess_draws(shuffled, lines, cycles, cancer_type="breast", cutoff=5)

    assess()  # warm the p-value and interval caches, as a running server would be
    baseline = best_of(5, rates_only)
    assessing = best_of(5, assess)
    assessments = assess()
    cycles_time = best_of(3, lambda: [assess_cycle(c, assessments) for c in cycles])

    print(f"{n} draws, {len(cycles)} cycles, 3 lines")
    print(f"rates only:   {baseline * 1000:8.1f} ms  ({n / baseline:,.0f} draws/s)")
    print(f"assess_draws: {assessing * 1000:8.1f} ms  ({n / assessing:,.0f} draws/s)")
    print(f"ratio assess_draws / rates only: {assessing / baseline:.1f}")
    print(f"assess_cycle for every cycle: {cycles_time * 1000:.1f} ms")
    cold = best_of(1, lambda: _cold_assess(shuffled, lines, cycles))
    print(f"assess_draws with empty caches: {cold * 1000:.1f} ms")
    many = [synthetic_patient(20, seed) for seed in range(n // 20)]
    per_patient = best_of(3, lambda: [_assess_patient(*patient) for patient in many])
    print(
        f"{len(many)} patients of 20 draws, one call each: {per_patient * 1000:.1f} ms "
        f"({n / per_patient:,.0f} draws/s)"
    )


def _assess_patient(draws: list[DrawIn], lines: list[LineIn], cycles: list[CycleIn]) -> object:
    return assess_draws(draws, lines, cycles, cancer_type="colorectal", cutoff=3)


def _cold_assess(draws: list[DrawIn], lines: list[LineIn], cycles: list[CycleIn]) -> object:
    # The private caches are cleared only to show the worst case (a fresh process).
    rules._garwood_interval.cache_clear()
    rules._binomial_upper_tail.cache_clear()
    return assess_draws(draws, lines, cycles, cancer_type="breast", cutoff=5)


if __name__ == "__main__":
    main()
