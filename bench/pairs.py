"""Two requests timed back to back, in pairs: what one saves over the other.

When two requests differ by less than either's run-to-run noise (a chart's 304
against the cached chart), two medians cannot tell them apart; the difference
within each pair, timed back to back in alternating order so that drift and the
warmth of the request before fall on both alike, can.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Paired:
    pairs: int
    first_ms: float  # median
    second_ms: float  # median
    saved_ms: float  # median over the pairs of (first - second): what the second saves
    cheaper: float  # share of the pairs in which the second took less


def time_pairs(first: Callable[[], Any], second: Callable[[], Any], pairs: int) -> Paired:
    times: tuple[list[float], list[float]] = ([], [])
    for k in range(pairs):
        order = ((1, second), (0, first)) if k % 2 else ((0, first), (1, second))
        for which, work in order:
            began = time.perf_counter()
            work()
            times[which].append(time.perf_counter() - began)
    saved = [a - b for a, b in zip(*times, strict=True)]
    return Paired(
        pairs=pairs,
        first_ms=statistics.median(times[0]) * 1000,
        second_ms=statistics.median(times[1]) * 1000,
        saved_ms=statistics.median(saved) * 1000,
        cheaper=sum(s > 0 for s in saved) / pairs,
    )
