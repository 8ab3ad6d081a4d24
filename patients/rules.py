"""Clinical rules for CTC counts: rates, categories, flags and pre-cycle checks.

The single source of truth is docs/clinical-rules.md (the specification); this
module implements it. Pure functions: no Django, no database, no clock. Callers
fetch the rows, convert them to the frozen dataclasses below (with each draw's
local date already computed in the clinic's time zone) and pass the cut-off
from settings. Nothing here recommends a treatment: flags prompt review.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from functools import lru_cache

from scipy.stats import binomtest, chi2

from patients.wording import count_phrase, counted_in_volume, format_rate, short_rate

STANDARD_VOLUME_ML = Decimal("7.5")
DEFAULT_PRE_CYCLE_WINDOW_DAYS = 7

# The rise test (spec section 3): a rise needs at least this rate ratio and
# a one-sided p below the level for the comparison it is made against.
RISE_MIN_RATIO = 2.0
RISE_ALPHA_VS_PREVIOUS = 0.05
RISE_ALPHA_VS_NADIR = 0.01

# A baseline drawn up to this many days before C1D1 belongs to the new line.
LINE_MEMBERSHIP_LEAD_DAYS = 14

# Doxorubicin window, in local days after the dose: day 0 is taken to be a
# pre-dose draw and day 7 is when lab guidance says to draw again.
DOXORUBICIN_FIRST_DAY = 1
DOXORUBICIN_LAST_DAY = 6


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


# Upcoming cycles (planned or delayed) get pre-cycle flags and make up the worklist.
# A tuple, in the enum's order: the worklist's partial index condition is built
# from it, and a set's order changes from run to run (and with it, the migration).
UPCOMING_CYCLE_STATUSES = (CycleStatus.PLANNED, CycleStatus.DELAYED)
NOT_EVALUABLE_STATUSES = frozenset({DrawStatus.REJECTED, DrawStatus.FAILED})


class FlagCode(StrEnum):
    """Flag codes in the specification's table order (the order within a severity)."""

    UNFAVOURABLE = "unfavourable"
    CONVERSION_TO_UNFAVOURABLE = "conversion_to_unfavourable"
    PERSISTENT_UNFAVOURABLE = "persistent_unfavourable"
    CONVERSION_TO_FAVOURABLE = "conversion_to_favourable"
    RISE_BEYOND_NOISE = "rise_beyond_noise"
    NON_STANDARD_VOLUME = "non_standard_volume"
    DOXORUBICIN_WINDOW = "doxorubicin_window"
    # Section 4 (cycles): listed before not_evaluable, which on a cycle explains it.
    MISSING_PRE_CYCLE_DRAW = "missing_pre_cycle_draw"
    NOT_EVALUABLE = "not_evaluable"
    # Not in the specification: our answer to "cannot be classified, say so".
    NO_CUTOFF = "no_cutoff"


FLAG_SEVERITY: dict[FlagCode, Severity] = {
    FlagCode.UNFAVOURABLE: Severity.REVIEW,
    FlagCode.CONVERSION_TO_UNFAVOURABLE: Severity.HIGH,
    FlagCode.PERSISTENT_UNFAVOURABLE: Severity.HIGH,
    FlagCode.CONVERSION_TO_FAVOURABLE: Severity.INFO,
    FlagCode.RISE_BEYOND_NOISE: Severity.REVIEW,
    FlagCode.NON_STANDARD_VOLUME: Severity.INFO,
    FlagCode.DOXORUBICIN_WINDOW: Severity.INFO,
    FlagCode.NOT_EVALUABLE: Severity.REVIEW,
    FlagCode.MISSING_PRE_CYCLE_DRAW: Severity.REVIEW,
    FlagCode.NO_CUTOFF: Severity.INFO,
}

_CODE_RANK: dict[str, int] = {code: rank for rank, code in enumerate(FlagCode)}


