"""A realistic demo cohort, planned as plain data (nothing here touches the database).

`plan_cohort(today)` returns what `manage.py seed_demo` then writes through the
services. Dates are relative to `today`, so upcoming cycles always exist. The
trajectories are the ones a clinic sees: responders, persistently elevated
counts, conversion from favourable to unfavourable (sometimes followed by a
new therapy line), noise around the cut-off, counts in the hundreds or
thousands, rejected and failed samples, missed draws, imaging every few cycles.
Counts are Poisson samples around each trajectory's mean, from a fixed seed,
so the cohort is the same on every machine for the same `today`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from patients.rules import STANDARD_VOLUME_ML, CycleStatus, DrawStatus

MRN_PREFIX = "DEMO-"
COHORT_SIZE = 36
SEED = 20260501

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

REGIMENS: dict[str, list[tuple[str, int, bool]]] = {
    # (regimen, cycle length in days, contains doxorubicin)
    "breast": [
        ("Paclitaxel weekly x3, q28d", 28, False),
        ("AC (doxorubicin, cyclophosphamide)", 21, True),
        ("Capecitabine", 21, False),
        ("Dose-dense AC", 14, True),
        ("Eribulin", 21, False),
    ],
    "prostate": [("Docetaxel + prednisone", 21, False), ("Cabazitaxel + prednisone", 21, False)],
    "colorectal": [
        ("FOLFOX", 14, False),
        ("FOLFIRI + bevacizumab", 14, False),
        ("CAPOX", 21, False),
    ],
}
CUTOFF = {"breast": 5, "prostate": 5, "colorectal": 3}


@dataclass
class DrawPlan:
    drawn_on: date
    hour: int
    status: str
    ctc_count: int | None
    blood_volume_ml: Decimal = STANDARD_VOLUME_ML
    comment: str = ""


@dataclass
class CyclePlan:
    number: int
    scheduled_date: date
    status: str
    given_date: date | None = None
    status_reason: str = ""


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
    lines: list[LinePlan] = field(default_factory=list)
    draws: list[DrawPlan] = field(default_factory=list)
    imaging: list[ImagingPlan] = field(default_factory=list)


# Mean CTC per 7.5 mL at fraction t (0 = first draw, 1 = latest) of the patient's course.
TRAJECTORIES: dict[str, Callable[[float, int], float]] = {
    "responder": lambda t, c: 12 * c * math.exp(-4 * t) + 0.2,
    "persistent": lambda t, c: 4 * c + 2 * c * t,
    "conversion": lambda t, c: 0.6 if t < 0.7 else 3.5 * c,
    "noise_at_cutoff": lambda t, c: float(c),
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


def plan_cohort(today: date, size: int = COHORT_SIZE) -> list[PatientPlan]:
    rng = np.random.default_rng(SEED)
    kinds = list(TRAJECTORIES)
    cancers = ["breast", "prostate", "colorectal"]
    return [
        _plan_patient(i, cancers[i % 3], kinds[(i // 3 + i) % len(kinds)], today, rng)
        for i in range(size)
    ]


def _plan_patient(
    i: int, cancer: str, trajectory: str, today: date, rng: np.random.Generator
) -> PatientPlan:
    female = cancer == "breast" or (cancer == "colorectal" and i % 2 == 0)
    names = GIVEN if female else GIVEN_MALE
    birth = today - timedelta(days=int(rng.integers(42 * 365, 82 * 365)))
    # The next day 1 falls in the coming 10 days for most patients: the worklist is never empty.
    next_day1 = today + timedelta(days=int(rng.integers(0, 10)))
    plan = PatientPlan(
        mrn=f"{MRN_PREFIX}{i + 1:04d}",
        given_name=names[i % len(names)],
        family_name=FAMILY[i % len(FAMILY)],
        birth_date=birth,
        sex="female" if female else "male",
        cancer_type=cancer,
        diagnosed_on=today - timedelta(days=int(rng.integers(200, 900))),
        trajectory=trajectory,
    )
    plan.lines = _plan_lines(i, cancer, trajectory, next_day1, today, rng)
    plan.draws = _plan_draws(i, plan, today, rng)
    plan.imaging = _plan_imaging(plan, today)
    return plan


def _plan_lines(
    i: int, cancer: str, trajectory: str, next_day1: date, today: date, rng: np.random.Generator
) -> list[LinePlan]:
    regimen, length, doxo = REGIMENS[cancer][i % len(REGIMENS[cancer])]
    past_cycles = int(rng.integers(4, 9))
    if trajectory == "conversion" and (i // 6) % 2 == 1:
        # A new line after conversion to unfavourable: the old one ended before it.
        new_regimen, new_length, new_doxo = REGIMENS[cancer][(i + 1) % len(REGIMENS[cancer])]
        new_start = next_day1 - timedelta(days=2 * new_length)
        old_start = new_start - timedelta(days=past_cycles * length)
        first = _line(
            1,
            regimen,
            old_start,
            length,
            doxo,
            until=new_start - timedelta(days=1),
            today=today,
            rng=rng,
        )
        first.end_date = new_start - timedelta(days=1)
        second = _line(
            2,
            new_regimen,
            new_start,
            new_length,
            new_doxo,
            until=today + timedelta(days=3 * new_length),
            today=today,
            rng=rng,
        )
        return [first, second]
    start = next_day1 - timedelta(days=past_cycles * length)
    return [
        _line(
            1,
            regimen,
            start,
            length,
            doxo,
            until=today + timedelta(days=2 * length),
            today=today,
            rng=rng,
        )
    ]


def _line(
    number: int,
    regimen: str,
    start: date,
    length: int,
    doxo: bool,
    *,
    until: date,
    today: date,
    rng: np.random.Generator,
) -> LinePlan:
    line = LinePlan(number, regimen, start, length, doxo)
    day1, n = start, 1
    while day1 <= until:
        line.cycles.append(_cycle(n, day1, today, rng))
        day1 += timedelta(days=length)
        n += 1
    return line


def _cycle(number: int, day1: date, today: date, rng: np.random.Generator) -> CyclePlan:
    if day1 < today:
        return CyclePlan(number, day1, CycleStatus.GIVEN, given_date=day1)
    if rng.random() < 0.08:
        return CyclePlan(
            number,
            day1,
            CycleStatus.DELAYED,
            status_reason="Neutrophils 0.9 x10^9/L on day 1 bloods; recheck in a week",
        )
    return CyclePlan(number, day1, CycleStatus.PLANNED)


def _plan_draws(i: int, plan: PatientPlan, today: date, rng: np.random.Generator) -> list[DrawPlan]:
    cutoff = CUTOFF[plan.cancer_type]
    days = [
        c.scheduled_date - timedelta(days=int(rng.integers(3, 8)))
        for line in plan.lines
        for c in line.cycles
    ]
    days = [d for d in days if d < today]
    draws = []
    for k, drawn_on in enumerate(days):
        if k > 0 and rng.random() < 0.08:
            continue  # a missed draw: the cycle shows "missing pre-cycle draw"
        t = k / max(len(days) - 1, 1)
        mean = TRAJECTORIES[plan.trajectory](t, cutoff)
        draws.append(_draw(drawn_on, mean, today, rng))
    _add_special_draws(i, plan, draws, today)
    return draws


def _draw(drawn_on: date, mean: float, today: date, rng: np.random.Generator) -> DrawPlan:
    hour = int(rng.integers(8, 12))
    roll = rng.random()
    if (today - drawn_on).days <= 1 and roll < 0.5:
        return DrawPlan(
            drawn_on, hour, DrawStatus.PENDING, None, comment="Awaiting CellSearch result"
        )
    if roll > 0.95:
        return DrawPlan(
            drawn_on,
            hour,
            DrawStatus.REJECTED,
            None,
            comment="Rejected: received 101 h after draw (limit 96 h)",
        )
    if roll > 0.92:
        return DrawPlan(
            drawn_on,
            hour,
            DrawStatus.FAILED,
            None,
            comment="Not evaluable: instrument failure, repeat draw requested",
        )
    return DrawPlan(drawn_on, hour, DrawStatus.RESULTED, int(rng.poisson(mean)))


def _add_special_draws(i: int, plan: PatientPlan, draws: list[DrawPlan], today: date) -> None:
    """Cases every clinic meets now and then, placed on fixed patients."""
    if i == 1 and draws:  # a reduced-volume sample
        last = draws[-1]
        if last.status == DrawStatus.RESULTED:
            draws[-1] = DrawPlan(
                last.drawn_on,
                last.hour,
                DrawStatus.RESULTED,
                max(1, (last.ctc_count or 0) // 2),
                Decimal("4.0"),
                "Reduced volume processed (4.0 mL)",
            )
    line = plan.lines[-1]
    given = [c.given_date for c in line.cycles if c.given_date]
    if line.contains_doxorubicin and given:
        # A sample taken 3 days after a doxorubicin dose (lab guidance: wait 7 days).
        drawn_on = given[-1] + timedelta(days=3)
        if drawn_on < today:
            draws.append(
                DrawPlan(
                    drawn_on,
                    9,
                    DrawStatus.RESULTED,
                    3 if i % 2 else 6,
                    comment="Drawn 3 days after doxorubicin (research sample)",
                )
            )
    draws.sort(key=lambda d: (d.drawn_on, d.hour))


def _plan_imaging(plan: PatientPlan, today: date) -> list[ImagingPlan]:
    cycles = [c for line in plan.lines for c in line.cycles if c.scheduled_date < today]
    responses = IMAGING_RESPONSE[plan.trajectory]
    modality = {"breast": "ct", "prostate": "bone_scan", "colorectal": "ct"}[plan.cancer_type]
    scans = [
        ImagingPlan(
            plan.lines[0].start_date - timedelta(days=10),
            modality,
            "NE",
            "Baseline before the line (measurable disease documented)",
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
