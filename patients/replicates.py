"""The replicate variation between tubes, estimated from the clinic's own duplicate tubes.

The specification (docs/clinical-rules.md, section 3, "Estimating the replicate
variation from the clinic's own tubes"): samples with exactly two evaluable,
uncensored tubes of equal volume are duplicate pairs (a, b); the method-of-moments
estimate over all pairs is

    cv^2 = max(0, sum((a - b)^2 - (a + b)) / (2 * sum(a * b)))

(under gamma-Poisson mixing E[(a - b)^2] = 2m + 2 m^2 cv^2 and E[ab] = m^2), reported
as cv with a bootstrap 95% percentile interval over the pairs and the number of pairs;
below `MIN_PAIRS` pairs there is no estimate. The software estimates; a person decides
whether to set `CTC_EXTRA_POISSON_CV`, and nothing here changes it.

Pure: plain values in, plain values out; no Django, no database, no clock (the
bootstrap's seed is fixed, so the same tubes always give the same interval).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import numpy as np

# The vocabulary, as the record stores it: the evaluable status and the censored qualifier.
EVALUABLE_STATUS = "resulted"
CENSORED = ">"

MIN_PAIRS = 20
RESAMPLES = 1000
SEED = 20_261_203
INTERVAL_PERCENTILES = (2.5, 97.5)
# The bootstrap draws resamples x pairs indices at once; more pairs than this bound
# allows are resampled in blocks of resamples, so memory stays bounded.
_MAX_BLOCK_CELLS = 4_000_000


class Tube(NamedTuple):
    """One tube (a stored draw) as the estimate reads it: the draw's fields, by their names."""

    patient_id: int
    drawn_at: datetime  # time-zone aware
    blood_volume_ml: Decimal
    status: str
    ctc_count: int | None
    count_qualifier: str = ""  # "" exact, ">" a lower bound (a censored count)


Pair = tuple[int, int]


@dataclass(frozen=True)
class ReplicateEstimate:
    """The estimate: `cv` (a fraction, not cv^2) with its bootstrap 95% interval.

    `cv`, `low` and `high` are None when there are too few pairs, or when no pair has
    cells in both tubes (sum(a * b) = 0: the formula has no denominator).
    """

    pairs: int
    cv: float | None
    low: float | None
    high: float | None

    @property
    def too_few(self) -> bool:
        return self.pairs < MIN_PAIRS


def duplicate_pairs(tubes: Iterable[Tube]) -> list[Pair]:
    """The duplicate pairs among `tubes`: one (smaller, larger) count per sample that has
    exactly two evaluable tubes, both uncensored, of equal volume.

    A sample is every evaluable tube of one patient drawn at the same instant; tubes
    that are not evaluable (rejected, failed, pending, cancelled) beside them change
    nothing. Pairs come in the order of (patient, drawn_at), whatever the tubes' order.
    """
    samples: dict[tuple[int, datetime], list[Tube]] = defaultdict(list)
    for tube in tubes:
        if tube.drawn_at.utcoffset() is None:
            raise ValueError(f"A tube's drawn_at must be time-zone aware: {tube.drawn_at!r}")
        if tube.status == EVALUABLE_STATUS:
            # Aware datetimes of one instant are equal and hash alike, whatever their zone.
            samples[(tube.patient_id, tube.drawn_at)].append(tube)
    pairs = []
    for _, sample in sorted(samples.items(), key=lambda item: item[0]):
        if len(sample) != 2:
            continue
        first, second = sample
        if CENSORED in (first.count_qualifier, second.count_qualifier):
            continue
        if first.blood_volume_ml != second.blood_volume_ml:
            continue
        a, b = first.ctc_count, second.ctc_count
        if a is None or b is None:
            raise ValueError("A resulted tube without a count cannot be paired.")
        pairs.append((min(a, b), max(a, b)))
    return pairs


def moment_cv(pairs: Sequence[Pair]) -> float | None:
    """cv by the method of moments over `pairs`, whatever their number; None when
    sum(a * b) = 0."""
    products = sum(a * b for a, b in pairs)
    if products == 0:
        return None
    excess = sum((a - b) ** 2 - (a + b) for a, b in pairs)
    return math.sqrt(max(0.0, excess / (2 * products)))


def estimate_cv(
    pairs: Sequence[Pair], *, resamples: int = RESAMPLES, seed: int = SEED
) -> ReplicateEstimate:
    """The spec's estimate from duplicate pairs: cv, its bootstrap 95% percentile interval
    (`resamples` resamples of the pairs, numpy's default generator seeded with `seed`)
    and the number of pairs; no figures below `MIN_PAIRS` pairs.

    The pairs are sorted first, so neither their order nor the order of their two
    counts changes the interval. A resample in which no pair has cells in both tubes
    has no estimate and is left out of the interval.
    """
    if resamples < 1:
        raise ValueError(f"The bootstrap needs at least one resample, not {resamples}.")
    n = len(pairs)
    cv = moment_cv(pairs) if n >= MIN_PAIRS else None
    if cv is None:
        return ReplicateEstimate(pairs=n, cv=None, low=None, high=None)
    data = np.array(sorted((min(a, b), max(a, b)) for a, b in pairs), dtype=np.float64)
    a, b = data[:, 0], data[:, 1]
    excess, products = (a - b) ** 2 - (a + b), a * b
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, _MAX_BLOCK_CELLS // n))
    estimates = []
    for start in range(0, resamples, block):
        picked = rng.integers(0, n, size=(min(block, resamples - start), n))
        numerator, denominator = excess[picked].sum(axis=1), 2 * products[picked].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            squared = np.where(denominator > 0, numerator / denominator, np.nan)
        estimates.append(np.sqrt(np.maximum(squared, 0.0)))
    cvs = np.concatenate(estimates)
    cvs = cvs[~np.isnan(cvs)]
    if cvs.size == 0:
        return ReplicateEstimate(pairs=n, cv=cv, low=None, high=None)
    low, high = np.percentile(cvs, INTERVAL_PERCENTILES)
    return ReplicateEstimate(pairs=n, cv=cv, low=float(low), high=float(high))


def fraction(value: float) -> str:
    """A cv as the estimate reports it: a fraction to two decimals ("0.18")."""
    return f"{value:.2f}"


def interval_text(estimate: ReplicateEstimate) -> str:
    """The bootstrap interval in words: "0.09 to 0.26", or why there is none."""
    if estimate.low is None or estimate.high is None:
        return "no estimate" if estimate.cv is None else "no bootstrap interval"
    return f"{fraction(estimate.low)} to {fraction(estimate.high)}"


def describe(estimate: ReplicateEstimate, setting: float) -> str:
    """The estimate in one sentence, with the setting as it stands (the command and the
    staff page say the same)."""
    unchanged = (
        f"this does not change CTC_EXTRA_POISSON_CV: a person decides to set it (now {setting})"
    )
    if estimate.too_few:
        return f"too few pairs ({estimate.pairs}; at least {MIN_PAIRS} are needed); {unchanged}"
    counted = f"{estimate.pairs} duplicate pairs"
    if estimate.cv is None:
        return f"{counted}, but no pair has cells in both tubes: no estimate; {unchanged}"
    interval = interval_text(estimate)
    if estimate.low is not None:
        interval = f"95% interval {interval}"
    return f"{counted}; replicate cv {fraction(estimate.cv)} ({interval}); {unchanged}"
