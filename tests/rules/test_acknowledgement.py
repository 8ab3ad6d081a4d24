"""Results to review, what an acknowledgement covers, and the worklist's order (sections 4 and 5).

No database: an acknowledgement is given to the rules as what it recorded (flag codes,
each with the sample it came from) and, for a cycle's, the cycle it was made on.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from patients.rules import (
    RANKS_PER_GROUP,
    AcknowledgementIn,
    CycleAssessment,
    CycleIn,
    DrawAssessment,
    FlagCode,
    acknowledged,
    assess_cycle,
    covers,
    cycle_rank,
    flag_covered,
    results_to_review,
    worklist_sort_key,
)
from tests.rules.helpers import DAY_ONE, assess, cycle, series, tube

START = date(2026, 10, 5)
AFTER = DAY_ONE + timedelta(days=1)


def on(day: int) -> date:
    return DAY_ONE + timedelta(days=day)


def sample_ack(found: DrawAssessment) -> AcknowledgementIn:
    return AcknowledgementIn(cycle_id=None, covers=covers(found.flags))


def cycle_ack(found: CycleAssessment) -> AcknowledgementIn:
    return AcknowledgementIn(cycle_id=found.cycle.id, covers=covers(found.flags))


def evaluate(subject: CycleIn, tubes: list[DrawAssessment], today: date = AFTER) -> CycleAssessment:
    return assess_cycle(subject, tubes, today=today)


@pytest.fixture
def converted() -> list[DrawAssessment]:
    """2 CTC in October, then 12 on 1 December: a high conversion and a rise (review)."""
    return assess([tube(START, 2), tube(on(-2), 12)])


# --- what an acknowledgement records -------------------------------------------------------


def test_an_acknowledgement_records_the_high_and_review_flags_each_with_its_sample() -> None:
    _, later = assess([tube(START, 2), tube(on(-2), 24, volume="5")])

    recorded = covers(later.flags)

    assert recorded == {
        (FlagCode.CONVERSION_TO_UNFAVOURABLE, later.draw.id),
        (FlagCode.RISE_BEYOND_NOISE, later.draw.id),
    }
    assert FlagCode.NON_STANDARD_VOLUME in [f.code for f in later.flags]  # info: not recorded


def test_acknowledging_a_sample_covers_every_cycle_that_shows_its_flags(
    converted: list[DrawAssessment],
) -> None:
    first, second = cycle(DAY_ONE), cycle(on(2))
    ack = sample_ack(converted[1])

    assert acknowledged(converted[1].flags, [ack])
    assert acknowledged(evaluate(first, converted).flags, [ack], cycle_id=first.id)
    assert acknowledged(evaluate(second, converted).flags, [ack], cycle_id=second.id)


def test_acknowledging_a_cycle_covers_its_samples_flags_everywhere_else(
    converted: list[DrawAssessment],
) -> None:
    first, second = cycle(DAY_ONE), cycle(on(2))
    ack = cycle_ack(evaluate(first, converted))

    assert acknowledged(converted[1].flags, [ack])  # off the results to review
    assert acknowledged(evaluate(second, converted).flags, [ack], cycle_id=second.id)


def test_a_cycles_own_flags_are_covered_only_by_an_acknowledgement_of_that_cycle() -> None:
    tubes = assess([tube(on(-3), 20), tube(on(0), 3)])  # discordant in both windows
    first, second = cycle(DAY_ONE), cycle(on(2))
    on_first, on_second = evaluate(first, tubes), evaluate(second, tubes)
    discordant = on_first.flags[0]
    assert discordant.code == FlagCode.DISCORDANT_IN_WINDOW
    assert on_second.flags[0] == discordant  # the same flag, from the same sample

    assert not flag_covered(discordant, [sample_ack(tubes[1])], cycle_id=first.id)
    assert not flag_covered(discordant, [cycle_ack(on_second)], cycle_id=first.id)
    assert flag_covered(discordant, [cycle_ack(on_first)], cycle_id=first.id)
    assert not acknowledged(on_first.flags, [cycle_ack(on_second)], cycle_id=first.id)
    assert acknowledged(on_first.flags, [cycle_ack(on_first)], cycle_id=first.id)


def test_a_missing_draw_acknowledged_on_one_cycle_is_not_acknowledged_on_another() -> None:
    first, second = cycle(DAY_ONE, number=2), cycle(on(21), number=3)
    missed_first = evaluate(first, [], today=on(30))
    missed_second = evaluate(second, [], today=on(30))

    ack = cycle_ack(missed_first)

    assert acknowledged(missed_first.flags, [ack], cycle_id=first.id)
    assert not acknowledged(missed_second.flags, [ack], cycle_id=second.id)


def test_a_new_samples_flags_need_their_own_acknowledgement() -> None:
    _, seen, new = assess(series(9, 10, 11))
    assert seen.flags[0].code == new.flags[0].code == FlagCode.PERSISTENT_UNFAVOURABLE

    ack = sample_ack(seen)

    assert acknowledged(seen.flags, [ack])
    assert not acknowledged(new.flags, [ack])


def test_a_flag_that_changes_code_needs_its_own_acknowledgement() -> None:
    # An earlier result entered later turns a conversion into a persistence.
    first, later = tube(START, 2), tube(on(-2), 9)
    (_, before) = assess([first, later])
    (_, _, after) = assess([first, tube(START + timedelta(days=30), 12), later])
    assert before.flags[0].code == FlagCode.CONVERSION_TO_UNFAVOURABLE
    assert after.flags[0].code == FlagCode.PERSISTENT_UNFAVOURABLE

    assert not acknowledged(after.flags, [sample_ack(before)])


def test_part_of_a_cycles_flags_acknowledged_is_not_enough() -> None:
    # 1 then 9 in one window: the sample converts (high) and rises; the window is discordant.
    tubes = assess([tube(on(-6), 1), tube(on(0), 9)])
    subject = cycle(DAY_ONE)
    found = evaluate(subject, tubes)
    assert [f.code for f in found.flags] == [
        FlagCode.CONVERSION_TO_UNFAVOURABLE,
        FlagCode.RISE_BEYOND_NOISE,
        FlagCode.DISCORDANT_IN_WINDOW,
    ]

    by_sample = sample_ack(tubes[1])

    assert acknowledged(tubes[1].flags, [by_sample])
    assert not acknowledged(found.flags, [by_sample], cycle_id=subject.id)
    assert acknowledged(found.flags, [by_sample, cycle_ack(found)], cycle_id=subject.id)


def test_nothing_to_acknowledge_is_not_acknowledged() -> None:
    tubes = assess([tube(START, 9), tube(on(-2), 0)])  # conversion to favourable: information
    subject = cycle(DAY_ONE)
    found = evaluate(subject, tubes)
    anything = AcknowledgementIn(subject.id, frozenset({(FlagCode.CONVERSION_TO_FAVOURABLE, 1)}))

    assert found.flags and not found.needs_review
    assert not acknowledged(found.flags, [anything], cycle_id=subject.id)
    assert not acknowledged((), [anything])
    assert covers(found.flags) == frozenset()


# --- the worklist's order ------------------------------------------------------------------


def worklist_cases() -> dict[str, tuple[CycleAssessment, bool]]:
    """One upcoming cycle in each rank, with whether it has been acknowledged."""
    high = evaluate(cycle(DAY_ONE), assess([tube(START, 2), tube(on(-2), 12)]))
    review = evaluate(cycle(DAY_ONE), [])  # missing
    info = evaluate(cycle(DAY_ONE), assess([tube(START, 9), tube(on(-2), 0)]))
    due = evaluate(cycle(DAY_ONE), [], today=DAY_ONE)
    not_yet = evaluate(cycle(DAY_ONE), [], today=on(-10))
    quiet = evaluate(cycle(DAY_ONE), assess([tube(on(-2), 1)]))
    return {
        "high": (high, False),
        "review": (review, False),
        "high, acknowledged": (high, True),
        "review, acknowledged": (review, True),
        "info": (info, False),
        "draw due": (due, False),
        "not yet due": (not_yet, False),
        "result without a flag": (quiet, False),
    }


def test_each_cycle_gets_the_rank_of_its_group_and_most_severe_flag() -> None:
    ranks = {name: cycle_rank(*case) for name, case in worklist_cases().items()}

    assert ranks == {
        "high": 0,
        "review": 1,
        "high, acknowledged": RANKS_PER_GROUP + 0,
        "review, acknowledged": RANKS_PER_GROUP + 1,
        "info": RANKS_PER_GROUP + 2,
        "draw due": RANKS_PER_GROUP + 3,
        "not yet due": RANKS_PER_GROUP + 4,
        "result without a flag": RANKS_PER_GROUP + 4,
    }


def test_the_worklist_puts_what_waits_for_review_first_then_severity_then_day_one() -> None:
    due_next_week = evaluate(cycle(on(7)), [], today=on(7))
    rows = {**worklist_cases(), "draw due next week": (due_next_week, False)}

    ordered = sorted(rows, key=lambda name: worklist_sort_key(*rows[name]))

    assert ordered == [
        "high",
        "review",
        "high, acknowledged",
        "review, acknowledged",
        "info",
        "draw due",
        "draw due next week",
        "not yet due",
        "result without a flag",
    ]


def test_a_high_flag_next_week_comes_before_a_draw_due_today() -> None:
    high_next_week = evaluate(cycle(on(7)), assess([tube(START, 2), tube(on(3), 12)]), on(8))
    due_today = evaluate(cycle(DAY_ONE), [], today=DAY_ONE)

    assert worklist_sort_key(high_next_week, False) < worklist_sort_key(due_today, False)
    assert worklist_sort_key(high_next_week, False)[1] == on(7)


# --- results to review ---------------------------------------------------------------------


def test_results_to_review_lists_each_sample_once_and_each_lone_tube_that_is_not_evaluable() -> (
    None
):
    days = [START + timedelta(days=21 * i) for i in range(7)]
    lone_rejected = tube(days[0], None, status="rejected")
    first_of_two, second_of_two = tube(days[1], 9), tube(days[1], 10)
    rejected_beside = tube(days[1], None, status="rejected")
    tubes = [
        lone_rejected,
        first_of_two,
        second_of_two,
        rejected_beside,
        tube(days[2], 1),  # conversion to favourable: information only
        tube(days[3], 2),  # no flag
        tube(days[4], None, status="pending"),
        tube(days[5], None, status="cancelled"),
    ]
    high = tube(days[6], 12)

    found = assess([*tubes, high])

    listed = results_to_review(found)
    assert [t.draw for t in listed] == [lone_rejected, first_of_two, high]
    assert [t.draw for t in found if t.needs_review] == [
        lone_rejected,
        first_of_two,
        second_of_two,
        high,
    ]
