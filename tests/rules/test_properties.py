"""Properties of the rules over generated patients (Hypothesis), no database.

What must hold whatever the patient: the order tubes arrive in changes nothing;
splitting one venepuncture into more tubes changes no category, no category flag
and no rise; allowing for replicate variation only ever removes a rise; and the
words and flags stay within what the specification allows. A cycle assessed once
for its three phases (`assess_cycle_phases`) is assessed as on each phase's day.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from patients.rules import (
    AcknowledgementIn,
    CycleIn,
    DrawIn,
    FlagCode,
    LineIn,
    SampleAssessment,
    Settings,
    acknowledged,
    assess_cycle,
    assess_cycle_phases,
    assess_samples,
    covers,
    cycle_rank,
    phase_days,
    pool,
)
from tests.rules.helpers import CUTOFFS, assess, codes, cycle, line, next_id

START = date(2026, 1, 5)
PLUS_ONE = timezone(timedelta(hours=1))
CANCER_TYPES = ["breast", "prostate", "colorectal", "lung"]
STATUSES = ["resulted"] * 6 + ["rejected", "failed", "pending", "cancelled"]
VOLUMES = ["7.5", "7.5", "7.5", "5", "10", "3.75", "2.5", "1.0"]
CATEGORY_FLAGS = frozenset(
    {
        FlagCode.BASELINE_UNFAVOURABLE,
        FlagCode.CONVERSION_TO_UNFAVOURABLE,
        FlagCode.PERSISTENT_UNFAVOURABLE,
        FlagCode.CONVERSION_TO_FAVOURABLE,
    }
)
FORBIDDEN_WORDS = ("normal", "negative", "progression", "change therapy")


Patient = tuple[list[DrawIn], list[LineIn], list[CycleIn], str]


def make_tube(
    instant: datetime, count: int | None, volume: str, *, status: str, censored: bool = False
) -> DrawIn:
    return DrawIn(
        id=next_id(),
        drawn_at=instant,
        drawn_on=instant.astimezone(UTC).date(),
        blood_volume_ml=Decimal(volume),
        status=status,
        ctc_count=count,
        count_qualifier=">" if censored else "",
    )


def least_bound(cancer_type: str, volume: str) -> int:
    """The smallest lower bound entry accepts in this volume (at or above the cut-off)."""
    return math.ceil(CUTOFFS.get(cancer_type, 0) * Decimal(volume) / Decimal("7.5"))


@st.composite
def counts(draw: st.DrawFn, cancer_type: str, volume: str) -> tuple[int, bool]:
    """A count, and whether it is a lower bound (rarely)."""
    if draw(st.integers(0, 9)) == 0:
        least = least_bound(cancer_type, volume)
        return draw(st.integers(least, least + 500)), True
    return draw(st.one_of(st.integers(0, 12), st.integers(0, 80))), False


@st.composite
def lines_and_cycles(draw: st.DrawFn) -> tuple[list[LineIn], list[CycleIn]]:
    lines = [
        line(line_id, START + timedelta(days=draw(st.integers(-20, 200))), doxorubicin=dox)
        for line_id, dox in enumerate(draw(st.lists(st.booleans(), max_size=2)), start=1)
    ]
    cycles = [
        cycle(
            START + timedelta(days=day),
            status="given",
            given_on=START + timedelta(days=day),
            line_id=draw(st.sampled_from([ln.id for ln in lines])),
        )
        for day in (draw(st.lists(st.integers(0, 220), max_size=6)) if lines else [])
    ]
    return lines, cycles


@st.composite
def patients(draw: st.DrawFn) -> Patient:
    """Tubes at a few instants, often several at one instant, some written in UTC+1."""
    cancer_type = draw(st.sampled_from(CANCER_TYPES))
    tubes = []
    for day in draw(st.lists(st.integers(0, 220), min_size=1, max_size=8, unique=True)):
        instant = datetime.combine(START + timedelta(days=day), datetime.min.time(), UTC)
        instant += timedelta(hours=draw(st.sampled_from([9, 14])))
        for _ in range(draw(st.integers(1, 3))):
            status = draw(st.sampled_from(STATUSES))
            volume = draw(st.sampled_from(VOLUMES))
            count, censored = draw(counts(cancer_type, volume))
            written = instant.astimezone(PLUS_ONE) if draw(st.booleans()) else instant
            resulted = status == "resulted"
            tubes.append(
                make_tube(
                    written,
                    count if resulted else None,
                    volume,
                    status=status,
                    censored=censored and resulted,
                )
            )
    lines, cycles = draw(lines_and_cycles())
    return tubes, lines, cycles, cancer_type


# --- pooling -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(patients(), st.randoms(use_true_random=False))
def test_the_order_tubes_arrive_in_never_changes_an_assessment(
    patient: Patient, rng: random.Random
) -> None:
    tubes, lines, cycles, cancer_type = patient
    shuffled = rng.sample(tubes, len(tubes))

    found = assess(shuffled, lines, cycles, cancer_type=cancer_type)

    assert found == assess(tubes, lines, cycles, cancer_type=cancer_type)
    assert [a.draw for a in found] == sorted(tubes, key=lambda t: (t.drawn_at, t.id))


@st.composite
def split_patients(draw: st.DrawFn) -> tuple[list[DrawIn], list[DrawIn], Patient]:
    """One patient twice: each venepuncture as one tube, and with one split into 2-3 tubes.

    The split tubes are drawn at the same instant, their volumes sum to the single
    tube's and their counts to its count (a lower bound stays a lower bound).
    """
    cancer_type = draw(st.sampled_from(CANCER_TYPES))
    size = draw(st.integers(1, 6))
    split_at = draw(st.integers(0, size - 1))
    whole, split = [], []
    for index in range(size):
        instant = datetime(2026, 1, 5, 9, tzinfo=UTC) + timedelta(days=21 * index)
        parts = draw(st.integers(2, 3)) if index == split_at else 1
        volumes = [draw(st.sampled_from(["1.25", "2.5", "3.75", "5", "7.5"])) for _ in range(parts)]
        total = sum((Decimal(v) for v in volumes), Decimal(0))
        count, censored = draw(counts(cancer_type, str(total)))
        cuts = sorted(draw(st.lists(st.integers(0, count), min_size=parts - 1, max_size=parts - 1)))
        shares = [b - a for a, b in zip([0, *cuts], [*cuts, count], strict=True)]
        bound_at = draw(st.integers(0, parts - 1))  # which split tube carries the ">"
        whole.append(make_tube(instant, count, str(total), status="resulted", censored=censored))
        split += [
            make_tube(
                instant, share, volume, status="resulted", censored=censored and i == bound_at
            )
            for i, (share, volume) in enumerate(zip(shares, volumes, strict=True))
        ]
    lines, cycles = draw(lines_and_cycles())
    return whole, split, (whole, lines, cycles, cancer_type)


def _kept(found: SampleAssessment) -> tuple[object, ...]:
    """What splitting must not change: the category, its flag and the rise flag."""
    flags = [
        (f.code, f.severity, f.message)
        for f in found.flags
        if f.code in CATEGORY_FLAGS or f.code == FlagCode.RISE_BEYOND_NOISE
    ]
    return (found.category, found.p_at_or_above_cutoff, found.rate_per_7_5_ml, flags)


@settings(max_examples=200, deadline=None)
@given(split_patients())
def test_splitting_a_sample_into_tubes_never_changes_its_category_or_its_flags(
    patient: tuple[list[DrawIn], list[DrawIn], Patient],
) -> None:
    whole, split, (_, lines, cycles, cancer_type) = patient
    cutoff = CUTOFFS.get(cancer_type)

    as_one = assess_samples(pool(whole), lines, cycles, cancer_type=cancer_type, cutoff=cutoff)
    as_tubes = assess_samples(pool(split), lines, cycles, cancer_type=cancer_type, cutoff=cutoff)

    assert [_kept(s) for s in as_tubes] == [_kept(s) for s in as_one]


# --- replicate variation -------------------------------------------------------------------


@st.composite
def series_of_samples(draw: st.DrawFn) -> tuple[list[DrawIn], list[LineIn], str]:
    cancer_type = draw(st.sampled_from(CANCER_TYPES))
    tubes = []
    for index in range(draw(st.integers(1, 10))):
        volume = draw(st.sampled_from(VOLUMES))
        count, censored = draw(counts(cancer_type, volume))
        instant = datetime(2026, 1, 5, 9, tzinfo=UTC) + timedelta(days=21 * index)
        tubes.append(make_tube(instant, count, volume, status="resulted", censored=censored))
    lines, _ = draw(lines_and_cycles())
    return tubes, lines, cancer_type


@settings(max_examples=200, deadline=None)
@given(series_of_samples(), st.floats(min_value=0.01, max_value=1.5))
def test_allowing_for_replicate_variation_never_adds_a_rise(
    patient: tuple[list[DrawIn], list[LineIn], str], cv: float
) -> None:
    tubes, lines, cancer_type = patient

    exact = assess(tubes, lines, cancer_type=cancer_type)
    wider = assess(tubes, lines, cancer_type=cancer_type, settings=Settings(extra_poisson_cv=cv))

    for poisson, replicate in zip(exact, wider, strict=True):
        if FlagCode.RISE_BEYOND_NOISE in codes(replicate):
            assert FlagCode.RISE_BEYOND_NOISE in codes(poisson)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=1, max_size=12), st.sampled_from(VOLUMES))
def test_counts_that_never_rise_never_get_a_rise_flag(counts_: list[int], volume: str) -> None:
    falling = sorted(counts_, reverse=True)
    tubes = [
        make_tube(
            datetime(2026, 1, 5, 9, tzinfo=UTC) + timedelta(days=7 * i),
            c,
            volume,
            status="resulted",
        )
        for i, c in enumerate(falling)
    ]

    assert not any(FlagCode.RISE_BEYOND_NOISE in codes(a) for a in assess(tubes))


# --- what every assessment keeps to --------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(patients())
def test_every_tube_has_at_most_one_category_flag_and_a_tube_that_is_not_evaluable_none(
    patient: Patient,
) -> None:
    tubes, lines, cycles, cancer_type = patient

    for found in assess(tubes, lines, cycles, cancer_type=cancer_type):
        assert len(CATEGORY_FLAGS.intersection(codes(found))) <= 1
        if not found.evaluable:
            assert (found.rate_per_7_5_ml, found.category, found.ci95) == (None, None, None)
            assert set(codes(found)) <= {FlagCode.NOT_EVALUABLE}


CHANCE = re.compile(r"about \d{1,3}%")


@settings(max_examples=150, deadline=None)
@given(patients(), st.integers(-10, 240))
def test_no_message_uses_a_forbidden_word_or_a_percentage_change(
    patient: Patient, today_offset: int
) -> None:
    tubes, lines, cycles, cancer_type = patient
    today = START + timedelta(days=today_offset)
    found = assess(tubes, lines, cycles, cancer_type=cancer_type)
    upcoming = [cycle(c.scheduled_date, line_id=c.line_id) for c in cycles]

    flags = [f for a in found for f in a.flags]
    flags += [f for c in [*cycles, *upcoming] for f in assess_cycle(c, found, today=today).flags]

    for flag_ in flags:
        lowered = flag_.message.lower()
        assert not any(word in lowered for word in FORBIDDEN_WORDS), flag_.message
        # The only per cent shown is the chance near the cut-off, never a change.
        assert "%" not in CHANCE.sub("", flag_.message), flag_.message


@settings(max_examples=150, deadline=None)
@given(patients())
def test_none_detected_in_seven_and_a_half_ml_is_said_only_of_a_zero_in_seven_and_a_half_ml(
    patient: Patient,
) -> None:
    tubes, lines, cycles, cancer_type = patient
    samples = pool(tubes)
    zero_in_standard = any(
        s.count == 0 and not s.censored and s.volume_ml == Decimal("7.5") for s in samples
    )

    found = assess(tubes, lines, cycles, cancer_type=cancer_type)

    if not zero_in_standard:
        for flag_ in (f for a in found for f in a.flags):
            assert "none detected in 7.5 mL" not in flag_.message, flag_.message


# --- a cycle's phases ---------------------------------------------------------------------


@st.composite
def cycles_around(draw: st.DrawFn, tubes: list[DrawIn], lines: list[LineIn]) -> list[CycleIn]:
    """Cycles of every status, their day 1 near the tubes' days (often on one), some delayed."""
    days = [t.drawn_on for t in tubes]
    found = []
    for _ in range(draw(st.integers(1, 6))):
        near = draw(st.sampled_from(days)) + timedelta(days=draw(st.integers(-9, 9)))
        delayed_by = draw(st.sampled_from([0, 0, 3, 10]))
        status = draw(st.sampled_from(["planned", "delayed", "given", "cancelled"]))
        found.append(
            CycleIn(
                id=next_id(),
                line_id=lines[0].id if lines else 1,
                number=draw(st.integers(1, 12)),
                scheduled_date=near + timedelta(days=delayed_by),
                given_date=near if status == "given" else None,
                status=status,
                first_scheduled_date=near if delayed_by else None,
            )
        )
    return found


