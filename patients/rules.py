"""Clinical rules for CTC counts: samples, categories, flags and pre-cycle states.

The single source of truth is the specification (version 2), worded for
clinicians in docs/clinical-rules.md; this module implements it. Pure
functions: no Django, no database, no clock (`today` is an argument). Callers
fetch the rows, convert them to the frozen dataclasses below (with each draw's
local date already computed in the clinic's time zone) and pass the cut-off
and the settings. Nothing here recommends a treatment: flags prompt review.

The rules work on *samples*: the evaluable tubes of one patient drawn at the
same instant, pooled (counts and volumes summed). Every tube of a sample shows
the sample's rate, category and flags.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from functools import cached_property, lru_cache

from scipy.special import gammaincc
from scipy.stats import binomtest, chi2, norm

from patients.wording import count_phrase, counted_in_volume, date_text, short_rate

STANDARD_VOLUME_ML = Decimal("7.5")
# A CellSave tube holds 10 mL: what entry accepts (stored rows from before version 2
# may lie outside; they are assessed as stored).
MIN_VOLUME_ML = Decimal("1.0")
MAX_VOLUME_ML = Decimal("10.0")
DEFAULT_PRE_CYCLE_WINDOW_DAYS = 7
DEFAULT_CLEAR_PROBABILITY = 0.90
# Draws are taken 3-7 days before day 1 so that the result (1-5 days) is back in time.
RESULT_LEAD_DAYS = 3

# The rise test (spec section 3): a rise needs at least this rate ratio and
# a one-sided p below the level for the comparison it is made against.
RISE_MIN_RATIO = 2
RISE_ALPHA_VS_PREVIOUS = 0.05
RISE_ALPHA_VS_NADIR = 0.01

# A baseline drawn up to this many days before C1D1 belongs to the new line.
LINE_MEMBERSHIP_LEAD_DAYS = 14

# Doxorubicin window, in local days after the dose: day 0 is taken to be a
# pre-dose draw and day 7 is when lab guidance says to draw again.
DOXORUBICIN_FIRST_DAY = 1
DOXORUBICIN_LAST_DAY = 6

# The near-the-cut-off chance is shown when it lies strictly between these.
CHANCE_SHOWN_ABOVE = 0.05
CHANCE_SHOWN_BELOW = 0.95


class Category(StrEnum):
    FAVOURABLE = "favourable"
    UNFAVOURABLE = "unfavourable"


class Severity(StrEnum):
    HIGH = "high"
    REVIEW = "review"
    INFO = "info"


SEVERITY_ORDER: dict[Severity | None, int] = {
    Severity.HIGH: 0,
    Severity.REVIEW: 1,
    Severity.INFO: 2,
    None: 3,
}
NEEDS_REVIEW = frozenset({Severity.HIGH, Severity.REVIEW})


class DrawStatus(StrEnum):
    RESULTED = "resulted"
    REJECTED = "rejected"
    FAILED = "failed"
    PENDING = "pending"
    CANCELLED = "cancelled"


class CycleStatus(StrEnum):
    PLANNED = "planned"
    GIVEN = "given"
    DELAYED = "delayed"
    CANCELLED = "cancelled"


# Upcoming cycles (planned or delayed) make up the worklist. A tuple, in the enum's
# order: the worklist's partial index condition is built from it, and a set's order
# changes from run to run (and with it, the migration).
UPCOMING_CYCLE_STATUSES = (CycleStatus.PLANNED, CycleStatus.DELAYED)
EVALUATED_CYCLE_STATUSES = frozenset({*UPCOMING_CYCLE_STATUSES, CycleStatus.GIVEN})
NOT_EVALUABLE_STATUSES = frozenset({DrawStatus.REJECTED, DrawStatus.FAILED})
# Each status by its value: a dictionary look-up is a tenth of the enum's own call,
# which is then left to refuse an unknown value (`_draw_status`, `_owes`).
_DRAW_STATUSES: dict[str, DrawStatus] = {status.value: status for status in DrawStatus}
_CYCLE_STATUSES: dict[str, CycleStatus] = {status.value: status for status in CycleStatus}


class Qualifier(StrEnum):
    EXACT = ""
    MORE_THAN = ">"


class FlagCode(StrEnum):
    """Flag codes in the specification's table order (the order within a severity)."""

    BASELINE_UNFAVOURABLE = "baseline_unfavourable"
    CONVERSION_TO_UNFAVOURABLE = "conversion_to_unfavourable"
    PERSISTENT_UNFAVOURABLE = "persistent_unfavourable"
    CONVERSION_TO_FAVOURABLE = "conversion_to_favourable"
    RISE_BEYOND_NOISE = "rise_beyond_noise"
    NON_STANDARD_VOLUME = "non_standard_volume"
    DOXORUBICIN_WINDOW = "doxorubicin_window"
    # Section 4 (a cycle's own flags): missing first, which not_evaluable explains.
    MISSING_PRE_CYCLE_DRAW = "missing_pre_cycle_draw"
    DISCORDANT_IN_WINDOW = "discordant_in_window"
    NOT_EVALUABLE = "not_evaluable"
    # Not in the specification: our answer to "cannot be classified, say so".
    NO_CUTOFF = "no_cutoff"


# Flags a cycle raises itself; every other flag of a cycle is its sample's.
CYCLE_OWN_FLAGS = frozenset(
    {FlagCode.MISSING_PRE_CYCLE_DRAW, FlagCode.DISCORDANT_IN_WINDOW, FlagCode.NOT_EVALUABLE}
)
_CODE_RANK: dict[str, int] = {code: rank for rank, code in enumerate(FlagCode)}


class PreCycleState(StrEnum):
    """What stands before a cycle on a given day (spec section 4). States are not flags."""

    NOT_YET_DUE = "not_yet_due"
    DRAW_DUE = "draw_due"
    RESULT_PENDING = "result_pending"
    RESULT_IN_WINDOW = "result_in_window"
    MISSING = "missing"


