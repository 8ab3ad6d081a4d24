"""An independent reference implementation of docs/clinical-rules.md (version 2), sections 1-5.

Written from the specification alone, for differential testing against the production rules.
It imports nothing from the project and nothing from Django. One entry point,
`reference_assess(case) -> dict`, with plain JSON-like input and output (see its docstring).

Readings of the specification (where it is silent or ambiguous; compare with production):

R1  Same `drawn_at` means the same instant: tubes are pooled when their aware datetimes are
    equal (so "09:00+00:00" and "10:00+01:00" are one venepuncture).
R2  Rates and the cut-off are compared exactly (rational arithmetic on the decimal volume and
    the cut-off), so 3 cells in 4.5 mL is exactly 5 per 7.5 mL and unfavourable at cut-off 5;
    the rate ratio ">= 2" is also exact (10 -> 20 has ratio 2 and is flagged).
R3  A censored sample is always unfavourable (section 2), even when pooling it with another
    tube brings the rate of the summed bound below the cut-off. Its p_at_or_above_cutoff is
    1.0, so it is always "clear": a censored conversion or persistence is high.
R4  A cancer type with no cut-off: rate and ci95 are still given (they need no cut-off), but
    category, p_at_or_above_cutoff and the category flag are None / absent, censored included
    ("never guess"). Flags that need no cut-off (rise_beyond_noise, non_standard_volume,
    doxorubicin_window) are still raised. No code exists for "cannot be classified", so none is
    invented; no cycle is discordant (there are no categories).
R5  Clarity boundaries are inclusive and compared as the decimals the probabilities print as,
    so p = 0.90 is clear for an unfavourable sample and p = 0.10 is clear for a favourable one
    at CTC_CLEAR_PROBABILITY = 0.90 (a plain float `p <= 1 - 0.9` would refuse 0.10).
R6  Severity of `baseline_unfavourable` is review whether or not the sample is clear.
R7  The doxorubicin window uses the `given_date` of every cycle that has one (whatever its
    status) on a line with `contains_doxorubicin`; day 0 (the dose day) is not in the window,
    days 1 to 6 are (local date of the draw minus given_date). Lowering applies to every high
    flag of the sample (in practice the conversion / persistence flag).
R8  The "current therapy line" of the nadir test is the line of the sample being tested (by
    the +14-day rule), not the line current on `today`. Lines with the same start_date: the
    one with the larger id wins. Samples before every line form one group (line None).
R9  The nadir is taken over the earlier evaluable, uncensored samples of that line (rates
    compared exactly, ties to the most recent); it may be the previous sample itself. The
    "not below the previous" condition compares rates (a censored previous sample counts
    with the rate of its bound). With no earlier uncensored sample in the line there is no
    nadir comparison.
R10 The rise p-value: n = 0 gives no rise; when cv > 0 the comparison's p is
    max(exact binomial p, 1 - Phi(z)); when cv = 0 the exact test alone. A censored later
    sample enters both tests with its bound as the count.
R11 A non-evaluable tube beside an evaluable sample (same instant) reports that sample's tube
    ids in "sample", evaluable False, and no rate / category / interval / probability / flags
    (those belong to the sample, which the tube is not part of); needs_review False.
R12 A lone rejected or failed tube gets `not_evaluable` (review) even when a pending tube was
    drawn at the same instant (the spec says "no evaluable tube at the same time"; pending is
    not evaluable). A pending or cancelled tube with no evaluable tube beside it gets no flag
    and "sample" None: pending is shown as result_pending on a cycle and is not yet a result;
    cancelled tubes were never analysed and need no repeat draw by themselves.
R13 Cycles: day 1 is `scheduled_date` (also for given cycles; `given_date` does not move the
    window). A sample is in the window when its local date is in [from, to], inclusive; any
    draw on day 1 counts (the time of the dose is not recorded). The window uses
    min(first_scheduled_date, scheduled_date), so a delay keeps the original opening and a
    cycle brought forward opens earlier.
R14 `discordant_in_window`: the window holds evaluable samples of both categories (i.e. some
    sample has the category other than the latest one's).
R15 `result_pending` (no evaluable sample, a pending tube in the window) has no flag at all:
    not even `not_evaluable` for a rejected tube beside the pending one in the window (the
    rejected tube still carries its own `not_evaluable` as a result to review).
    `not_evaluable` on a cycle is raised only in the draw_due and missing states, never in
    not_yet_due.
R16 Cancelled cycles are neither upcoming nor given, so the spec does not evaluate them and
    nothing is owed for them: they get their window and show what lies in it
    (result_in_window with the latest sample's flags, or result_pending), but never a flag of
    their own (no discordant_in_window, missing_pre_cycle_draw, not_evaluable) and never
    draw_due; with nothing in the window their state is not_yet_due ("nothing due") and
    most_severe "none". They are never on the worklist.
R17 most_severe: the highest severity among the cycle's flags (high > review > info); with no
    flag, "draw_due" when the state is draw_due, else "none".
R18 Worklist: every planned or delayed cycle (the date range is the caller's), ordered by
    most_severe rank (high, review, info, draw_due, none: the unacknowledged high/review group
    comes first by construction), then scheduled_date, then cycle id (standing in for names).
R19 Replicate pairs: samples with exactly two evaluable tubes, both uncensored, of equal
    volume (non-evaluable tubes beside them do not matter). cv is None with no pair or when
    sum(a * b) = 0 (the estimate is undefined), else sqrt(max(0, ...)).
R20 Inputs the specification refuses at entry raise ValueError here, so that a differential
    test cannot silently compare them: a volume outside 1.0-10.0 mL, a resulted tube without a
    non-negative integer count, a censored tube whose bound is below the cut-off per 7.5 mL
    (checked per tube, on the tube's own volume; not checkable without a cut-off), and a
    qualifier on a tube that is not resulted is ignored.
R21 Flags are listed as sorted [code, severity]; a tube with the `not_evaluable` flag needs
    review; a tube of a sample needs review when the sample has a high or review flag.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from scipy.special import gammaincc
from scipy.stats import binomtest, chi2, norm

STANDARD_VOLUME = Decimal("7.5")
PER_VOLUME = Fraction(15, 2)
NON_EVALUABLE_WITH_REPEAT = frozenset({"rejected", "failed"})
UPCOMING = frozenset({"planned", "delayed"})
RANK = {"high": 0, "review": 1, "info": 2, "draw_due": 3, "none": 4}
REVIEW_SEVERITIES = frozenset({"high", "review"})

Flag = tuple[str, str]


@dataclass(frozen=True)
class Tube:
    id: int
    drawn_at: dt.datetime
    local_date: dt.date
    volume: Decimal
    status: str
    count: int | None
    censored: bool


@dataclass(frozen=True)
class Sample:
    """The evaluable tubes of one venepuncture, pooled: count and volume are sums."""

    drawn_at: dt.datetime
    local_date: dt.date
    tube_ids: tuple[int, ...]
    volumes: tuple[Decimal, ...]
    count: int  # the bound when censored
    volume: Decimal
    censored: bool

    @property
    def rate(self) -> Fraction:
        return Fraction(self.count) * PER_VOLUME / Fraction(self.volume)


@dataclass(frozen=True)
class Line:
    id: int
    start_date: dt.date
    contains_doxorubicin: bool


@dataclass(frozen=True)
class Cycle:
    id: int
    line_id: int
    number: int
    scheduled_date: dt.date
    first_scheduled_date: dt.date
    given_date: dt.date | None
    status: str


@dataclass(frozen=True)
class Assessed:
    sample: Sample
    category: str | None
    p_at_or_above: float | None
    flags: tuple[Flag, ...]


# --- parsing ---------------------------------------------------------------------------------


def _date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        raise TypeError("a date, not a datetime, is expected")
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _tube(raw: dict[str, Any], zone: ZoneInfo) -> Tube:
    drawn = raw["drawn_at"]
    drawn_at = drawn if isinstance(drawn, dt.datetime) else dt.datetime.fromisoformat(drawn)
    if drawn_at.tzinfo is None:
        raise ValueError(f"tube {raw['id']}: drawn_at must be time-zone aware")
    return Tube(
        id=raw["id"],
        drawn_at=drawn_at.astimezone(dt.UTC),
        local_date=drawn_at.astimezone(zone).date(),
        volume=Decimal(str(raw["volume_ml"])),
        status=raw["status"],
        count=raw.get("count"),
        censored=raw["status"] == "resulted" and raw.get("qualifier", "") == ">",
    )


def _line(raw: dict[str, Any]) -> Line:
    return Line(raw["id"], _date(raw["start_date"]), bool(raw["contains_doxorubicin"]))


def _cycle(raw: dict[str, Any]) -> Cycle:
    given = raw.get("given_date")
    return Cycle(
        id=raw["id"],
        line_id=raw["line_id"],
        number=raw["number"],
        scheduled_date=_date(raw["scheduled_date"]),
        first_scheduled_date=_date(raw["first_scheduled_date"]),
        given_date=None if given is None else _date(given),
        status=raw["status"],
    )


def validate(tubes: Iterable[Tube], cutoff: Fraction | None) -> None:
    """Refuse what the specification refuses at entry (reading R20)."""
    for tube in tubes:
        if not Decimal("1.0") <= tube.volume <= Decimal("10.0"):
            raise ValueError(f"tube {tube.id}: volume must be from 1.0 to 10.0 mL")
        if tube.status != "resulted":
            continue
        if not isinstance(tube.count, int) or isinstance(tube.count, bool) or tube.count < 0:
            raise ValueError(f"tube {tube.id}: a resulted tube needs a non-negative count")
        bound_rate = Fraction(tube.count) * PER_VOLUME / Fraction(tube.volume)
        if tube.censored and cutoff is not None and bound_rate < cutoff:
            raise ValueError(f"tube {tube.id}: a lower bound below the cut-off is refused")


# --- samples (section 2) ---------------------------------------------------------------------


def build_samples(tubes: Iterable[Tube]) -> list[Sample]:
    """Pool the resulted tubes of each instant into one sample, oldest first."""
    by_instant: dict[dt.datetime, list[Tube]] = {}
    for tube in tubes:
        if tube.status == "resulted":
            by_instant.setdefault(tube.drawn_at, []).append(tube)
    return [_pool(group) for _, group in sorted(by_instant.items())]


def _pool(group: list[Tube]) -> Sample:
    group = sorted(group, key=lambda t: t.id)
    return Sample(
        drawn_at=group[0].drawn_at,
        local_date=group[0].local_date,
        tube_ids=tuple(t.id for t in group),
        volumes=tuple(t.volume for t in group),
        count=sum(t.count or 0 for t in group),
        volume=sum((t.volume for t in group), Decimal(0)),
        censored=any(t.censored for t in group),
    )


def category_of(sample: Sample, cutoff: Fraction | None) -> str | None:
    """Inclusive cut-off: rate >= cut-off is unfavourable; a censored sample always is."""
    if cutoff is None:
        return None
    if sample.censored or sample.rate >= cutoff:
        return "unfavourable"
    return "favourable"


def garwood_ci(count: int, volume: Decimal) -> tuple[float, float]:
    """Exact (Garwood) 95% Poisson interval of a count, scaled to per 7.5 mL."""
    scale = 7.5 / float(volume)
    low = 0.0 if count == 0 else float(chi2.ppf(0.025, 2 * count)) / 2
    high = float(chi2.ppf(0.975, 2 * count + 2)) / 2
    return low * scale, high * scale


def ci95_of(sample: Sample) -> list[float | None]:
    low, high = garwood_ci(sample.count, sample.volume)
    return [low, None] if sample.censored else [low, high]


def p_at_or_above_cutoff(count: int, volume: Decimal, cutoff: Fraction) -> float:
    """Q(x + 0.5, cutoff * v / 7.5): Jeffreys-prior chance the true rate is >= the cut-off."""
    return float(gammaincc(count + 0.5, float(cutoff) * float(volume) / 7.5))


def sample_p(sample: Sample, cutoff: Fraction | None) -> float | None:
    if cutoff is None:
        return None
    if sample.censored:
        return 1.0
    return p_at_or_above_cutoff(sample.count, sample.volume, cutoff)


def is_clear(category: str, p: float, clear_probability: float) -> bool:
    """Inclusive at both ends, compared as printed decimals (reading R5)."""
    p_dec, clear_dec = Decimal(repr(float(p))), Decimal(repr(float(clear_probability)))
    if category == "unfavourable":
        return p_dec >= clear_dec
    return p_dec <= 1 - clear_dec


# --- flags on a sample (section 3) -----------------------------------------------------------


def category_flag(previous: str | None, current: str | None, clear: bool) -> Flag | None:
    """The one category flag; `previous` is None for the patient's first evaluable sample."""
    strong = "high" if clear else "review"
    if current is None:
        return None
    if previous is None:
        return ("baseline_unfavourable", "review") if current == "unfavourable" else None
    if previous == "favourable" and current == "unfavourable":
        return ("conversion_to_unfavourable", strong)
    if previous == "unfavourable" and current == "unfavourable":
        return ("persistent_unfavourable", strong)
    if previous == "unfavourable" and current == "favourable":
        return ("conversion_to_favourable", "info")
    return None