@dataclass(frozen=True)
class DrawIn:
    """One CTC draw as the rules see it.

    `drawn_at` is time-zone aware; `drawn_on` is its local date in the clinic's
    time zone, computed by the caller. `ctc_count` is read only when resulted.
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


@dataclass(frozen=True)
class DrawAssessment:
    draw: DrawIn
    evaluable: bool
    rate_per_7_5_ml: float | None  # None when not evaluable
    category: Category | None  # None when not evaluable or no cut-off
    ci95: tuple[float, float] | None  # per 7.5 mL; None when not evaluable
    flags: tuple[Flag, ...]  # most severe first
    line_id: int | None  # the line the draw belongs to; None = before every line


@dataclass(frozen=True)
class CycleAssessment:
    cycle: CycleIn
    flags: tuple[Flag, ...]  # most severe first; empty unless planned or delayed
    draw: DrawAssessment | None  # latest evaluable draw in the pre-cycle window
    severity: Severity | None  # highest severity among flags


# --- single numbers -------------------------------------------------------


def cutoff_for(cancer_type: str, cutoffs: Mapping[str, int]) -> int | None:
    """The cut-off (per 7.5 mL, inclusive) for a cancer type; None if it has none.

    The lookup is exact: an unknown or differently spelt type is not guessed at.
    """
    return cutoffs.get(cancer_type)


def rate_per_7_5_ml(count: int, blood_volume_ml: Decimal | float) -> float:
    """CTCs per 7.5 mL: count * 7.5 / blood_volume_ml.

    Computed in decimal arithmetic so that a rate exactly at a cut-off (for
    example 3 cells in 4.5 mL = 5) is not pushed below it by binary rounding.
    """
    if count < 0:
        raise ValueError(f"a CTC count cannot be negative (got {count})")
    volume = _as_decimal(blood_volume_ml)
    if volume <= 0:
        raise ValueError(f"blood volume must be positive (got {blood_volume_ml} mL)")
    return float(Decimal(count) * STANDARD_VOLUME_ML / volume)


def categorize(rate: float, cutoff: int) -> Category:
    """Unfavourable when rate >= cutoff: the cut-off itself is unfavourable."""
    return Category.UNFAVOURABLE if rate >= cutoff else Category.FAVOURABLE


def poisson_ci95(count: int, blood_volume_ml: Decimal | float) -> tuple[float, float]:
    """Exact (Garwood) 95% Poisson interval of the count, scaled to per 7.5 mL.

    0 cells in 7.5 mL gives (0, 3.69); 5 cells gives (1.62, 11.67).
    """
    scale = rate_per_7_5_ml(1, blood_volume_ml)
    lower, upper = _garwood_interval(count)
    return (lower * scale, upper * scale)


@lru_cache(maxsize=4096)
def _garwood_interval(count: int) -> tuple[float, float]:
    # Cached: counts repeat across draws and chi2.ppf costs tens of microseconds.
    lower = 0.0 if count == 0 else float(chi2.ppf(0.025, 2 * count)) / 2
    upper = float(chi2.ppf(0.975, 2 * count + 2)) / 2
    return (lower, upper)


def rise_p_value(x1: int, v1: Decimal | float, x2: int, v2: Decimal | float) -> float | None:
    """One-sided p that x2 cells in v2 mL exceed x1 cells in v1 mL by counting noise.

    The exact conditional test for two Poisson counts:
    P[Binomial(n, v2 / (v1 + v2)) >= x2] with n = x1 + x2. None when n == 0
    (no cells in either draw: there is nothing to test, and no rise).
    """
    n = x1 + x2
    if n == 0:
        return None
    return _binomial_upper_tail(x2, n, float(v2) / (float(v1) + float(v2)))


@lru_cache(maxsize=16384)
def _binomial_upper_tail(successes: int, trials: int, probability: float) -> float:
    # Cached: the same pairs of counts recur within and across patients.
    return float(binomtest(successes, trials, probability, alternative="greater").pvalue)


def rate_ratio(earlier_rate: float, later_rate: float) -> float | None:
    """later / earlier; infinite when earlier is 0 and later is not; None when both are 0."""
    if earlier_rate == 0:
        return math.inf if later_rate > 0 else None
    return later_rate / earlier_rate


def line_for(drawn_on: date, lines: Sequence[LineIn]) -> LineIn | None:
    """The therapy line a draw on local date `drawn_on` belongs to.

    The line with the latest start_date on or before drawn_on + 14 days (so a
    baseline up to 14 days before C1D1 belongs to the new line); on equal start
    dates, the higher line_number. None when the draw precedes every line.
    """
    return _line_lookup(lines)(drawn_on)


def _line_lookup(lines: Sequence[LineIn]) -> Callable[[date], LineIn | None]:
    # Sorted once so that each draw costs one binary search, not a scan.
    ordered = sorted(lines, key=lambda line: (line.start_date, line.line_number, line.id))
    starts = [line.start_date for line in ordered]
    lead = timedelta(days=LINE_MEMBERSHIP_LEAD_DAYS)

    def lookup(drawn_on: date) -> LineIn | None:
        index = bisect_right(starts, drawn_on + lead)
        return ordered[index - 1] if index else None

    return lookup


def highest_severity(flags: Iterable[Flag]) -> Severity | None:
    return min((flag.severity for flag in flags), key=SEVERITY_ORDER.__getitem__, default=None)


# The review rank of a cycle without flags (and of every cycle not upcoming).
REVIEW_RANK_NO_FLAGS = SEVERITY_ORDER[None]


def review_rank(assessment: CycleAssessment) -> int:
    """How urgently a cycle needs review: 0 high, 1 review, 2 info, 3 no flags.

    The worklist's first sort key. It is stored on each cycle so that the
    database can sort and page the worklist; it is computed here, from the
    same assessment whose flags the worklist shows, so the order and the flags
    cannot disagree. Acknowledgements do not lower it: an acknowledged flag
    stays a flag (docs/clinical-rules.md, the worklist). It depends on the draws,
    lines and cycles and on the settings (cut-offs, pre-cycle window, time
    zone), never on today's date: the rules use no clock.
    """
    return SEVERITY_ORDER[assessment.severity]


def worklist_sort_key(assessment: CycleAssessment) -> tuple[int, date, int, int]:
    """Worklist order: most severe first (high, review, info, none), then scheduled date."""
    cycle = assessment.cycle
    return (review_rank(assessment), cycle.scheduled_date, cycle.number, cycle.id)


# --- wording --------------------------------------------------------------


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


def _as_decimal(value: Decimal | float) -> Decimal:
    # repr() keeps a float's intended decimal value (7.1, not 7.0999...).
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def _flag(code: FlagCode, message: str) -> Flag:
    return Flag(code=code, severity=FLAG_SEVERITY[code], message=message)


def _ordered(flags: Iterable[Flag]) -> tuple[Flag, ...]:
    """Most severe first; within a severity, the specification's table order."""
    return tuple(
        sorted(flags, key=lambda flag: (SEVERITY_ORDER[flag.severity], _CODE_RANK[flag.code]))
    )