# The worklist's ranks within a group: high, review, info, draw due, nothing.
RANK_DRAW_DUE = 3
RANK_NONE = 4
# How many ranks a group spans: the unacknowledged group's ranks come first.
RANKS_PER_GROUP = 5


@dataclass(frozen=True)
class DrawIn:
    """One CTC tube as the rules see it.

    `drawn_at` is time-zone aware; `drawn_on` is its local date in the clinic's
    time zone, computed by the caller. `ctc_count` is read only when resulted;
    with `count_qualifier` ">" it is a lower bound (a censored count).
    """

    id: int | None
    drawn_at: datetime
    drawn_on: date
    blood_volume_ml: Decimal
    status: str  # a DrawStatus value
    ctc_count: int | None
    count_qualifier: str = ""  # "" exact, ">" a lower bound (a censored count)


@dataclass(frozen=True)
class LineIn:
    id: int
    line_number: int
    start_date: date
    contains_doxorubicin: bool
    regimen: str = ""


@dataclass(frozen=True)
class CycleIn:
    id: int
    line_id: int
    number: int
    scheduled_date: date
    given_date: date | None
    status: str  # a CycleStatus value
    first_scheduled_date: date | None = None  # day 1 as first planned; None = scheduled_date


@dataclass(frozen=True)
class Flag:
    code: str  # a FlagCode value
    severity: Severity
    message: str
    # The sample the flag is about (its first tube's id): an acknowledgement covers
    # a flag of one sample, never the same code on a later one. None: not saved yet.
    source: int | None = None


@dataclass(frozen=True)
class Sample:
    """The evaluable tubes of one venepuncture, pooled: counts and volumes summed."""

    tubes: tuple[DrawIn, ...]  # resulted tubes, by id
    count: int  # the sum; a lower bound when censored
    volume_ml: Decimal
    censored: bool

    @property
    def drawn_at(self) -> datetime:
        return self.tubes[0].drawn_at

    @property
    def drawn_on(self) -> date:
        return self.tubes[0].drawn_on

    @property
    def key(self) -> int | None:
        """The sample's identity: its first tube's id (None before it is saved)."""
        return self.tubes[0].id

    @cached_property
    def rate(self) -> Decimal:
        # Cached: the rules read it several times per sample (category, rise, nadir).
        return exact_rate(self.count, self.volume_ml)


@dataclass(frozen=True)
class SampleAssessment:
    sample: Sample
    rate_per_7_5_ml: float
    category: Category | None  # None when the cancer type has no cut-off
    ci95: tuple[float, float | None]  # per 7.5 mL; no upper limit when censored
    p_at_or_above_cutoff: float | None  # None without a cut-off
    flags: tuple[Flag, ...]  # most severe first
    line_id: int | None  # the line the sample belongs to; None = before every line

    @property
    def needs_review(self) -> bool:
        return any(flag.severity in NEEDS_REVIEW for flag in self.flags)


@dataclass(frozen=True)
class DrawAssessment:
    """One tube: its sample's figures and flags, or why it has none."""

    draw: DrawIn
    evaluable: bool
    rate_per_7_5_ml: float | None  # the sample's; None when not evaluable
    category: Category | None
    ci95: tuple[float, float | None] | None
    flags: tuple[Flag, ...]  # the sample's, or `not_evaluable` of a lone failed tube
    line_id: int | None
    # The sample the tube is part of or (not evaluable) was drawn beside; None if alone.
    sample: SampleAssessment | None = None
    p_at_or_above_cutoff: float | None = None

    @property
    def needs_review(self) -> bool:
        return any(flag.severity in NEEDS_REVIEW for flag in self.flags)

    @property
    def censored(self) -> bool:
        return self.evaluable and self.sample is not None and self.sample.sample.censored


@dataclass(frozen=True)
class CycleAssessment:
    cycle: CycleIn
    state: PreCycleState
    window: tuple[date, date]  # local dates, inclusive
    flags: tuple[Flag, ...]  # most severe first
    draw: DrawAssessment | None  # the first tube of the latest evaluable sample in the window
    severity: Severity | None  # highest severity among flags

    @property
    def needs_review(self) -> bool:
        return self.severity in NEEDS_REVIEW


@dataclass(frozen=True)
class Settings:
    """The settings the rules read (from Django's settings, by the caller)."""

    clear_probability: float = DEFAULT_CLEAR_PROBABILITY
    extra_poisson_cv: float = 0.0
    window_days: int = DEFAULT_PRE_CYCLE_WINDOW_DAYS


# --- single numbers -------------------------------------------------------


def cutoff_for(cancer_type: str, cutoffs: Mapping[str, int]) -> int | None:
    """The cut-off (per 7.5 mL, inclusive) for a cancer type; None if it has none.

    The lookup is exact: an unknown or differently spelt type is not guessed at.
    """
    return cutoffs.get(cancer_type)


def exact_rate(count: int, blood_volume_ml: Decimal | float) -> Decimal:
    """CTCs per 7.5 mL in decimal arithmetic, so a rate at a cut-off stays at it."""
    if count < 0:
        raise ValueError(f"a CTC count cannot be negative (got {count})")
    volume = _as_decimal(blood_volume_ml)
    if volume <= 0:
        raise ValueError(f"blood volume must be positive (got {blood_volume_ml} mL)")
    return Decimal(count) * STANDARD_VOLUME_ML / volume


def rate_per_7_5_ml(count: int, blood_volume_ml: Decimal | float) -> float:
    """CTCs per 7.5 mL: count * 7.5 / blood_volume_ml (3 cells in 4.5 mL is exactly 5)."""
    return float(exact_rate(count, blood_volume_ml))