def rise_p_value(x1: int, v1: Decimal, x2: int, v2: Decimal, cv: float) -> float | None:
    """One-sided p of the rise x1 in v1 mL -> x2 in v2 mL; None when n = 0 (no rise)."""
    n = x1 + x2
    if n == 0:
        return None
    share = float(v2) / (float(v1) + float(v2))
    p = float(binomtest(x2, n, share, alternative="greater").pvalue)
    if cv > 0:
        p = max(p, extra_poisson_p(x1, v1, x2, v2, cv))
    return p


def extra_poisson_p(x1: int, v1: Decimal, x2: int, v2: Decimal, cv: float) -> float:
    r1 = (x1 + 0.5) * 7.5 / float(v1)
    r2 = (x2 + 0.5) * 7.5 / float(v2)
    z = (math.log(r2) - math.log(r1)) / math.sqrt(1 / (x1 + 0.5) + 1 / (x2 + 0.5) + 2 * cv**2)
    return float(norm.sf(z))


def ratio_at_least_two(earlier: Sample, later: Sample) -> bool:
    """rate(later) / rate(earlier) >= 2, infinite when the earlier rate is 0 and later is not."""
    if earlier.rate == 0:
        return later.rate > 0
    return later.rate >= 2 * earlier.rate


def _rises(earlier: Sample, later: Sample, cv: float, alpha: float) -> bool:
    if earlier.censored:
        return False
    p = rise_p_value(earlier.count, earlier.volume, later.count, later.volume, cv)
    return p is not None and p < alpha and ratio_at_least_two(earlier, later)