@settings(max_examples=300, deadline=None)
@given(st.data(), patients(), st.integers(0, 14))
def test_a_cycle_assessed_once_for_its_phases_is_assessed_as_on_each_phase_s_day(
    data: st.DataObject, patient: Patient, window_days: int
) -> None:
    tubes, lines, doses, cancer_type = patient
    found = assess(tubes, lines, doses, cancer_type=cancer_type)
    reviewed = [f for a in found for f in a.flags]

    for subject in data.draw(cycles_around(tubes, lines)):
        on_each_day = tuple(
            assess_cycle(subject, found, today=day, window_days=window_days)
            for day in phase_days(subject, window_days)
        )
        once = assess_cycle_phases(subject, found, window_days)
        assert once == on_each_day
        # And so the stored ranks, whatever has been acknowledged.
        own = [f for c in on_each_day for f in c.flags]
        flags = reviewed + own
        made = data.draw(st.lists(st.sampled_from(flags), max_size=4)) if flags else []
        acks = [AcknowledgementIn(data.draw(st.sampled_from([None, subject.id])), covers(made))]
        assert [cycle_rank(c, acknowledged(c.flags, acks, cycle_id=subject.id)) for c in once] == [
            cycle_rank(c, acknowledged(c.flags, acks, cycle_id=subject.id)) for c in on_each_day
        ]