def categorize(rate: Decimal | float, cutoff: int, *, censored: bool = False) -> Category:
    """Unfavourable when rate >= cutoff (inclusive); a censored count always is."""
    if censored or _as_decimal(rate) >= cutoff:
        return Category.UNFAVOURABLE
    return Category.FAVOURABLE


def lower_bound_classifiable(bound: int, blood_volume_ml: Decimal | float, cutoff: int) -> bool:
    """A censored count must be at or above the cut-off once scaled to 7.5 mL."""
    return exact_rate(bound, blood_volume_ml) >= cutoff


def poisson_ci95(
    count: int, blood_volume_ml: Decimal | float, *, censored: bool = False
) -> tuple[float, float | None]:
    """Exact (Garwood) 95% Poisson interval of the count, scaled to per 7.5 mL.

    0 cells in 7.5 mL gives (0, 3.69); 5 cells gives (1.62, 11.67). A censored
    count has only its lower limit (that of its bound).
    """
    scale = _per_7_5_ml(blood_volume_ml)
    lower, upper = _garwood_interval(count)
    return (lower * scale, None if censored else upper * scale)


@lru_cache(maxsize=1024)
def _per_7_5_ml(blood_volume_ml: Decimal | float) -> float:
    # Cached: a clinic uses a handful of volumes. Equal keys (7.5 and Decimal("7.5"))
    # give equal results; an invalid volume raises, and exceptions are not cached.
    return rate_per_7_5_ml(1, blood_volume_ml)


@lru_cache(maxsize=4096)
def _garwood_interval(count: int) -> tuple[float, float]:
    # Cached: counts repeat across draws and chi2.ppf costs tens of microseconds.
    lower = 0.0 if count == 0 else float(chi2.ppf(0.025, 2 * count)) / 2
    upper = float(chi2.ppf(0.975, 2 * count + 2)) / 2
    return (lower, upper)


def p_at_or_above_cutoff(
    count: int, blood_volume_ml: Decimal | float, cutoff: int, *, censored: bool = False
) -> float:
    """The chance that the true rate is at or above the cut-off, given this count.

    With a Jeffreys prior: Q(x + 0.5, cutoff * v / 7.5), Q the regularised upper
    incomplete gamma function. 5 cells in 7.5 mL at cut-off 5: 0.53. Censored: 1.
    """
    if censored:
        return 1.0
    return _jeffreys_upper(count, float(cutoff) * float(blood_volume_ml) / 7.5)


@lru_cache(maxsize=16384)
def _jeffreys_upper(count: int, expected: float) -> float:
    return float(gammaincc(count + 0.5, expected))


def is_clear(category: Category, p: float, clear_probability: float) -> bool:
    """Clear on its side of the cut-off: p >= clear (unfavourable), p <= 1 - clear (favourable).

    Compared as the decimals the numbers print as, so that 0.10 is clear at 0.90.
    """
    chance, clear = _printed_decimal(float(p)), _printed_decimal(float(clear_probability))
    if category is Category.UNFAVOURABLE:
        return chance >= clear
    return chance <= 1 - clear


@lru_cache(maxsize=16384)
def _printed_decimal(value: float) -> Decimal:
    # Cached: the same chances recur (one per count, volume and cut-off).
    return Decimal(repr(value))


def chance_shown(p: float | None) -> bool:
    """Whether the near-the-cut-off chance is worth showing beside a count."""
    return p is not None and CHANCE_SHOWN_ABOVE < p < CHANCE_SHOWN_BELOW


def chance_text(p: float) -> str:
    return f"chance that the true count is at or above the cut-off: about {round(p * 100)}%"


def rise_p_value(
    x1: int, v1: Decimal | float, x2: int, v2: Decimal | float, *, cv: float = 0.0
) -> float | None:
    """One-sided p that x2 cells in v2 mL exceed x1 cells in v1 mL beyond noise.

    The exact conditional test for two Poisson counts:
    P[Binomial(n, v2 / (v1 + v2)) >= x2] with n = x1 + x2. With a replicate
    variation cv > 0, also the log-rate z test with 2 cv^2 extra variance; the
    larger p counts. None when n == 0 (no cells in either: nothing to test).
    """
    n = x1 + x2
    if n == 0:
        return None
    p = _binomial_upper_tail(x2, n, float(v2) / (float(v1) + float(v2)))
    if cv > 0:
        p = max(p, _extra_poisson_p(x1, float(v1), x2, float(v2), cv))
    return p


@lru_cache(maxsize=16384)
def _binomial_upper_tail(successes: int, trials: int, probability: float) -> float:
    # Cached: the same pairs of counts recur within and across patients.
    return float(binomtest(successes, trials, probability, alternative="greater").pvalue)


def _extra_poisson_p(x1: int, v1: float, x2: int, v2: float, cv: float) -> float:
    r1, r2 = (x1 + 0.5) * 7.5 / v1, (x2 + 0.5) * 7.5 / v2
    z = (math.log(r2) - math.log(r1)) / math.sqrt(1 / (x1 + 0.5) + 1 / (x2 + 0.5) + 2 * cv**2)
    return float(norm.sf(z))


def rate_ratio(earlier_rate: float, later_rate: float) -> float | None:
    """later / earlier; infinite when earlier is 0 and later is not; None when both are 0."""
    if earlier_rate == 0:
        return math.inf if later_rate > 0 else None
    return later_rate / earlier_rate


def line_for(drawn_on: date, lines: Sequence[LineIn]) -> LineIn | None:
    """The therapy line a sample on local date `drawn_on` belongs to.

    The line with the latest start_date on or before drawn_on + 14 days (so a
    baseline up to 14 days before C1D1 belongs to the new line); on equal start
    dates, the higher line_number. None when the sample precedes every line.
    """
    return _line_lookup(lines)(drawn_on)