def line_of(local_date: dt.date, lines: Sequence[Line]) -> int | None:
    """The line with the latest start_date on or before the sample's date + 14 days."""
    horizon = local_date + dt.timedelta(days=14)
    candidates = [line for line in lines if line.start_date <= horizon]
    if not candidates:
        return None
    return max(candidates, key=lambda line: (line.start_date, line.id)).id


def nadir_of(earlier: Sequence[Sample]) -> Sample | None:
    """Lowest-rate uncensored sample (ties: the most recent); `earlier` is oldest first."""
    best: Sample | None = None
    for sample in earlier:
        if not sample.censored and (best is None or sample.rate <= best.rate):
            best = sample
    return best


def rise_beyond_noise(
    index: int, samples: Sequence[Sample], lines: Sequence[Line], cv: float
) -> bool:
    if index == 0:
        return False
    current, previous = samples[index], samples[index - 1]
    if _rises(previous, current, cv, 0.05):
        return True
    line = line_of(current.local_date, lines)
    same_line = [s for s in samples[:index] if line_of(s.local_date, lines) == line]
    nadir = nadir_of(same_line)
    if nadir is None or current.rate < previous.rate:
        return False
    return _rises(nadir, current, cv, 0.01)


def in_doxorubicin_window(
    local_date: dt.date, cycles: Sequence[Cycle], lines: Sequence[Line]
) -> bool:
    doxorubicin_lines = {line.id for line in lines if line.contains_doxorubicin}
    for cycle in cycles:
        if cycle.given_date is None or cycle.line_id not in doxorubicin_lines:
            continue
        if 1 <= (local_date - cycle.given_date).days <= 6:
            return True
    return False