# --- draws ----------------------------------------------------------------


@dataclass
class _Series:
    """What assessing one draw needs to know about the patient's earlier draws."""

    cancer_type: str
    cutoff: int | None
    line_of: Callable[[date], LineIn | None]
    dose_dates: list[date]  # doxorubicin given dates, sorted
    previous: DrawAssessment | None = None  # previous evaluable draw, any line
    # Running minimum per line group (None = before every line), so the nadir
    # costs O(1) per draw instead of a scan of the group's history.
    nadirs: dict[int | None, DrawAssessment] = field(default_factory=dict)
    line_numbers: dict[int, int] = field(default_factory=dict)


def assess_draws(
    draws: Sequence[DrawIn],
    lines: Sequence[LineIn],
    cycles: Sequence[CycleIn],
    *,
    cancer_type: str,
    cutoff: int | None,
) -> list[DrawAssessment]:
    """Assess one patient's draws, oldest first (by drawn_at, then id); any input order.

    `cutoff` is per 7.5 mL and inclusive (from `cutoff_for`); None means the
    cancer type cannot be classified. Only resulted draws are evaluable; the
    others are skipped in every comparison and never read as a zero.
    """
    series = _Series(
        cancer_type=cancer_type,
        cutoff=cutoff,
        line_of=_line_lookup(lines),
        dose_dates=_doxorubicin_dose_dates(lines, cycles),
        line_numbers={line.id: line.line_number for line in lines},
    )
    return [_assess_draw(draw, series) for draw in sorted(draws, key=_chronological_key)]