def _line_lookup(lines: Sequence[LineIn]) -> Callable[[date], LineIn | None]:
    # Sorted once so that each sample costs one binary search, not a scan.
    ordered = sorted(lines, key=lambda line: (line.start_date, line.line_number, line.id))
    starts = [line.start_date for line in ordered]
    lead = timedelta(days=LINE_MEMBERSHIP_LEAD_DAYS)

    def lookup(drawn_on: date) -> LineIn | None:
        index = bisect_right(starts, drawn_on + lead)
        return ordered[index - 1] if index else None

    return lookup


def highest_severity(flags: Iterable[Flag]) -> Severity | None:
    return min((flag.severity for flag in flags), key=SEVERITY_ORDER.__getitem__, default=None)


def format_p_value(p: float) -> str:
    """Three decimals, or "p < 0.001".

    A p just below a decision level (0.05, 0.01) would round up to it (4 -> 15
    against a nadir has p = 0.0096, shown as 0.010 beside a flag that needs
    p < 0.01), so then four decimals are shown, rounded down.
    """
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.3f}"
    if any(p < level <= float(text) for level in (RISE_ALPHA_VS_PREVIOUS, RISE_ALPHA_VS_NADIR)):
        text = str(Decimal(repr(p)).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR))
    return f"p = {text}"


def _draw_status(value: str) -> DrawStatus:
    """`DrawStatus(value)`: the member, or ValueError for a value that is none."""
    return _DRAW_STATUSES.get(value) or DrawStatus(value)


def _owes(cycle: CycleIn) -> bool:
    """Whether the cycle is evaluated (upcoming or given); ValueError for an unknown status."""
    status = _CYCLE_STATUSES.get(cycle.status) or CycleStatus(cycle.status)
    return status in EVALUATED_CYCLE_STATUSES


def _as_decimal(value: Decimal | float) -> Decimal:
    # repr() keeps a float's intended decimal value (7.1, not 7.0999...).
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def _ordered(flags: Iterable[Flag]) -> tuple[Flag, ...]:
    """Most severe first; within a severity, the specification's table order."""
    return tuple(
        sorted(flags, key=lambda flag: (SEVERITY_ORDER[flag.severity], _CODE_RANK[flag.code]))
    )


# --- samples --------------------------------------------------------------


def pool(tubes: Iterable[DrawIn]) -> list[Sample]:
    """The samples of one patient, oldest first: resulted tubes of one instant pooled."""
    by_instant: dict[datetime, list[DrawIn]] = {}
    for tube in tubes:
        if tube.drawn_at.utcoffset() is None:
            raise ValueError(f"draw {tube.id}: drawn_at must be time-zone aware")
        if _draw_status(tube.status) is DrawStatus.RESULTED:
            by_instant.setdefault(tube.drawn_at, []).append(tube)
    return [_pooled(by_instant[instant]) for instant in sorted(by_instant)]


def _pooled(tubes: list[DrawIn]) -> Sample:
    # Most samples are one tube: one pass, the sums in the same order as `sum` adds them.
    ordered = tuple(sorted(tubes, key=_tube_order)) if len(tubes) > 1 else tuple(tubes)
    count, volume, censored = 0, Decimal(0), False
    for tube in ordered:
        if tube.ctc_count is None:
            raise ValueError(f"draw {tube.id} is resulted but has no CTC count")
        count += tube.ctc_count
        volume += _as_decimal(tube.blood_volume_ml)
        censored = censored or tube.count_qualifier == Qualifier.MORE_THAN
    return Sample(tubes=ordered, count=count, volume_ml=volume, censored=censored)


def _tube_order(tube: DrawIn) -> tuple[bool, int]:
    # Tubes without an id (not yet saved) come after saved ones.
    return (tube.id is None, tube.id or 0)


# --- flags on a sample ----------------------------------------------------


@dataclass
class _Series:
    """What assessing one sample needs to know about the patient's earlier samples."""

    cancer_type: str
    cutoff: int | None
    settings: Settings
    line_of: Callable[[date], LineIn | None]
    dose_dates: list[date]  # doxorubicin given dates, sorted
    line_numbers: dict[int, int]
    previous: SampleAssessment | None = None  # previous evaluable sample, any line
    # Running minimum of the uncensored samples per line group (None = before every
    # line), so the nadir costs O(1) per sample instead of a scan of the group.
    nadirs: dict[int | None, SampleAssessment] = field(default_factory=dict)


def assess_samples(
    samples: Sequence[Sample],
    lines: Sequence[LineIn],
    cycles: Sequence[CycleIn],
    *,
    cancer_type: str,
    cutoff: int | None,
    settings: Settings = Settings(),
) -> list[SampleAssessment]:
    """Assess one patient's samples (from `pool`, oldest first).

    `cutoff` is per 7.5 mL and inclusive (from `cutoff_for`); None means the
    cancer type cannot be classified.
    """
    series = _Series(
        cancer_type=cancer_type,
        cutoff=cutoff,
        settings=settings,
        line_of=_line_lookup(lines),
        dose_dates=_doxorubicin_dose_dates(lines, cycles),
        line_numbers={line.id: line.line_number for line in lines},
    )
    return [_assess_sample(sample, series) for sample in samples]


def assess_draws(
    draws: Sequence[DrawIn],
    lines: Sequence[LineIn],
    cycles: Sequence[CycleIn],
    *,
    cancer_type: str,
    cutoff: int | None,
    settings: Settings = Settings(),
) -> list[DrawAssessment]:
    """Assess one patient's tubes, oldest first (by drawn_at, then id); any input order.

    Each resulted tube carries its sample's assessment. A rejected or failed tube
    with no evaluable tube at the same instant gets `not_evaluable`; beside one,
    it refers to that sample and has no flag of its own (nor has a pending or
    cancelled tube). Non-evaluable tubes are never read as a zero.
    """
    samples = assess_samples(
        pool(draws), lines, cycles, cancer_type=cancer_type, cutoff=cutoff, settings=settings
    )
    by_instant = {found.sample.drawn_at: found for found in samples}
    line_of = _line_lookup(lines)
    return [_tube(draw, by_instant.get(draw.drawn_at), line_of) for draw in _chronological(draws)]