def assess_samples(
    samples: Sequence[Sample],
    cutoff: Fraction | None,
    settings: dict[str, Any],
    lines: Sequence[Line],
    cycles: Sequence[Cycle],
) -> list[Assessed]:
    categories = [category_of(s, cutoff) for s in samples]
    cv = float(settings.get("extra_poisson_cv", 0.0))
    clear_probability = float(settings.get("clear_probability", 0.90))
    assessed = []
    for i, sample in enumerate(samples):
        p = sample_p(sample, cutoff)
        category = categories[i]
        clear = category is not None and p is not None and is_clear(category, p, clear_probability)
        previous = categories[i - 1] if i else None
        flags: list[Flag] = []
        cat_flag = category_flag(previous, category, clear)
        if cat_flag:
            flags.append(cat_flag)
        if rise_beyond_noise(i, samples, lines, cv):
            flags.append(("rise_beyond_noise", "review"))
        if any(v != STANDARD_VOLUME for v in sample.volumes):
            flags.append(("non_standard_volume", "info"))
        if in_doxorubicin_window(sample.local_date, cycles, lines):
            flags = [(code, "review" if sev == "high" else sev) for code, sev in flags]
            flags.append(("doxorubicin_window", "info"))
        assessed.append(Assessed(sample, category, p, tuple(sorted(flags))))
    return assessed