def _chronological_key(draw: DrawIn) -> tuple[datetime, bool, int]:
    # Draws without an id (not yet saved) sort after saved ones at the same instant.
    return (draw.drawn_at, draw.id is None, draw.id or 0)


def _doxorubicin_dose_dates(lines: Sequence[LineIn], cycles: Sequence[CycleIn]) -> list[date]:
    doxorubicin_lines = {line.id for line in lines if line.contains_doxorubicin}
    return sorted(
        cycle.given_date
        for cycle in cycles
        if cycle.given_date is not None and cycle.line_id in doxorubicin_lines
    )


def _assess_draw(draw: DrawIn, series: _Series) -> DrawAssessment:
    status = DrawStatus(draw.status)  # an unknown status is an error, not a guess
    if draw.drawn_at.utcoffset() is None:
        raise ValueError(f"draw {draw.id}: drawn_at must be time-zone aware")
    line = series.line_of(draw.drawn_on)
    line_id = line.id if line is not None else None
    dose_flags = _doxorubicin_flags(draw, series.dose_dates)
    if status is not DrawStatus.RESULTED:
        flags = [*_not_evaluable_flags(draw, status), *dose_flags]
        return DrawAssessment(draw, False, None, None, None, _ordered(flags), line_id)

    count = _resulted_count(draw)
    rate = rate_per_7_5_ml(count, draw.blood_volume_ml)
    category = categorize(rate, series.cutoff) if series.cutoff is not None else None
    flags = [
        *_category_flags(rate, category, series),
        *_rise_flags(draw, count, rate, series, line_id),
        *_volume_flags(draw, count, rate),
        *dose_flags,
    ]
    assessment = DrawAssessment(
        draw=draw,
        evaluable=True,
        rate_per_7_5_ml=rate,
        category=category,
        ci95=poisson_ci95(count, draw.blood_volume_ml),
        flags=_ordered(flags),
        line_id=line_id,
    )
    _remember(assessment, series)
    return assessment


def _resulted_count(draw: DrawIn) -> int:
    if draw.ctc_count is None:
        raise ValueError(f"draw {draw.id} is resulted but has no CTC count")
    return draw.ctc_count


def _remember(assessment: DrawAssessment, series: _Series) -> None:
    series.previous = assessment
    nadir = series.nadirs.get(assessment.line_id)
    # "<=" so that on a tie the most recent draw becomes the nadir.
    if nadir is None or _rate(assessment) <= _rate(nadir):
        series.nadirs[assessment.line_id] = assessment


def _rate(assessment: DrawAssessment) -> float:
    assert assessment.rate_per_7_5_ml is not None  # only evaluable draws get here
    return assessment.rate_per_7_5_ml


def _not_evaluable_flags(draw: DrawIn, status: DrawStatus) -> list[Flag]:
    if status not in NOT_EVALUABLE_STATUSES:
        return []  # pending and cancelled draws are simply not results yet / at all
    reason = "pre-analytic rejection" if status is DrawStatus.REJECTED else "analytic failure"
    return [
        _flag(
            FlagCode.NOT_EVALUABLE,
            f"Not evaluable ({status.value}: {reason}) on {draw.drawn_on}: "
            "no count, not a zero; a repeat draw is needed",
        )
    ]