def _chronological(draws: Iterable[DrawIn]) -> list[DrawIn]:
    return sorted(draws, key=lambda d: (d.drawn_at, *_tube_order(d)))


def _tube(
    draw: DrawIn, sample: SampleAssessment | None, line_of: Callable[[date], LineIn | None]
) -> DrawAssessment:
    status = _draw_status(draw.status)
    if sample is not None and status is DrawStatus.RESULTED:
        return DrawAssessment(
            draw=draw,
            evaluable=True,
            rate_per_7_5_ml=sample.rate_per_7_5_ml,
            category=sample.category,
            ci95=sample.ci95,
            flags=sample.flags,
            line_id=sample.line_id,
            sample=sample,
            p_at_or_above_cutoff=sample.p_at_or_above_cutoff,
        )
    line = line_of(draw.drawn_on)
    flags = () if sample is not None else _not_evaluable_flags(draw, status)
    return DrawAssessment(
        draw=draw,
        evaluable=False,
        rate_per_7_5_ml=None,
        category=None,
        ci95=None,
        flags=flags,
        line_id=line.id if line is not None else None,
        sample=sample,
    )


def _doxorubicin_dose_dates(lines: Sequence[LineIn], cycles: Sequence[CycleIn]) -> list[date]:
    doxorubicin_lines = {line.id for line in lines if line.contains_doxorubicin}
    return sorted(
        cycle.given_date
        for cycle in cycles
        if cycle.given_date is not None and cycle.line_id in doxorubicin_lines
    )


def _assess_sample(sample: Sample, series: _Series) -> SampleAssessment:
    line = series.line_of(sample.drawn_on)
    line_id = line.id if line is not None else None
    cutoff = series.cutoff
    category = p = None
    if cutoff is not None:
        category = categorize(sample.rate, cutoff, censored=sample.censored)
        p = p_at_or_above_cutoff(sample.count, sample.volume_ml, cutoff, censored=sample.censored)
    flags = [
        *_category_flags(sample, category, p, series),
        *_rise_flags(sample, series, line_id),
        *_volume_flags(sample),
    ]
    dose = _doxorubicin_dose(sample.drawn_on, series.dose_dates)
    if dose is not None:
        flags = [*_lowered(flags), _doxorubicin_flag(sample.drawn_on, dose)]
    assessment = SampleAssessment(
        sample=sample,
        rate_per_7_5_ml=float(sample.rate),
        category=category,
        ci95=poisson_ci95(sample.count, sample.volume_ml, censored=sample.censored),
        p_at_or_above_cutoff=p,
        flags=_ordered(Flag(f.code, f.severity, f.message, sample.key) for f in flags),
        line_id=line_id,
    )
    _remember(assessment, series)
    return assessment


def _remember(assessment: SampleAssessment, series: _Series) -> None:
    series.previous = assessment
    if assessment.sample.censored:
        return  # a lower bound is never a nadir
    nadir = series.nadirs.get(assessment.line_id)
    # "<=" so that on a tie the most recent sample becomes the nadir.
    if nadir is None or assessment.sample.rate <= nadir.sample.rate:
        series.nadirs[assessment.line_id] = assessment


def _rate_text(found: SampleAssessment) -> str:
    return _phrase(found.sample)


def _phrase(sample: Sample) -> str:
    """The sample's rate in words: "5 CTC/7.5 mL", "> 1000 CTC/7.5 mL".

    A zero says the blood actually analysed ("none detected in 4 mL"), never 7.5 mL
    for a count from less blood (specification sections 1 and 7).
    """
    if sample.count == 0 and not sample.censored:
        return counted_in_volume(0, sample.volume_ml)
    return count_phrase(float(sample.rate), censored=sample.censored)


def _not_evaluable_flags(draw: DrawIn, status: DrawStatus) -> tuple[Flag, ...]:
    if status not in NOT_EVALUABLE_STATUSES:
        return ()  # pending and cancelled tubes are simply not results yet / at all
    reason = "pre-analytic rejection" if status is DrawStatus.REJECTED else "analytic failure"
    message = (
        f"Not evaluable ({status.value}: {reason}) on {date_text(draw.drawn_on)}: "
        "no count, not a zero; a repeat draw is needed"
    )
    return (Flag(FlagCode.NOT_EVALUABLE, Severity.REVIEW, message, draw.id),)


def _doxorubicin_dose(drawn_on: date, dose_dates: list[date]) -> date | None:
    """The latest dose 1 to 6 days before the sample's local date, if any."""
    index = bisect_right(dose_dates, drawn_on - timedelta(days=DOXORUBICIN_FIRST_DAY))
    if index == 0:
        return None
    dose = dose_dates[index - 1]
    return dose if (drawn_on - dose).days <= DOXORUBICIN_LAST_DAY else None


def _lowered(flags: Iterable[Flag]) -> list[Flag]:
    """High flags lowered to review while the doxorubicin window holds, saying why."""
    return [
        Flag(
            flag.code,
            Severity.REVIEW,
            f"{flag.message}. Lowered from high to review: drawn within 6 days of a "
            "doxorubicin dose, which can make the count falsely high",
        )
        if flag.severity is Severity.HIGH
        else flag
        for flag in flags
    ]


def _doxorubicin_flag(drawn_on: date, dose: date) -> Flag:
    days = (drawn_on - dose).days
    return Flag(
        FlagCode.DOXORUBICIN_WINDOW,
        Severity.INFO,
        f"Drawn {days} day{'s' if days > 1 else ''} after a doxorubicin dose given on "
        f"{date_text(dose)}: doxorubicin can make the count falsely high "
        "(lab guidance: draw at least 7 days after the dose)",
    )