# --- tubes output ----------------------------------------------------------------------------


def _flag_list(flags: Iterable[Flag]) -> list[list[str]]:
    return [[code, severity] for code, severity in sorted(flags)]


def _needs_review(flags: Iterable[Flag]) -> bool:
    return any(severity in REVIEW_SEVERITIES for _, severity in flags)


def _tube_of_sample(item: Assessed) -> dict[str, Any]:
    sample = item.sample
    return {
        "sample": sorted(sample.tube_ids),
        "evaluable": True,
        "rate_per_7_5_ml": float(sample.rate),
        "censored": sample.censored,
        "category": item.category,
        "ci95": ci95_of(sample),
        "p_at_or_above_cutoff": item.p_at_or_above,
        "flags": _flag_list(item.flags),
        "needs_review": _needs_review(item.flags),
    }


def _tube_not_evaluable(tube: Tube, beside: Assessed | None) -> dict[str, Any]:
    flags: list[Flag] = []
    if beside is None and tube.status in NON_EVALUABLE_WITH_REPEAT:
        flags.append(("not_evaluable", "review"))
    return {
        "sample": None if beside is None else sorted(beside.sample.tube_ids),
        "evaluable": False,
        "rate_per_7_5_ml": None,
        "censored": False,
        "category": None,
        "ci95": None,
        "p_at_or_above_cutoff": None,
        "flags": _flag_list(flags),
        "needs_review": _needs_review(flags),
    }


def tubes_output(tubes: Sequence[Tube], assessed: Sequence[Assessed]) -> dict[int, Any]:
    by_instant = {item.sample.drawn_at: item for item in assessed}
    out: dict[int, Any] = {}
    for tube in sorted(tubes, key=lambda t: t.id):
        item = by_instant.get(tube.drawn_at)
        if tube.status == "resulted" and item is not None:
            out[tube.id] = _tube_of_sample(item)
        else:
            out[tube.id] = _tube_not_evaluable(tube, item)
    return out


# --- cycles (section 4) ----------------------------------------------------------------------


def pre_cycle_window(cycle: Cycle, days: int) -> tuple[dt.date, dt.date]:
    opens = min(cycle.first_scheduled_date, cycle.scheduled_date) - dt.timedelta(days=days)
    return opens, cycle.scheduled_date


def most_severe(flags: Iterable[Flag], state: str) -> str:
    severities = [severity for _, severity in flags]
    if severities:
        return min(severities, key=RANK.__getitem__)
    return "draw_due" if state == "draw_due" else "none"


def _result_in_window(in_window: Sequence[Assessed], own_flags: bool) -> list[Flag]:
    latest = in_window[-1]
    flags = list(latest.flags)
    others = {item.category for item in in_window[:-1]} - {latest.category, None}
    if own_flags and latest.category is not None and others:
        flags.append(("discordant_in_window", "review"))
    return flags


def cycle_state(
    cycle: Cycle,
    window: tuple[dt.date, dt.date],
    assessed: Sequence[Assessed],
    tubes: Sequence[Tube],
    today: dt.date,
) -> tuple[str, list[Flag]]:
    opens, day_1 = window
    own_flags = cycle.status != "cancelled"  # reading R16
    in_window = [a for a in assessed if opens <= a.sample.local_date <= day_1]
    if in_window:
        return "result_in_window", _result_in_window(in_window, own_flags)
    window_tubes = [t for t in tubes if opens <= t.local_date <= day_1]
    if any(t.status == "pending" for t in window_tubes):
        return "result_pending", []
    if today < opens or not own_flags:
        return "not_yet_due", []
    flags: list[Flag] = []
    if any(t.status in NON_EVALUABLE_WITH_REPEAT for t in window_tubes):
        flags.append(("not_evaluable", "review"))
    if today <= day_1:
        return "draw_due", flags
    return "missing", [("missing_pre_cycle_draw", "review"), *flags]