def _doxorubicin_flags(draw: DrawIn, dose_dates: list[date]) -> list[Flag]:
    # The latest dose on or before the day before the draw; flag if within 6 days.
    index = bisect_right(dose_dates, draw.drawn_on - timedelta(days=DOXORUBICIN_FIRST_DAY))
    if index == 0:
        return []
    dose = dose_dates[index - 1]
    days = (draw.drawn_on - dose).days
    if days > DOXORUBICIN_LAST_DAY:
        return []
    return [
        _flag(
            FlagCode.DOXORUBICIN_WINDOW,
            f"Drawn {days} day{'s' if days > 1 else ''} after a doxorubicin dose "
            f"given on {dose}: interpret with caution (lab guidance: wait at least 7 days)",
        )
    ]


def _volume_flags(draw: DrawIn, count: int, rate: float) -> list[Flag]:
    if _as_decimal(draw.blood_volume_ml) == STANDARD_VOLUME_ML:
        return []
    return [
        _flag(
            FlagCode.NON_STANDARD_VOLUME,
            f"Non-standard blood volume: {counted_in_volume(count, draw.blood_volume_ml)}, "
            f"scaled to {count_phrase(rate)}; the category is indicative only",
        )
    ]


def _category_flags(rate: float, category: Category | None, series: _Series) -> list[Flag]:
    if series.cutoff is None:
        return [_no_cutoff_flag(series.cancer_type)]
    previous = series.previous
    before = previous.category if previous is not None else None
    if category is Category.FAVOURABLE:
        if before is not Category.UNFAVOURABLE:
            return []
        message = (
            f"Converted to favourable: {count_phrase(rate)} is below the cut-off of "
            f"{series.cutoff} ({series.cancer_type}); {_previously(previous)}"
        )
        return [_flag(FlagCode.CONVERSION_TO_FAVOURABLE, message)]
    flags = [
        _flag(
            FlagCode.UNFAVOURABLE,
            f"Unfavourable: {count_phrase(rate)} is at or above the cut-off of "
            f"{series.cutoff} ({series.cancer_type})",
        )
    ]
    if before is Category.FAVOURABLE:
        message = f"Converted to unfavourable: {count_phrase(rate)}; {_previously(previous)}"
        flags.append(_flag(FlagCode.CONVERSION_TO_UNFAVOURABLE, message))
    elif before is Category.UNFAVOURABLE:
        message = f"Still unfavourable: {count_phrase(rate)}; {_previously(previous)}"
        flags.append(_flag(FlagCode.PERSISTENT_UNFAVOURABLE, message))
    return flags


def _previously(previous: DrawAssessment | None) -> str:
    assert previous is not None and previous.category is not None  # callers checked
    return (
        f"previously {previous.category.value} ({count_phrase(_rate(previous))}) "
        f"on {previous.draw.drawn_on}"
    )


def _no_cutoff_flag(cancer_type: str) -> Flag:
    named = f"cancer type '{cancer_type}'" if cancer_type else "a patient with no cancer type"
    return _flag(
        FlagCode.NO_CUTOFF,
        f"Cannot be classified as favourable or unfavourable: no CTC cut-off is set for {named}",
    )


# --- the rise test --------------------------------------------------------


def _rise_flags(
    draw: DrawIn, count: int, rate: float, series: _Series, line_id: int | None
) -> list[Flag]:
    """`rise_beyond_noise` against the previous evaluable draw or the line's nadir."""
    findings = []
    previous = series.previous
    if previous is not None:
        p = _rise_p_if_doubled(previous, draw, count, rate)
        if p is not None and p < RISE_ALPHA_VS_PREVIOUS:
            findings.append(
                f"rose from {short_rate(_rate(previous))} to {format_rate(rate)} "
                f"CTC/7.5 mL since the previous draw on {previous.draw.drawn_on}: "
                f"larger than counting noise ({format_p_value(p)})"
            )
    nadir = series.nadirs.get(line_id)
    # When the nadir is the previous draw, its stricter test cannot add anything.
    if nadir is not None and nadir is not previous:
        p = _rise_p_if_doubled(nadir, draw, count, rate)
        if p is not None and p < RISE_ALPHA_VS_NADIR:
            findings.append(
                f"rose from the nadir of {_group_name(line_id, series)} "
                f"({count_phrase(_rate(nadir))} on {nadir.draw.drawn_on}) to "
                f"{count_phrase(rate)}: larger than counting noise ({format_p_value(p)})"
            )
    if not findings:
        return []
    message = "; also ".join(findings)
    return [_flag(FlagCode.RISE_BEYOND_NOISE, message[0].upper() + message[1:])]