def _volume_flags(sample: Sample) -> list[Flag]:
    if all(_as_decimal(t.blood_volume_ml) == STANDARD_VOLUME_ML for t in sample.tubes):
        return []
    measured = counted_in_volume(sample.count, sample.volume_ml)
    if sample.censored:
        measured = f"more than {measured}"
    # A zero scales to nothing: "none detected in 4 mL" says all there is.
    zero = sample.count == 0 and not sample.censored
    scaled = "" if zero else f", scaled to {_phrase(sample)}"
    return [
        Flag(
            FlagCode.NON_STANDARD_VOLUME,
            Severity.INFO,
            f"Non-standard blood volume: {measured}{scaled}",
        )
    ]


def _category_flags(
    sample: Sample, category: Category | None, p: float | None, series: _Series
) -> list[Flag]:
    """At most one category flag: baseline, conversion either way, or persistence."""
    if category is None or p is None:
        return [_no_cutoff_flag(series.cancer_type)]
    previous = series.previous
    before = previous.category if previous is not None else None
    now = _phrase(sample)
    strong = (
        Severity.HIGH
        if is_clear(category, p, series.settings.clear_probability)
        else Severity.REVIEW
    )
    near = "" if strong is Severity.HIGH else _near_the_cutoff(p)
    cutoff = f"the cut-off of {series.cutoff} ({series.cancer_type})"
    if category is Category.FAVOURABLE:
        if before is not Category.UNFAVOURABLE:
            return []
        message = f"Converted to favourable: {now} is below {cutoff} ({_previously(previous)})"
        return [Flag(FlagCode.CONVERSION_TO_FAVOURABLE, Severity.INFO, message)]
    if before is None:
        message = f"Unfavourable at baseline: {now} is at or above {cutoff}{near}"
        return [Flag(FlagCode.BASELINE_UNFAVOURABLE, Severity.REVIEW, message)]
    if before is Category.FAVOURABLE:
        message = f"Converted to unfavourable: {now} ({_previously(previous)}){near}"
        return [Flag(FlagCode.CONVERSION_TO_UNFAVOURABLE, strong, message)]
    message = f"Still unfavourable: {now} ({_previously(previous)}){near}"
    return [Flag(FlagCode.PERSISTENT_UNFAVOURABLE, strong, message)]


def _near_the_cutoff(p: float) -> str:
    return (
        f"; near the cut-off: chance that the true count is at or above it about "
        f"{round(p * 100)}%. A repeat draw would settle it"
    )


def _previously(previous: SampleAssessment | None) -> str:
    assert previous is not None  # callers checked
    text = short_rate(previous.rate_per_7_5_ml, censored=previous.sample.censored)
    return f"previously {text} on {date_text(previous.sample.drawn_on)}"


def _no_cutoff_flag(cancer_type: str) -> Flag:
    named = f"cancer type '{cancer_type}'" if cancer_type else "a patient with no cancer type"
    return Flag(
        FlagCode.NO_CUTOFF,
        Severity.INFO,
        f"Cannot be classified as favourable or unfavourable: no CTC cut-off is set for {named}",
    )


# --- the rise test --------------------------------------------------------


def _rise_flags(sample: Sample, series: _Series, line_id: int | None) -> list[Flag]:
    """`rise_beyond_noise` against the previous evaluable sample or the line's nadir."""
    cv = series.settings.extra_poisson_cv
    beyond = "larger than counting noise" + (
        " and than the lab's replicate variation" if cv > 0 else ""
    )
    findings = []
    previous = series.previous
    if previous is not None:
        p = _rise_p_if_doubled(previous.sample, sample, cv)
        if p is not None and p < RISE_ALPHA_VS_PREVIOUS:
            findings.append(
                f"rose from {_rate_text(previous)} to {_phrase(sample)} "
                f"since the previous sample on {date_text(previous.sample.drawn_on)}: {beyond} "
                f"({format_p_value(p)})"
            )
    nadir = series.nadirs.get(line_id)
    # When the nadir is the previous sample, its stricter test cannot add anything;
    # and a falling count never rises from the nadir.
    if (
        nadir is not None
        and nadir is not previous
        and previous is not None
        and sample.rate >= previous.sample.rate
    ):
        p = _rise_p_if_doubled(nadir.sample, sample, cv)
        if p is not None and p < RISE_ALPHA_VS_NADIR:
            findings.append(
                f"rose from the nadir of {_group_name(line_id, series)} "
                f"({_rate_text(nadir)} on {date_text(nadir.sample.drawn_on)}) to "
                f"{_phrase(sample)}: {beyond} "
                f"({format_p_value(p)})"
            )
    if not findings:
        return []
    message = "; also ".join(findings)
    return [Flag(FlagCode.RISE_BEYOND_NOISE, Severity.REVIEW, message[0].upper() + message[1:])]


def _rise_p_if_doubled(earlier: Sample, later: Sample, cv: float) -> float | None:
    # A censored earlier sample is never compared against. The binomial test runs
    # only when the ratio already qualifies: the flag needs both, and it is cheaper.
    if earlier.censored:
        return None
    if earlier.rate == 0 and later.rate == 0:
        return None
    if later.rate < RISE_MIN_RATIO * earlier.rate:
        return None
    return rise_p_value(earlier.count, earlier.volume_ml, later.count, later.volume_ml, cv=cv)


def _group_name(line_id: int | None, series: _Series) -> str:
    if line_id is None:
        return "the samples before any therapy line"
    return f"therapy line {series.line_numbers[line_id]}"


# --- cycles ---------------------------------------------------------------