def cycles_output(
    cycles: Sequence[Cycle],
    assessed: Sequence[Assessed],
    tubes: Sequence[Tube],
    today: dt.date,
    days: int,
) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for cycle in sorted(cycles, key=lambda c: c.id):
        window = pre_cycle_window(cycle, days)
        state, flags = cycle_state(cycle, window, assessed, tubes, today)
        out[cycle.id] = {
            "window": [window[0].isoformat(), window[1].isoformat()],
            "state": state,
            "flags": _flag_list(flags),
            "most_severe": most_severe(flags, state),
        }
    return out


def worklist_order(cycles: Sequence[Cycle], evaluated: dict[int, Any]) -> list[int]:
    upcoming = [c for c in cycles if c.status in UPCOMING]
    upcoming.sort(key=lambda c: (RANK[evaluated[c.id]["most_severe"]], c.scheduled_date, c.id))
    return [c.id for c in upcoming]


# --- replicate variation ---------------------------------------------------------------------


def replicate_cv(samples: Sequence[Sample], tubes: Sequence[Tube]) -> dict[str, Any]:
    """Method-of-moments cv over duplicate pairs (two uncensored tubes of equal volume)."""
    by_id = {t.id: t for t in tubes}
    pairs: list[tuple[int, int]] = []
    for sample in samples:
        if len(sample.tube_ids) != 2 or sample.censored or len(set(sample.volumes)) != 1:
            continue
        a, b = (by_id[i].count for i in sample.tube_ids)
        if a is not None and b is not None:
            pairs.append((a, b))
    return {"pairs": len(pairs), "cv": cv_from_pairs(pairs)}


def cv_from_pairs(pairs: Sequence[tuple[int, int]]) -> float | None:
    products = sum(a * b for a, b in pairs)
    if not pairs or products == 0:
        return None
    excess = sum((a - b) ** 2 - (a + b) for a, b in pairs)
    return math.sqrt(max(0.0, excess / (2 * products)))


# --- entry point -----------------------------------------------------------------------------


def _cutoff(case: dict[str, Any]) -> Fraction | None:
    value = case.get("cutoffs", {}).get(case["cancer_type"])
    return None if value is None else Fraction(Decimal(str(value)))


def reference_assess(case: dict[str, Any]) -> dict[str, Any]:
    """Assess one patient's case.

    Input: cancer_type, cutoffs {type: number}, settings {clear_probability,
    extra_poisson_cv, pre_cycle_window_days, time_zone}, today "YYYY-MM-DD", tubes [{id,
    drawn_at (aware ISO-8601), volume_ml (decimal string), status, count, qualifier}],
    lines [{id, start_date, contains_doxorubicin}], cycles [{id, line_id, number,
    scheduled_date, first_scheduled_date, given_date, status}].

    Output: {"tubes": {tube_id (int): {...}}, "cycles": {cycle_id (int): {...}},
    "worklist_order": [cycle ids], "replicate_cv": {"pairs", "cv"}}; dates as ISO strings,
    flags as sorted [code, severity] lists.
    """
    settings = case.get("settings", {})
    zone = ZoneInfo(settings.get("time_zone", "Europe/London"))
    tubes = [_tube(raw, zone) for raw in case.get("tubes", [])]
    lines = [_line(raw) for raw in case.get("lines", [])]
    cycles = [_cycle(raw) for raw in case.get("cycles", [])]
    cutoff = _cutoff(case)
    validate(tubes, cutoff)
    samples = build_samples(tubes)
    assessed = assess_samples(samples, cutoff, settings, lines, cycles)
    days = int(settings.get("pre_cycle_window_days", 7))
    evaluated = cycles_output(cycles, assessed, tubes, _date(case["today"]), days)
    return {
        "tubes": tubes_output(tubes, assessed),
        "cycles": evaluated,
        "worklist_order": worklist_order(cycles, evaluated),
        "replicate_cv": replicate_cv(samples, tubes),
    }
