"""A realistic demo cohort, planned as plain data (nothing here touches the database).

`plan_cohort(today)` returns what `manage.py seed_demo` then writes through the
services. Dates are relative to `today`, so upcoming cycles always exist. The
trajectories are the ones a clinic sees: responders, persistently elevated
counts, conversion from favourable to unfavourable (sometimes followed by a
new therapy line), a stable count near the cut-off, counts above the counting
range (">1000"), rejected and failed tubes, missed draws, imaging every few
cycles. Counts are Poisson samples around each trajectory's mean, from a fixed
seed per patient, so the cohort is the same on every machine for the same
`today` (and has the same shape whatever `today` is).

Each cancer type has its case mix (`CASE_MIX`): which trajectory each patient
follows, so that the share of patients unfavourable at baseline is close to the
published one, and which case of the rules (`Event`) a patient shows on the day
the demo is seeded: a draw due, a result pending, a delayed cycle keeping its
draw, samples that disagree in one window, a high result outside every window,
one for a patient with no cycle entered, one escalated, acknowledged rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

import numpy as np

from patients.rules import (
    DEFAULT_PRE_CYCLE_WINDOW_DAYS,
    STANDARD_VOLUME_ML,
    CycleStatus,
    DrawStatus,
    Flag,
    Qualifier,
    highest_severity,
)

MRN_PREFIX = "DEMO-"
COHORT_SIZE = 36
SEED = 20260501
CANCERS = ("breast", "prostate", "colorectal")

GIVEN = [
    "Ada",
    "Beatriz",
    "Chloe",
    "Dana",
    "Elif",
    "Fatima",
    "Grace",
    "Hana",
    "Ines",
    "Julia",
    "Keiko",
    "Lena",
    "Maya",
    "Nadia",
    "Olga",
    "Priya",
    "Rosa",
    "Sara",
]
GIVEN_MALE = [
    "Amir",
    "Bruno",
    "Carlos",
    "David",
    "Emeka",
    "Felix",
    "Georg",
    "Hugo",
    "Ivan",
    "Jonas",
    "Kenji",
    "Luca",
    "Marek",
    "Nils",
    "Omar",
    "Pavel",
    "Rafael",
    "Tomas",
]
FAMILY = [
    "Abbott",
    "Bauer",
    "Castillo",
    "Dimitrova",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jansen",
    "Kowalski",
    "Laine",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Sato",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
    "Lindqvist",
    "Mendes",
    "Nagy",
    "Olsen",
    "Pereira",
    "Reyes",
    "Silva",
    "Thorne",
    "Ullman",
    "Vidal",
    "Wright",
]


class Regimen(NamedTuple):
    name: str
    cycle_length_days: int
    contains_doxorubicin: bool


# Regimens for metastatic disease, as clinics give them.
PACLITAXEL = Regimen("Paclitaxel weekly x3, q28d", 28, False)
AC = Regimen("AC (doxorubicin, cyclophosphamide)", 21, True)
DOCETAXEL_BREAST = Regimen("Docetaxel", 21, False)
CAPECITABINE = Regimen("Capecitabine", 21, False)
ERIBULIN = Regimen("Eribulin", 21, False)
DOCETAXEL = Regimen("Docetaxel + prednisone", 21, False)
CABAZITAXEL = Regimen("Cabazitaxel + prednisone", 21, False)
FOLFOX = Regimen("FOLFOX + bevacizumab", 14, False)
CAPOX = Regimen("CAPOX + bevacizumab", 21, False)
FOLFIRI = Regimen("FOLFIRI + bevacizumab", 14, False)

# Every regimen the demo gives, per cancer type. Not dose-dense AC: a schedule for
# early breast cancer (adjuvant), not for metastatic disease.
REGIMENS: dict[str, list[Regimen]] = {
    "breast": [PACLITAXEL, DOCETAXEL_BREAST, AC, CAPECITABINE, ERIBULIN],
    "prostate": [DOCETAXEL, CABAZITAXEL],
    "colorectal": [FOLFOX, CAPOX, FOLFIRI],
}
# The line given after each one when a patient starts a new line: cabazitaxel only
# after docetaxel (TROPIC); after an oxaliplatin doublet (FOLFOX or CAPOX, the same
# first line: never one after the other), irinotecan; eribulin after capecitabine.
NEXT_LINE: dict[Regimen, Regimen] = {
    PACLITAXEL: CAPECITABINE,
    DOCETAXEL_BREAST: CAPECITABINE,
    AC: PACLITAXEL,
    CAPECITABINE: ERIBULIN,
    DOCETAXEL: CABAZITAXEL,
    FOLFOX: FOLFIRI,
    CAPOX: FOLFIRI,
}
# Doxorubicin's cumulative dose (heart) stops AC at 6 cycles; docetaxel and
# cabazitaxel were given for up to 10 in their trials (TAX 327, TROPIC).
MAX_CYCLES: dict[Regimen, int] = {AC: 6, DOCETAXEL: 10, CABAZITAXEL: 10}

CUTOFF = {"breast": 5, "prostate": 5, "colorectal": 3}
# CellSearch counts above its counting range are reported as a lower bound.
COUNTING_RANGE = 1000
DELAY_REASON = "Neutrophils 0.9 x10^9/L on day 1 bloods; recheck in a week"
REJECTED_COMMENT = "Rejected: received 101 h after draw (limit 96 h)"
FAILED_COMMENT = "Not evaluable: instrument failure, repeat draw requested"
PENDING_COMMENT = "Awaiting CellSearch result"


# Mean CTC per 7.5 mL at fraction t (0 = first draw, 1 = latest) of the patient's course.
TRAJECTORIES: dict[str, Callable[[float, int], float]] = {
    "responder": lambda t, c: 12 * c * math.exp(-4 * t) + 0.2,
    "persistent": lambda t, c: 4 * c + 2 * c * t,
    "conversion": lambda t, c: 0.6 if t < 0.7 else 3.5 * c,
    # A stable true count just below the cut-off (4.5 or 2.5): counting noise alone
    # puts samples on both sides of it.
    "noise_at_cutoff": lambda t, c: c - 0.5,
    "never_elevated": lambda t, c: 0.3,
    "very_high": lambda t, c: 900 * (1 + t),
    "rising": lambda t, c: 0.5 + 2.2 * c * t**2,
    "cleared": lambda t, c: 3 * c if t < 0.3 else 0.8,
}
IMAGING_RESPONSE = {
    "responder": ["PR", "PR", "CR"],
    "persistent": ["SD", "PD", "PD"],
    "conversion": ["SD", "SD", "PD"],
    "noise_at_cutoff": ["SD", "SD", "SD"],
    "never_elevated": ["PR", "SD", "SD"],
    "very_high": ["PD", "SD", "PD"],
    "rising": ["SD", "SD", "PD"],
    "cleared": ["PR", "SD", "PR"],
}


class Event(StrEnum):
    """A case of the rules one patient shows on the day the demo is seeded."""

    NONE = ""
    ESCALATED = "escalated"  # a high result nobody acknowledged: escalated
    ACKNOWLEDGED = "acknowledged"  # the next cycle's flags acknowledged by a nurse
    HIGH_OUTSIDE_WINDOW = "high_outside_window"  # mid-cycle, no window open
    NO_CYCLE = "no_cycle"  # referred with counts, the first line not entered yet
    DISCORDANT = "discordant"  # two samples in one window disagree
    DELAYED = "delayed"  # day 1 delayed a week, the draw for the first date kept
    MISSING = "missing"  # day 1 was yesterday, not given, no draw in the window
    PENDING = "pending"  # the tube for the next cycle awaits its result
    REJECTED = "rejected"  # the tube for the next cycle was rejected: draw again
    REDUCED_VOLUME = "reduced_volume"  # the latest sample from 4 mL


@dataclass(frozen=True)
class Case:
    regimen: Regimen  # the first line (a new line follows with NEXT_LINE)
    trajectory: str
    event: Event = Event.NONE
    new_line: bool = False  # a second line started after the first
    duplicate_tubes: bool = False  # every draw taken as two tubes (a replicate study)


# Patient i has cancer CANCERS[i % 3] and case CASE_MIX[cancer][(i // 3) % 12].
# Unfavourable at baseline (first evaluable sample), as published: breast 49%
# (Cristofanilli 2004), prostate 57% (de Bono 2008), colorectal 26% (Cohen 2008);
# here 6, 7 and 3 of 12 (tests/operations/test_demo_cohort.py checks it).
CASE_MIX: dict[str, list[Case]] = {
    "breast": [
        Case(PACLITAXEL, "persistent", Event.ESCALATED),
        Case(AC, "responder", Event.REDUCED_VOLUME),
        Case(CAPECITABINE, "conversion", new_line=True),
        Case(PACLITAXEL, "noise_at_cutoff"),
        Case(DOCETAXEL_BREAST, "never_elevated"),
        Case(CAPECITABINE, "cleared"),
        Case(PACLITAXEL, "rising"),
        Case(DOCETAXEL_BREAST, "very_high"),
        Case(CAPECITABINE, "conversion", Event.HIGH_OUTSIDE_WINDOW),
        Case(PACLITAXEL, "responder", duplicate_tubes=True),
        Case(AC, "never_elevated", Event.PENDING),
        Case(CAPECITABINE, "persistent", Event.ACKNOWLEDGED),
    ],
    "prostate": [
        Case(DOCETAXEL, "very_high"),
        Case(DOCETAXEL, "responder"),
        Case(DOCETAXEL, "conversion", new_line=True),
        Case(DOCETAXEL, "persistent", Event.ACKNOWLEDGED),
        Case(DOCETAXEL, "never_elevated", Event.DELAYED),
        Case(DOCETAXEL, "noise_at_cutoff"),
        Case(DOCETAXEL, "cleared", duplicate_tubes=True),
        Case(DOCETAXEL, "rising", Event.MISSING),
        Case(DOCETAXEL, "responder", duplicate_tubes=True),
        Case(DOCETAXEL, "persistent", Event.NO_CYCLE),
        Case(DOCETAXEL, "conversion", Event.REJECTED),
        Case(DOCETAXEL, "conversion", new_line=True),
    ],
    "colorectal": [
        Case(FOLFOX, "responder"),
        Case(CAPOX, "never_elevated"),
        Case(FOLFOX, "conversion", new_line=True),
        Case(CAPOX, "noise_at_cutoff", Event.DISCORDANT),
        Case(FOLFOX, "never_elevated", duplicate_tubes=True),
        Case(CAPOX, "persistent"),
        Case(FOLFOX, "rising"),
        Case(CAPOX, "never_elevated"),
        Case(FOLFOX, "cleared"),
        Case(CAPOX, "conversion"),
        Case(FOLFOX, "noise_at_cutoff"),
        Case(CAPOX, "rising"),
    ],
}
# Where an event puts the next day 1, in days from today (others: 0 to 9 days).
NEXT_DAY1: dict[Event, int] = {
    Event.ESCALATED: 2,
    Event.ACKNOWLEDGED: 1,
    Event.HIGH_OUTSIDE_WINDOW: 10,
    Event.DISCORDANT: 2,
    Event.DELAYED: -1,
    Event.MISSING: -1,
    Event.PENDING: 3,
    Event.REJECTED: 4,
}

# The notes nurses left when they acknowledged flags before each cycle was given.
REVIEW_NOTES = {
    "missing_pre_cycle_draw": "Draw missed before the cycle; count booked for the next one",
    "not_evaluable": "Repeat draw booked",
    "discordant_in_window": "Discussed with the oncologist; repeat count before the next cycle",
    "high": "Oncologist informed; imaging brought forward",
    "review": "Reviewed with the oncologist in clinic; imaging as planned",
}
ACKNOWLEDGED_NOTE = "Oncologist informed; CT brought forward"


def review_note(flags: Iterable[Flag]) -> str:
    """The note a nurse left acknowledging `flags` (at least one high or review)."""
    flags = list(flags)
    codes = {f.code for f in flags}
    for code in ("missing_pre_cycle_draw", "not_evaluable", "discordant_in_window"):
        if code in codes:
            return REVIEW_NOTES[code]
    return REVIEW_NOTES[str(highest_severity(flags))]


@dataclass
class DrawPlan:
    drawn_on: date
    hour: int
    status: str
    ctc_count: int | None
    blood_volume_ml: Decimal = STANDARD_VOLUME_ML
    comment: str = ""
    count_qualifier: str = Qualifier.EXACT
    tube: int = 1  # the tube's number in its venepuncture (same drawn_on and hour)


@dataclass
class CyclePlan:
    number: int
    scheduled_date: date
    status: str
    given_date: date | None = None
    # Delayed on day 1 (through the service, after its draw): the new day 1, and why.
    delay_to: date | None = None
    delay_reason: str = ""


@dataclass
class LinePlan:
    line_number: int
    regimen: str
    start_date: date
    cycle_length_days: int
    contains_doxorubicin: bool
    end_date: date | None = None
    cycles: list[CyclePlan] = field(default_factory=list)


@dataclass
class ImagingPlan:
    performed_on: date
    modality: str
    response: str
    note: str = ""


@dataclass
class PatientPlan:
    mrn: str
    given_name: str
    family_name: str
    birth_date: date
    sex: str
    cancer_type: str
    diagnosed_on: date
    trajectory: str
    event: Event = Event.NONE
    lines: list[LinePlan] = field(default_factory=list)
    draws: list[DrawPlan] = field(default_factory=list)
    imaging: list[ImagingPlan] = field(default_factory=list)
    # Flags on results drawn, and cycles given, before this day were acknowledged at
    # the time (the nurse's review before each cycle); later ones wait for review.
    reviewed_until: date | None = None

    @property
    def cutoff(self) -> int:
        return CUTOFF[self.cancer_type]


def plan_cohort(today: date, size: int = COHORT_SIZE) -> list[PatientPlan]:
    return [plan_patient(i, today) for i in range(size)]


def case_of(i: int) -> tuple[str, Case]:
    """Patient i's cancer type and case."""
    cancer = CANCERS[i % len(CANCERS)]
    mix = CASE_MIX[cancer]
    return cancer, mix[(i // len(CANCERS)) % len(mix)]


def plan_patient(i: int, today: date) -> PatientPlan:
    """Patient i, from a seed of its own: changing one patient's case changes no other."""
    rng = np.random.default_rng([SEED, i])
    cancer, case = case_of(i)
    female = cancer == "breast" or (cancer == "colorectal" and i % 2 == 0)
    names = GIVEN if female else GIVEN_MALE
    offset = NEXT_DAY1.get(case.event)
    next_day1 = today + timedelta(days=int(rng.integers(0, 10)) if offset is None else offset)
    plan = PatientPlan(
        mrn=f"{MRN_PREFIX}{i + 1:04d}",
        given_name=names[i % len(names)],
        family_name=FAMILY[i % len(FAMILY)],
        birth_date=today - timedelta(days=int(rng.integers(42 * 365, 82 * 365))),
        sex="female" if female else "male",
        cancer_type=cancer,
        diagnosed_on=today,  # set below, before the first line
        trajectory=case.trajectory,
        event=case.event,
    )
    if case.event != Event.NO_CYCLE:
        plan.lines = _plan_lines(case, next_day1, today, rng)
    if plan.lines:
        before = timedelta(days=int(rng.integers(14, 400)))
        plan.diagnosed_on = plan.lines[0].start_date - before
    else:
        plan.diagnosed_on = today - timedelta(days=30)  # referred, first line being planned
    plan.draws = _plan_draws(plan, case, today, rng)
    _apply_event(plan, today)
    plan.reviewed_until = _reviewed_until(plan, today)
    plan.imaging = _plan_imaging(plan, today)
    return plan


def _plan_lines(
    case: Case, next_day1: date, today: date, rng: np.random.Generator
) -> list[LinePlan]:
    first = case.regimen
    past_cycles = int(rng.integers(4, 9))
    if not case.new_line:
        return [_line(1, first, next_day1, past_cycles, today, case.event)]
    # A new line after conversion to unfavourable: the old one ended before it.
    second = NEXT_LINE[first]
    new_start = next_day1 - timedelta(days=2 * second.cycle_length_days)
    earlier = _line(1, first, new_start, past_cycles, today, case.event)
    earlier.cycles = [c for c in earlier.cycles if c.scheduled_date < new_start]
    earlier.end_date = new_start - timedelta(days=1)
    return [earlier, _line(2, second, next_day1, 2, today, case.event)]


def _line(
    number: int, regimen: Regimen, next_day1: date, past: int, today: date, event: Event
) -> LinePlan:
    """A line whose cycle `past + 1` falls on `next_day1`, planned two cycles ahead."""
    length = regimen.cycle_length_days
    total = past + 3
    if regimen in MAX_CYCLES:
        total = min(total, MAX_CYCLES[regimen])
        past = min(past, total - 2)
    start = next_day1 - timedelta(days=past * length)
    line = LinePlan(number, regimen.name, start, length, regimen.contains_doxorubicin, cycles=[])
    for k in range(total):
        day1 = start + timedelta(days=k * length)
        line.cycles.append(_cycle(k + 1, day1, today, event))
    return line


def _cycle(number: int, day1: date, today: date, event: Event) -> CyclePlan:
    # Day 1 was yesterday and the cycle was not given: delayed then, or not attended.
    held = day1 == today - timedelta(days=1) and event in (Event.DELAYED, Event.MISSING)
    if held and event == Event.DELAYED:
        delay_to = day1 + timedelta(days=7)
        return CyclePlan(
            number, day1, CycleStatus.PLANNED, delay_to=delay_to, delay_reason=DELAY_REASON
        )
    if day1 < today and not held:
        return CyclePlan(number, day1, CycleStatus.GIVEN, given_date=day1)
    return CyclePlan(number, day1, CycleStatus.PLANNED)


def _plan_draws(
    plan: PatientPlan, case: Case, today: date, rng: np.random.Generator
) -> list[DrawPlan]:
    """One draw 3 to 7 days before each day 1 that has passed (a few missed)."""
    days = [
        c.scheduled_date - timedelta(days=int(rng.integers(3, 8)))
        for line in plan.lines
        for c in line.cycles
    ]
    days = [d for d in days if d < today]
    tubes = 2 if case.duplicate_tubes else 1
    draws: list[DrawPlan] = []
    for k, drawn_on in enumerate(days):
        if k > 0 and rng.random() < 0.08:
            continue  # a missed draw: the cycle shows "missing pre-cycle draw"
        t = k / max(len(days) - 1, 1)
        mean = TRAJECTORIES[plan.trajectory](t, plan.cutoff)
        draws.extend(_venepuncture(drawn_on, mean, tubes, today, rng))
    return draws


def _venepuncture(
    drawn_on: date, mean: float, tubes: int, today: date, rng: np.random.Generator
) -> list[DrawPlan]:
    """The tubes of one draw: each counted on its own, or all sharing the first's fate."""
    first = _draw(drawn_on, mean, today, rng)
    taken = [first]
    for tube in range(2, tubes + 1):
        if first.status != DrawStatus.RESULTED:
            taken.append(replace(first, tube=tube))
        elif rng.random() < 0.1:
            comment = "Rejected: clotted tube; the other tube of this draw was counted"
            rejected = DrawPlan(drawn_on, first.hour, DrawStatus.REJECTED, None, comment=comment)
            taken.append(replace(rejected, tube=tube))
        else:
            taken.append(replace(_resulted(drawn_on, first.hour, mean, rng), tube=tube))
    return taken


def _draw(drawn_on: date, mean: float, today: date, rng: np.random.Generator) -> DrawPlan:
    hour = int(rng.integers(8, 12))
    roll = rng.random()
    if (today - drawn_on).days <= 1 and roll < 0.5:
        return DrawPlan(drawn_on, hour, DrawStatus.PENDING, None, comment=PENDING_COMMENT)
    if roll > 0.95:
        return DrawPlan(drawn_on, hour, DrawStatus.REJECTED, None, comment=REJECTED_COMMENT)
    if roll > 0.92:
        return DrawPlan(drawn_on, hour, DrawStatus.FAILED, None, comment=FAILED_COMMENT)
    return _resulted(drawn_on, hour, mean, rng)


def _resulted(drawn_on: date, hour: int, mean: float, rng: np.random.Generator) -> DrawPlan:
    return _counted(drawn_on, hour, int(rng.poisson(mean)))


def _counted(drawn_on: date, hour: int, count: int, comment: str = "") -> DrawPlan:
    """A resulted tube; a count above the counting range is reported as ">1000"."""
    if count > COUNTING_RANGE:
        return DrawPlan(
            drawn_on,
            hour,
            DrawStatus.RESULTED,
            COUNTING_RANGE,
            comment=comment or "Above the counting range: reported as >1000",
            count_qualifier=Qualifier.MORE_THAN,
        )
    return DrawPlan(drawn_on, hour, DrawStatus.RESULTED, count, comment=comment)


# --- the cases of the rules, each on its patient ------------------------------------


def _apply_event(plan: PatientPlan, today: date) -> None:
    """Put the patient's event in place, then the doxorubicin research sample."""
    match plan.event:
        case Event.ESCALATED | Event.ACKNOWLEDGED:
            _replace_window_draws(
                plan, [_counted(_next_day1(plan) - timedelta(days=5), 9, _latest_mean(plan))]
            )
        case Event.DELAYED:
            drawn_on = _next_day1(plan) - timedelta(days=4)
            _replace_window_draws(plan, [_counted(drawn_on, 9, _latest_mean(plan))])
        case Event.HIGH_OUTSIDE_WINDOW:
            plan.draws.append(
                _counted(
                    today - timedelta(days=2),
                    15,
                    4 * plan.cutoff,
                    "Unscheduled: drawn at a clinic visit for new bone pain",
                )
            )
        case Event.NO_CYCLE:
            plan.draws = _referral_draws(plan, today)
        case Event.DISCORDANT:
            _replace_window_draws(plan, _discordant_draws(plan, today))
        case Event.MISSING:
            _replace_window_draws(plan, [])
        case Event.PENDING:
            drawn_on = today - timedelta(days=1)
            _replace_window_draws(
                plan, [DrawPlan(drawn_on, 9, DrawStatus.PENDING, None, comment=PENDING_COMMENT)]
            )
        case Event.REJECTED:
            drawn_on = today - timedelta(days=2)
            rejected = DrawPlan(drawn_on, 9, DrawStatus.REJECTED, None, comment=REJECTED_COMMENT)
            _replace_window_draws(plan, [rejected])
        case Event.REDUCED_VOLUME:
            _reduce_latest_volume(plan)
    _add_doxorubicin_sample(plan, today)
    plan.draws.sort(key=lambda d: (d.drawn_on, d.hour, d.tube))


def _next_cycle(plan: PatientPlan) -> CyclePlan:
    """The first cycle of the current line not given yet."""
    return next(c for c in plan.lines[-1].cycles if c.status != CycleStatus.GIVEN)


def _next_day1(plan: PatientPlan) -> date:
    return _next_cycle(plan).scheduled_date


def _latest_mean(plan: PatientPlan) -> int:
    return round(TRAJECTORIES[plan.trajectory](1.0, plan.cutoff))


def _replace_window_draws(plan: PatientPlan, draws: list[DrawPlan]) -> None:
    """The draws in the next cycle's pre-cycle window become `draws`."""
    day1 = _next_day1(plan)
    opens = day1 - timedelta(days=DEFAULT_PRE_CYCLE_WINDOW_DAYS)
    plan.draws = [d for d in plan.draws if not opens <= d.drawn_on <= day1] + draws


def _referral_draws(plan: PatientPlan, today: date) -> list[DrawPlan]:
    """Counts before any line: at referral, and again before the first line is entered."""
    return [
        _counted(
            today - timedelta(days=24),
            10,
            plan.cutoff + 2,
            "First count at referral; first line being planned",
        ),
        _counted(today - timedelta(days=3), 10, 5 * plan.cutoff, "Repeat before the first line"),
    ]


def _discordant_draws(plan: PatientPlan, today: date) -> list[DrawPlan]:
    """A count just above the cut-off, and a repeat three days later below it."""
    return [
        _counted(today - timedelta(days=5), 9, plan.cutoff + 2),
        _counted(
            today - timedelta(days=2),
            9,
            1,
            "Repeat draw: the count of three days before was near the cut-off",
        ),
    ]


def _reduce_latest_volume(plan: PatientPlan) -> None:
    resulted = [d for d in plan.draws if d.status == DrawStatus.RESULTED]
    if resulted:
        last = resulted[-1]
        last.ctc_count = max(1, (last.ctc_count or 0) // 2)
        last.blood_volume_ml = Decimal("4.0")
        last.comment = "Reduced volume processed (4.0 mL)"


def _add_doxorubicin_sample(plan: PatientPlan, today: date) -> None:
    """A sample taken 3 days after a doxorubicin dose (lab guidance: wait 7 days)."""
    if not plan.lines or not plan.lines[-1].contains_doxorubicin:
        return
    given = [c.given_date for c in plan.lines[-1].cycles if c.given_date]
    drawn_on = given[-1] + timedelta(days=3) if given else today
    if drawn_on < today:
        count = max(2 * plan.cutoff, _latest_mean(plan))
        comment = "Drawn 3 days after doxorubicin (research sample)"
        plan.draws.append(_counted(drawn_on, 9, count, comment))


def _reviewed_until(plan: PatientPlan, today: date) -> date | None:
    """The day of the last review: the last cycle given (for no line: after referral)."""
    if not plan.lines:
        return today - timedelta(days=20)
    given = [c.given_date for line in plan.lines for c in line.cycles if c.given_date]
    return max(given, default=None)


def _plan_imaging(plan: PatientPlan, today: date) -> list[ImagingPlan]:
    cycles = [c for line in plan.lines for c in line.cycles if c.scheduled_date < today]
    responses = IMAGING_RESPONSE[plan.trajectory]
    modality = {"breast": "ct", "prostate": "bone_scan", "colorectal": "ct"}[plan.cancer_type]
    first = plan.lines[0].start_date if plan.lines else plan.diagnosed_on + timedelta(days=3)
    scans = [
        ImagingPlan(
            first - timedelta(days=10) if plan.lines else first,
            modality,
            "NE",
            "Baseline before the line (measurable disease documented)"
            if plan.lines
            else "At referral (measurable disease documented)",
        )
    ]
    for k, cycle in enumerate(cycles[3::3]):
        scans.append(
            ImagingPlan(
                cycle.scheduled_date - timedelta(days=4),
                "pet_ct" if k % 2 else modality,
                responses[min(k, len(responses) - 1)],
            )
        )
    return [s for s in scans if s.performed_on <= today]