def pre_cycle_window(
    cycle: CycleIn, window_days: int = DEFAULT_PRE_CYCLE_WINDOW_DAYS
) -> tuple[date, date]:
    """[min(first planned day 1, day 1) - window_days, day 1], local dates inclusive.

    A delay keeps the original opening, so a draw taken for the original date counts.
    """
    if window_days < 0:
        raise ValueError(f"the pre-cycle window cannot be negative (got {window_days} days)")
    first = cycle.first_scheduled_date or cycle.scheduled_date
    return (min(first, cycle.scheduled_date) - timedelta(days=window_days), cycle.scheduled_date)


def last_day_to_draw(cycle: CycleIn) -> date:
    """The last day to draw for the result (1-5 days) to be back by day 1."""
    return cycle.scheduled_date - timedelta(days=RESULT_LEAD_DAYS)


def assess_cycle(
    cycle: CycleIn,
    assessments: Sequence[DrawAssessment],
    *,
    today: date,
    window_days: int = DEFAULT_PRE_CYCLE_WINDOW_DAYS,
) -> CycleAssessment:
    """The state and flags of a cycle on `today`, from the tubes in its pre-cycle window.

    `assessments` are the patient's tubes (from `assess_draws`). Upcoming and given
    cycles are evaluated; a cancelled one only shows what lies in its window.
    """
    window = pre_cycle_window(cycle, window_days)
    opens, day_1 = window
    in_window = [a for a in assessments if opens <= a.draw.drawn_on <= day_1]
    samples = _distinct_samples(a.sample for a in in_window if a.evaluable)
    owes = _owes(cycle)
    latest = samples[-1] if samples else None
    if latest is not None:
        flags = list(latest.flags)
        if owes:
            flags += _discordant_flags(latest, samples)
        first_tube = next(a for a in in_window if a.evaluable and a.sample is latest)
        return _cycle(cycle, PreCycleState.RESULT_IN_WINDOW, window, flags, first_tube)
    pending = [a.draw for a in in_window if a.draw.status == DrawStatus.PENDING]
    if pending:
        return _cycle(cycle, PreCycleState.RESULT_PENDING, window, [], None)
    if today < opens or not owes:
        return _cycle(cycle, PreCycleState.NOT_YET_DUE, window, [], None)
    unusable = [a.draw for a in in_window if a.draw.status in NOT_EVALUABLE_STATUSES]
    flags = _unusable_flags(cycle, unusable)
    if today <= day_1:
        return _cycle(cycle, PreCycleState.DRAW_DUE, window, flags, None)
    missing = Flag(
        FlagCode.MISSING_PRE_CYCLE_DRAW,
        Severity.REVIEW,
        f"No evaluable CTC result in the pre-cycle window of cycle {cycle.number} "
        f"({date_text(opens)} to {date_text(day_1)})",
    )
    return _cycle(cycle, PreCycleState.MISSING, window, [missing, *flags], None)


def _cycle(
    cycle: CycleIn,
    state: PreCycleState,
    window: tuple[date, date],
    flags: list[Flag],
    draw: DrawAssessment | None,
) -> CycleAssessment:
    if not flags:
        return CycleAssessment(cycle, state, window, (), draw, None)
    ordered = _ordered(flags)
    return CycleAssessment(cycle, state, window, ordered, draw, highest_severity(ordered))


def _distinct_samples(found: Iterable[SampleAssessment | None]) -> list[SampleAssessment]:
    """The samples of the window's tubes, each once, oldest first."""
    seen: dict[datetime, SampleAssessment] = {}
    for sample in found:
        if sample is not None:  # pragma: no branch - an evaluable tube always has its sample
            seen.setdefault(sample.sample.drawn_at, sample)
    return [seen[instant] for instant in sorted(seen)]


def _discordant_flags(latest: SampleAssessment, samples: list[SampleAssessment]) -> list[Flag]:
    if latest.category is None:
        return []
    other = [s for s in samples[:-1] if s.category not in (None, latest.category)]
    if not other:
        return []
    disagree = ", ".join(
        f"{short_rate(s.rate_per_7_5_ml, censored=s.sample.censored)} on "
        f"{date_text(s.sample.drawn_on)}"
        for s in [*other, latest]
    )
    return [
        Flag(
            FlagCode.DISCORDANT_IN_WINDOW,
            Severity.REVIEW,
            f"The samples in the window disagree: {disagree} (CTC/7.5 mL); "
            f"the latest is {latest.category.value}",
            latest.sample.key,
        )
    ]


def _unusable_flags(cycle: CycleIn, unusable: Sequence[DrawIn]) -> list[Flag]:
    if not unusable:
        return []
    listed = ", ".join(f"{d.status} on {date_text(d.drawn_on)}" for d in unusable)
    return [
        Flag(
            FlagCode.NOT_EVALUABLE,
            Severity.REVIEW,
            f"Not evaluable in the pre-cycle window ({listed}): "
            f"a repeat draw is needed before cycle {cycle.number}",
            unusable[-1].id,
        )
    ]


def state_message(assessment: CycleAssessment, tubes: Sequence[DrawAssessment] = ()) -> str:
    """What stands before the cycle, in words, for the states that are not flags.

    `draw_due` says the window and the last day to draw for the result to be back
    in time; `result_pending` since when (from the pending tubes in `tubes`).
    Empty for a result in the window and for a missing draw (its flag says it).
    """
    opens, day_1 = assessment.window
    window = f"{date_text(opens)} to {date_text(day_1)}"
    match assessment.state:
        case PreCycleState.NOT_YET_DUE:
            return f"Nothing due yet: the draw window opens {date_text(opens)}"
        case PreCycleState.DRAW_DUE:
            by = last_day_to_draw(assessment.cycle)
            return (
                f"Draw due: no CTC result yet in the window {window}; draw by {date_text(by)} "
                f"for the result to be back by day 1 ({date_text(day_1)}); a pre-dose draw on "
                "day 1 still counts"
            )
        case PreCycleState.RESULT_PENDING:
            pending = [
                t.draw.drawn_on
                for t in tubes
                if t.draw.status == DrawStatus.PENDING and opens <= t.draw.drawn_on <= day_1
            ]
            since = f" since {date_text(min(pending))}" if pending else ""
            return f"Result pending{since}"
    return ""