def _rise_p_if_doubled(
    earlier: DrawAssessment, draw: DrawIn, count: int, rate: float
) -> float | None:
    # The binomial test runs only when the ratio already qualifies: the flag
    # needs both, and the ratio is far cheaper.
    ratio = rate_ratio(_rate(earlier), rate)
    if ratio is None or ratio < RISE_MIN_RATIO:
        return None
    earlier_count = earlier.draw.ctc_count
    assert earlier_count is not None  # evaluable draws always carry a count
    return rise_p_value(
        earlier_count, float(earlier.draw.blood_volume_ml), count, float(draw.blood_volume_ml)
    )


def _group_name(line_id: int | None, series: _Series) -> str:
    if line_id is None:
        return "the draws before any therapy line"
    return f"therapy line {series.line_numbers[line_id]}"


# --- cycles ---------------------------------------------------------------


def assess_cycle(
    cycle: CycleIn,
    assessments: Sequence[DrawAssessment],
    *,
    window_days: int = DEFAULT_PRE_CYCLE_WINDOW_DAYS,
) -> CycleAssessment:
    """Flags for a cycle from the draws in its pre-cycle window.

    The window is the local dates [scheduled_date - window_days, scheduled_date],
    both ends inclusive. Only upcoming cycles (planned or delayed) get flags:
    those of the latest evaluable draw in the window, or else
    `missing_pre_cycle_draw` (plus `not_evaluable` if a rejected or failed draw
    is in the window). `draw` is filled for every status.
    """
    if window_days < 0:
        raise ValueError(f"the pre-cycle window cannot be negative (got {window_days} days)")
    first_day = cycle.scheduled_date - timedelta(days=window_days)
    in_window = [a for a in assessments if first_day <= a.draw.drawn_on <= cycle.scheduled_date]
    latest = max(
        (a for a in in_window if a.evaluable),
        key=lambda a: _chronological_key(a.draw),
        default=None,
    )
    if CycleStatus(cycle.status) not in UPCOMING_CYCLE_STATUSES:
        return CycleAssessment(cycle=cycle, flags=(), draw=latest, severity=None)
    flags = latest.flags if latest is not None else _missing_draw_flags(cycle, in_window, first_day)
    return CycleAssessment(cycle=cycle, flags=flags, draw=latest, severity=highest_severity(flags))


def _missing_draw_flags(
    cycle: CycleIn, in_window: Sequence[DrawAssessment], first_day: date
) -> tuple[Flag, ...]:
    in_order = sorted((a.draw for a in in_window), key=_chronological_key)
    pending = [d.drawn_on.isoformat() for d in in_order if d.status == DrawStatus.PENDING]
    unusable = [d for d in in_order if d.status in NOT_EVALUABLE_STATUSES]
    message = (
        f"No evaluable CTC draw from {first_day} to {cycle.scheduled_date} "
        f"(pre-cycle window of cycle {cycle.number})"
    )
    if pending:
        message += f"; result still pending for the draw of {', '.join(pending)}"
    flags = [_flag(FlagCode.MISSING_PRE_CYCLE_DRAW, message)]
    if unusable:
        listed = ", ".join(f"{d.status} on {d.drawn_on}" for d in unusable)
        flags.append(
            _flag(
                FlagCode.NOT_EVALUABLE,
                f"Not evaluable in the pre-cycle window ({listed}): "
                f"a repeat draw is needed before cycle {cycle.number}",
            )
        )
    return _ordered(flags)
