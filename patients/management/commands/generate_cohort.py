"""`python manage.py generate_cohort --patients 10000`: a large synthetic cohort for benchmarks.

Not demo data (that is `seed_demo`, written through the services): this fills
a database quickly with a cohort the size of a cancer centre's, for
`make bench`. Patient `i` is planned from `(seed, i)` alone, so the command
tops a cohort up: `--patients 100` then `--patients 10000` gives the same
first 100 patients as `--patients 10000` at once.

What a clinic sees, roughly: half breast, a quarter each prostate and
colorectal; the demo's trajectories (responders, persistent, conversion, ...);
up to two earlier therapy lines; about 88% on treatment, with their next day 1
anywhere in the current cycle (so a 7-day worklist holds about 7/21 of the
patients on 21-day cycles); a baseline draw before every line, a pre-cycle
draw before most cycles and an early-response draw mid-cycle (day 8 to 10),
repeats after rejected or failed samples, surveillance draws off
treatment; imaging every third cycle; some acknowledgements.

Rows go in with `bulk_create` in batches, without change-history rows: the
data is invented, nobody changed it, and the pages measured never read the
history (the CSV import benchmark measures writing history); each batch's
cycles get their review rank, as the services would give them. Refuses to run on
a database that holds patients other than synthetic ones (MRN prefix `SYN-`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from patients.assessment import refresh_review_ranks
from patients.demo import FAMILY, GIVEN, GIVEN_MALE, IMAGING_RESPONSE, REGIMENS, TRAJECTORIES
from patients.models import (
    Acknowledgement,
    CTCDraw,
    CycleStatus,
    DrawStatus,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)
from patients.rules import NOT_EVALUABLE_STATUSES, STANDARD_VOLUME_ML

MRN_PREFIX = "SYN-"
SEED = 20260601
BATCH = 500  # patients planned and written per transaction
ONCOLOGISTS = 40  # a centre of 10,000 patients on treatment has dozens of oncologists

CANCERS = ["breast", "prostate", "colorectal"]
CANCER_SHARE = [0.5, 0.25, 0.25]
CUTOFF = {"breast": 5, "prostate": 5, "colorectal": 3}
TRAJECTORY_SHARE = {
    "never_elevated": 0.30,
    "responder": 0.20,
    "persistent": 0.13,
    "noise_at_cutoff": 0.10,
    "conversion": 0.09,
    "rising": 0.08,
    "cleared": 0.07,
    "very_high": 0.03,
}
ON_TREATMENT_SHARE = 0.88
DELAY_REASON = "Neutrophils 0.9 x10^9/L on day 1 bloods; recheck in a week"


# How long after a synthetic draw its result is recorded (CellSearch: 1 to 5 days).
RESULT_TURNAROUND = timedelta(days=2)


@dataclass
class CyclePlan:
    number: int
    day1: date
    status: str
    reason: str = ""


@dataclass
class LinePlan:
    number: int
    regimen: str
    length: int
    doxorubicin: bool
    start: date
    end: date | None
    cycles: list[CyclePlan] = field(default_factory=list)


@dataclass
class DrawPlan:
    drawn_on: date
    hour: int
    status: str
    count: int | None
    volume: Decimal
    comment: str


@dataclass
class PatientPlan:
    mrn: str
    given_name: str
    family_name: str
    birth_date: date
    sex: str
    cancer_type: str
    diagnosed_on: date
    oncologist: int  # index into the synthetic oncologists
    trajectory: str
    lines: list[LinePlan] = field(default_factory=list)
    draws: list[DrawPlan] = field(default_factory=list)
    imaging: list[tuple[date, str, str]] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)  # upcoming cycle numbers, last line


# --- planning (pure: numbers and dates in, plans out) -----------------------------------


def plan_patient(i: int, today: date, seed: int = SEED) -> PatientPlan:
    """Patient `i` of the synthetic cohort, the same on every machine for the same `today`."""
    rng = np.random.default_rng([seed, i])
    cancer = str(rng.choice(CANCERS, p=CANCER_SHARE))
    trajectory = str(rng.choice(list(TRAJECTORY_SHARE), p=list(TRAJECTORY_SHARE.values())))
    female = cancer == "breast" or (cancer == "colorectal" and rng.random() < 0.5)
    names = GIVEN if female else GIVEN_MALE
    lines = _plan_lines(cancer, today, rng)
    plan = PatientPlan(
        mrn=f"{MRN_PREFIX}{i + 1:06d}",
        given_name=names[int(rng.integers(len(names)))],
        family_name=FAMILY[int(rng.integers(len(FAMILY)))],
        birth_date=today - timedelta(days=int(rng.integers(40 * 365, 85 * 365))),
        sex="female" if female else "male",
        cancer_type=cancer,
        diagnosed_on=lines[0].start - timedelta(days=int(rng.integers(14, 90))),
        oncologist=int(rng.integers(ONCOLOGISTS)),
        trajectory=trajectory,
        lines=lines,
    )
    plan.draws = _plan_draws(plan, today, rng)
    plan.imaging = _plan_imaging(plan, today)
    upcoming = [c.number for c in lines[-1].cycles if c.status != CycleStatus.GIVEN]
    if upcoming and rng.random() < 0.15:
        plan.acknowledged = upcoming[:1]
    return plan


def _plan_lines(cancer: str, today: date, rng: np.random.Generator) -> list[LinePlan]:
    """Earlier lines, all given, then the current one: ongoing, or ended a while ago."""
    regimens = REGIMENS[cancer]
    order = rng.permutation(len(regimens))
    earlier = int(rng.choice([0, 1, 2], p=[0.5, 0.32, 0.18]))
    current = _current_line(earlier + 1, regimens[order[earlier % len(order)]], today, rng)
    lines = [current]
    start = current.start
    for number in range(earlier, 0, -1):
        regimen = regimens[order[(number - 1) % len(order)]]
        end = start - timedelta(days=int(rng.integers(14, 60)))
        lines.insert(0, _earlier_line(number, regimen, end, rng))
        start = lines[0].start
    return lines


def _current_line(
    number: int, regimen: tuple[str, int, bool], today: date, rng: np.random.Generator
) -> LinePlan:
    name, length, doxorubicin = regimen
    given = int(rng.integers(1, 10))
    if rng.random() < ON_TREATMENT_SHARE:
        next_day1 = today + timedelta(days=int(rng.integers(length)))
        ahead, end = int(rng.integers(1, 3)), None
    else:  # between lines or in follow-up: the line ended, nothing is planned
        next_day1 = today - timedelta(days=int(rng.integers(14, 120)))
        ahead, end = 0, next_day1 - timedelta(days=1)
    start = next_day1 - timedelta(days=given * length)
    line = LinePlan(number, name, length, doxorubicin, start, end)
    for k in range(given + ahead):
        day1 = start + timedelta(days=k * length)
        if k < given:
            line.cycles.append(CyclePlan(k + 1, day1, CycleStatus.GIVEN))
        elif k == given and rng.random() < 0.08:
            line.cycles.append(CyclePlan(k + 1, day1, CycleStatus.DELAYED, DELAY_REASON))
        else:
            line.cycles.append(CyclePlan(k + 1, day1, CycleStatus.PLANNED))
    return line


def _earlier_line(
    number: int, regimen: tuple[str, int, bool], end: date, rng: np.random.Generator
) -> LinePlan:
    name, length, doxorubicin = regimen
    count = int(rng.integers(4, 9))
    start = end - timedelta(days=count * length - 1)
    line = LinePlan(number, name, length, doxorubicin, start, end)
    line.cycles = [
        CyclePlan(k + 1, start + timedelta(days=k * length), CycleStatus.GIVEN)
        for k in range(count)
    ]
    return line


def _plan_draws(plan: PatientPlan, today: date, rng: np.random.Generator) -> list[DrawPlan]:
    days = sorted(d for d in _draw_days(plan.lines, today, rng) if d < today)
    first = days[0] if days else today
    span = max((today - first).days, 1)
    mean_at = TRAJECTORIES[plan.trajectory]
    cutoff = CUTOFF[plan.cancer_type]
    draws = []
    for drawn_on in days:
        draw = _draw(drawn_on, mean_at((drawn_on - first).days / span, cutoff), today, rng)
        draws.append(draw)
        if draw.status in NOT_EVALUABLE_STATUSES:
            repeat_on = drawn_on + timedelta(days=int(rng.integers(2, 5)))
            if repeat_on < today:
                mean = mean_at((repeat_on - first).days / span, cutoff)
                draws.append(_draw(repeat_on, mean, today, rng))
    return draws


def _draw_days(lines: list[LinePlan], today: date, rng: np.random.Generator) -> Iterator[date]:
    """Baseline before each line, before most cycles and mid-cycle, and off treatment."""
    for line in lines:
        yield line.start - timedelta(days=int(rng.integers(3, 14)))
        for cycle in line.cycles[1:]:
            if rng.random() >= 0.08:  # a missed draw: the cycle gets "missing pre-cycle draw"
                yield cycle.day1 - timedelta(days=int(rng.integers(1, 7)))
        for cycle in line.cycles:
            if cycle.status == CycleStatus.GIVEN and rng.random() < 0.9:
                yield cycle.day1 + timedelta(days=int(rng.integers(7, 10)))
    last = lines[-1]
    if last.end is not None:
        day = last.end + timedelta(days=28)
        while day < today:
            yield day
            day += timedelta(days=int(rng.integers(25, 32)))


def _draw(drawn_on: date, mean: float, today: date, rng: np.random.Generator) -> DrawPlan:
    hour = int(rng.integers(8, 13))
    roll = rng.random()
    volume = STANDARD_VOLUME_ML
    if (today - drawn_on).days <= 2 and roll < 0.5:
        return DrawPlan(drawn_on, hour, DrawStatus.PENDING, None, volume, "Awaiting result")
    if roll > 0.95:
        comment = "Rejected: received 101 h after draw (limit 96 h)"
        return DrawPlan(drawn_on, hour, DrawStatus.REJECTED, None, volume, comment)
    if roll > 0.92:
        comment = "Not evaluable: instrument failure, repeat draw requested"
        return DrawPlan(drawn_on, hour, DrawStatus.FAILED, None, volume, comment)
    if roll < 0.03:  # a reduced-volume sample: fewer cells for the same rate
        volume = Decimal(str(rng.choice(["4.0", "5.0", "6.5"])))
    count = int(rng.poisson(mean * float(volume) / float(STANDARD_VOLUME_ML)))
    return DrawPlan(drawn_on, hour, DrawStatus.RESULTED, count, volume, "")


def _plan_imaging(plan: PatientPlan, today: date) -> list[tuple[date, str, str]]:
    modality = "bone_scan" if plan.cancer_type == "prostate" else "ct"
    responses = IMAGING_RESPONSE[plan.trajectory]
    scans = []
    for line in plan.lines:
        scans.append((line.start - timedelta(days=10), modality, "NE"))
        given = [c for c in line.cycles if c.status == CycleStatus.GIVEN]
        for k, cycle in enumerate(given[3::3]):
            response = responses[min(k, len(responses) - 1)]
            scans.append((cycle.day1 - timedelta(days=4), modality, response))
    return [s for s in scans if s[0] <= today]


# --- writing -------------------------------------------------------------------------------


class Command(BaseCommand):
    help = "Top the synthetic benchmark cohort up to --patients patients (MRNs SYN-...)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=SEED)
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Generate even though DEBUG is off (a benchmark database served in production "
            "mode). Never on a database that holds real patients: the command refuses that.",
        )

    def handle(
        self, *args: Any, patients: int, seed: int, allow_without_debug: bool, **_: Any
    ) -> None:
        if not settings.DEBUG and not allow_without_debug:
            raise CommandError(
                "DEBUG is off: this looks like production. Pass --allow-without-debug if this "
                "really is a benchmark database."
            )
        if Patient.objects.exclude(mrn__startswith=MRN_PREFIX).exists():
            raise CommandError(
                "This database holds patients that are not synthetic; refusing to add "
                "invented data to it."
            )
        have = Patient.objects.filter(mrn__startswith=MRN_PREFIX).count()
        if have >= patients:
            self.stdout.write(f"The synthetic cohort already has {have:,} patients.")
            return
        writer = _Writer(_synthetic_users(), timezone.localdate())
        with tqdm(
            total=patients - have, desc="Synthetic patients", unit="patient", file=self.stderr
        ) as bar:
            for start in range(have, patients, BATCH):
                stop = min(start + BATCH, patients)
                writer.write([plan_patient(i, writer.today, seed) for i in range(start, stop)])
                bar.update(stop - start)
        counts = ", ".join(f"{n:,} {name}" for name, n in writer.counts.items())
        self.stdout.write(self.style.SUCCESS(f"Wrote {counts}."))


def _synthetic_users() -> dict[str, Any]:
    """Inactive accounts with no usable password: they own the rows and never sign in."""
    names = [f"syn-oncologist-{k + 1:02d}" for k in range(ONCOLOGISTS)] + ["syn-lab", "syn-nurse"]
    users = {}
    for name in names:
        user, created = get_user_model().objects.get_or_create(
            username=name, defaults={"is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        users[name] = user
    return users


class _Writer:
    """Writes planned patients and everything about them, one batch per transaction."""

    def __init__(self, users: dict[str, Any], today: date) -> None:
        self.users = users
        self.oncologists = [users[f"syn-oncologist-{k + 1:02d}"] for k in range(ONCOLOGISTS)]
        self.today = today
        self.tz = timezone.get_current_timezone()
        self.counts = dict.fromkeys(
            ["patients", "lines", "cycles", "draws", "imaging", "acknowledgements"], 0
        )

    @transaction.atomic
    def write(self, plans: list[PatientPlan]) -> None:
        patients = self._create(Patient, [self._patient(p) for p in plans], "patients")
        line_rows = [
            (plan, lp, TherapyLine(patient=patient, **_line_fields(lp)))
            for plan, patient in zip(plans, patients, strict=True)
            for lp in plan.lines
        ]
        self._create(TherapyLine, [row[2] for row in line_rows], "lines")
        cycles = [
            (plan, lp, cp, _cycle(line, cp)) for plan, lp, line in line_rows for cp in lp.cycles
        ]
        self._create(TreatmentCycle, [row[3] for row in cycles], "cycles")
        self._create(CTCDraw, list(self._draws(plans, patients)), "draws")
        self._create(ImagingAssessment, list(self._imaging(plans, patients)), "imaging")
        self._create(Acknowledgement, list(self._acknowledgements(cycles)), "acknowledgements")
        # bulk_create skips the services: rank the cycles for the worklist as they would.
        refresh_review_ranks([p.pk for p in patients])

    def _create(self, model: Any, rows: list[Any], name: str) -> list[Any]:
        self.counts[name] += len(rows)
        return model.objects.bulk_create(rows, batch_size=2000)

    def _patient(self, plan: PatientPlan) -> Patient:
        return Patient(
            mrn=plan.mrn,
            given_name=plan.given_name,
            family_name=plan.family_name,
            birth_date=plan.birth_date,
            sex=plan.sex,
            cancer_type=plan.cancer_type,
            diagnosed_on=plan.diagnosed_on,
            oncologist=self.oncologists[plan.oncologist],
        )

    def _draws(self, plans: list[PatientPlan], patients: list[Patient]) -> Iterator[CTCDraw]:
        lab = self.users["syn-lab"]
        for plan, patient in zip(plans, patients, strict=True):
            for k, dp in enumerate(plan.draws):
                drawn_at = datetime.combine(dp.drawn_on, time(dp.hour, 10), tzinfo=self.tz)
                yield CTCDraw(
                    patient=patient,
                    drawn_at=drawn_at,
                    blood_volume_ml=dp.volume,
                    status=dp.status,
                    ctc_count=dp.count,
                    accession=f"{plan.mrn}-{k + 1:04d}",
                    comment=dp.comment,
                    entered_by=lab,
                    resulted_at=_resulted_at(drawn_at, dp.status),
                )

    def _imaging(
        self, plans: list[PatientPlan], patients: list[Patient]
    ) -> Iterator[ImagingAssessment]:
        for plan, patient in zip(plans, patients, strict=True):
            for performed_on, modality, response in plan.imaging:
                yield ImagingAssessment(
                    patient=patient,
                    performed_on=performed_on,
                    modality=modality,
                    response=response,
                    entered_by=self.oncologists[plan.oncologist],
                )

    def _acknowledgements(self, cycles: list[tuple[Any, ...]]) -> Iterator[Acknowledgement]:
        nurse = self.users["syn-nurse"]
        for plan, lp, cp, cycle in cycles:
            if lp is plan.lines[-1] and cp.number in plan.acknowledged:
                yield Acknowledgement(
                    cycle=cycle,
                    patient_id=cycle.therapy_line.patient_id,
                    acknowledged_by=nurse,
                    note="Checked with the oncologist.",
                )


def _resulted_at(drawn_at: datetime, status: str) -> datetime | None:
    """When a synthetic result arrived: the lab's turnaround after the draw."""
    return drawn_at + RESULT_TURNAROUND if status == DrawStatus.RESULTED else None


def _line_fields(lp: LinePlan) -> dict[str, Any]:
    return {
        "line_number": lp.number,
        "regimen": lp.regimen,
        "start_date": lp.start,
        "end_date": lp.end,
        "cycle_length_days": lp.length,
        "contains_doxorubicin": lp.doxorubicin,
    }


def _cycle(line: TherapyLine, cp: CyclePlan) -> TreatmentCycle:
    given = cp.status == CycleStatus.GIVEN
    return TreatmentCycle(
        therapy_line=line,
        number=cp.number,
        scheduled_date=cp.day1,
        first_scheduled_date=cp.day1,
        given_date=cp.day1 if given else None,
        status=cp.status,
        status_reason=cp.reason,
    )