# --- acknowledgement and order -------------------------------------------


@dataclass(frozen=True)
class AcknowledgementIn:
    """What one acknowledgement covers: flags as (code, source sample) when it was made."""

    cycle_id: int | None  # None: an acknowledgement of a sample
    covers: frozenset[tuple[str, int | None]]


def flag_covered(
    flag: Flag, acknowledgements: Iterable[AcknowledgementIn], *, cycle_id: int | None = None
) -> bool:
    """Whether an acknowledgement covers this flag, as it is now.

    A flag is identified by its code and the sample (or tube) it is about, so
    a new sample's flags need their own acknowledgement. Checking a cycle's flags
    (`cycle_id`): its own flags (missing, discordant, not evaluable) are covered
    only by an acknowledgement of that cycle; its sample's flags by any
    acknowledgement that recorded them, of the sample or of a cycle.
    """
    own = cycle_id is not None and flag.code in CYCLE_OWN_FLAGS
    return any(
        (flag.code, flag.source) in ack.covers and (not own or ack.cycle_id == cycle_id)
        for ack in acknowledgements
    )


def acknowledged(
    flags: Iterable[Flag],
    acknowledgements: Iterable[AcknowledgementIn],
    *,
    cycle_id: int | None = None,
) -> bool:
    """Every high or review flag covered; False when there is none to acknowledge."""
    acks = list(acknowledgements)
    due = [f for f in flags if f.severity in NEEDS_REVIEW]
    return bool(due) and all(flag_covered(f, acks, cycle_id=cycle_id) for f in due)


def covers(flags: Iterable[Flag]) -> frozenset[tuple[str, int | None]]:
    """What acknowledging these flags now records."""
    return frozenset((f.code, f.source) for f in flags if f.severity in NEEDS_REVIEW)


def cycle_rank(assessment: CycleAssessment, is_acknowledged: bool) -> int:
    """The worklist's first sort key: unacknowledged high/review first, then by severity.

    Within each group: high 0, review 1, info 2, draw due 3, nothing 4; the
    acknowledged group follows the unacknowledged one (+ RANKS_PER_GROUP).
    """
    severity = assessment.severity
    if severity is not None:
        rank = SEVERITY_ORDER[severity]
    elif assessment.state is PreCycleState.DRAW_DUE:
        rank = RANK_DRAW_DUE
    else:
        rank = RANK_NONE
    waiting = assessment.needs_review and not is_acknowledged
    return rank if waiting else rank + RANKS_PER_GROUP


def worklist_sort_key(assessment: CycleAssessment, is_acknowledged: bool) -> tuple[int, date]:
    """Worklist order: `cycle_rank`, then day 1 (callers add the patient's names)."""
    return (cycle_rank(assessment, is_acknowledged), assessment.cycle.scheduled_date)


def phase_days(
    cycle: CycleIn, window_days: int = DEFAULT_PRE_CYCLE_WINDOW_DAYS
) -> tuple[date, date, date]:
    """One `today` in each phase of a cycle: before its window, in it, after day 1.

    A cycle's state changes only between these phases, so its rank on each of
    these days is its rank on every day of that phase (the worklist stores them).
    """
    opens, day_1 = pre_cycle_window(cycle, window_days)
    return (opens - timedelta(days=1), day_1, day_1 + timedelta(days=1))


def assess_cycle_phases(
    cycle: CycleIn,
    assessments: Sequence[DrawAssessment],
    window_days: int = DEFAULT_PRE_CYCLE_WINDOW_DAYS,
) -> tuple[CycleAssessment, CycleAssessment, CycleAssessment]:
    """`assess_cycle` on each of the cycle's `phase_days`, in their order.

    `assess_cycle` reads `today` only when the window holds no evaluable sample
    and no pending tube and the cycle owes a draw (upcoming or given); on the day
    before the window such a cycle is not yet due. Any other assessment on that
    day is its assessment on every day, and is then returned for all three (the
    same object): one assessment instead of three for most cycles.
    """
    before, inside, after = phase_days(cycle, window_days)
    first = assess_cycle(cycle, assessments, today=before, window_days=window_days)
    owes = _owes(cycle)
    if first.state is not PreCycleState.NOT_YET_DUE or not owes:
        return (first, first, first)
    return (
        first,
        assess_cycle(cycle, assessments, today=inside, window_days=window_days),
        assess_cycle(cycle, assessments, today=after, window_days=window_days),
    )


# --- results to review ----------------------------------------------------


def results_to_review(assessments: Sequence[DrawAssessment]) -> list[DrawAssessment]:
    """The tubes that stand for a result needing review: each sample's first tube with a
    high or review flag, and each lone not-evaluable tube, oldest first."""
    found = []
    for tube in assessments:
        if not tube.needs_review:
            continue
        if tube.sample is not None and tube.sample.sample.key != tube.draw.id:
            continue  # another tube of the sample stands for it
        found.append(tube)
    return found


# --- replicate variation --------------------------------------------------


def duplicate_pairs(samples: Iterable[Sample]) -> list[tuple[int, int]]:
    """Samples of exactly two uncensored tubes of equal volume: the clinic's duplicates."""
    pairs = []
    for sample in samples:
        if sample.censored or len(sample.tubes) != 2:
            continue
        a, b = sample.tubes
        if _as_decimal(a.blood_volume_ml) == _as_decimal(b.blood_volume_ml):
            pairs.append((a.ctc_count or 0, b.ctc_count or 0))
    return pairs
