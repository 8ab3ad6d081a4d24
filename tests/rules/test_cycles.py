"""Before each cycle (specification section 4): the window, the state on a given day, its words.

No database, no clock: `today` is an argument. Day 1 is Thursday 3 December 2026, as in
the specification's draw-due example, so the window is Thu 26 Nov to Thu 3 Dec.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from patients.rules import (
    CycleAssessment,
    CycleIn,
    DrawAssessment,
    FlagCode,
    PreCycleState,
    Severity,
    assess_cycle,
    last_day_to_draw,
    phase_days,
    pre_cycle_window,
    state_message,
)
from tests.rules.helpers import DAY_ONE, assess, codes, cycle, tube

OPENS = date(2026, 11, 26)
BEFORE, AFTER = OPENS - timedelta(days=1), DAY_ONE + timedelta(days=1)


def on(day: int) -> date:
    """A day of November or December 2026 by its offset from day 1 (3 December)."""
    return DAY_ONE + timedelta(days=day)


def evaluate(
    subject: CycleIn, tubes: Sequence[DrawAssessment] = (), today: date = AFTER
) -> CycleAssessment:
    return assess_cycle(subject, tubes, today=today)


# --- the window ----------------------------------------------------------------------------


def test_the_window_is_the_seven_days_before_day_one_and_day_one_itself() -> None:
    assert pre_cycle_window(cycle(DAY_ONE)) == (OPENS, DAY_ONE)
    assert pre_cycle_window(cycle(DAY_ONE), 4) == (date(2026, 11, 29), DAY_ONE)


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        pre_cycle_window(cycle(DAY_ONE), -1)
    with pytest.raises(ValueError, match="cannot be negative"):
        assess_cycle(cycle(DAY_ONE), [], today=DAY_ONE, window_days=-1)


@pytest.mark.parametrize(
    ("day", "in_window"), [(-8, False), (-7, True), (-3, True), (0, True), (1, False)]
)
def test_a_sample_counts_for_the_cycle_only_inside_the_window_both_ends_included(
    day: int, in_window: bool
) -> None:
    tubes = assess([tube(on(day), 1)])

    found = evaluate(cycle(DAY_ONE), tubes, today=on(2))

    if in_window:
        assert found.state is PreCycleState.RESULT_IN_WINDOW
        assert found.draw == tubes[0]
    else:
        assert found.state is PreCycleState.MISSING
        assert found.draw is None


def test_the_window_length_comes_from_the_caller() -> None:
    tubes = assess([tube(on(-4), 1)])

    assert assess_cycle(cycle(DAY_ONE), tubes, today=AFTER, window_days=4).draw == tubes[0]
    assert assess_cycle(cycle(DAY_ONE), tubes, today=AFTER, window_days=3).draw is None


def test_a_delayed_cycle_keeps_the_window_of_its_first_planned_day_one() -> None:
    # First planned for 3 December, delayed to 10 December: 26 November to 10 December.
    delayed = cycle(on(7), status="delayed", first_planned=DAY_ONE)
    tubes = assess([tube(on(-6), 2)])

    found = evaluate(delayed, tubes, today=on(8))

    assert found.window == (OPENS, on(7))
    assert found.state is PreCycleState.RESULT_IN_WINDOW
    assert found.draw == tubes[0]


def test_a_cycle_brought_forward_opens_seven_days_before_its_new_day_one() -> None:
    assert pre_cycle_window(cycle(DAY_ONE, first_planned=on(7))) == (OPENS, DAY_ONE)


def test_the_given_date_does_not_move_the_window() -> None:
    given = cycle(DAY_ONE, status="given", given_on=on(2))
    tubes = assess([tube(on(1), 9)])

    found = evaluate(given, tubes, today=on(3))

    assert found.window == (OPENS, DAY_ONE)
    assert found.state is PreCycleState.MISSING


# --- the state on a given day --------------------------------------------------------------


@pytest.mark.parametrize("status", ["planned", "delayed", "given"])
@pytest.mark.parametrize(
    ("today", "state"),
    [
        (BEFORE, PreCycleState.NOT_YET_DUE),
        (OPENS, PreCycleState.DRAW_DUE),
        (DAY_ONE, PreCycleState.DRAW_DUE),
        (AFTER, PreCycleState.MISSING),
    ],
)
def test_without_a_result_a_cycle_is_not_yet_due_then_due_then_missing(
    status: str, today: date, state: PreCycleState
) -> None:
    found = evaluate(cycle(DAY_ONE, status=status, number=3), today=today)

    assert found.state is state
    if state is PreCycleState.MISSING:
        assert codes(found) == [FlagCode.MISSING_PRE_CYCLE_DRAW]
        assert found.severity is Severity.REVIEW
        assert found.needs_review
        assert found.flags[0].message == (
            "No evaluable CTC result in the pre-cycle window of cycle 3 (Thu 26 Nov 2026 to Thu "
            "3 Dec 2026)"
        )
    else:
        assert (found.flags, found.severity, found.needs_review) == ((), None, False)


@pytest.mark.parametrize("today", [BEFORE, OPENS, DAY_ONE, AFTER])
def test_a_cancelled_cycle_owes_nothing(today: date) -> None:
    rejected = assess([tube(on(-2), None, status="rejected")])

    found = evaluate(cycle(DAY_ONE, status="cancelled"), rejected, today=today)

    assert found.state is PreCycleState.NOT_YET_DUE
    assert found.flags == ()


@pytest.mark.parametrize("status", ["planned", "given", "cancelled"])
def test_a_cycle_shows_the_flags_of_the_latest_sample_in_its_window(status: str) -> None:
    tubes = assess([tube(on(-6), 9), tube(on(-2), 12), tube(on(-2), 14)])

    found = evaluate(cycle(DAY_ONE, status=status, given_on=DAY_ONE), tubes)

    assert found.state is PreCycleState.RESULT_IN_WINDOW
    assert found.draw == tubes[1]  # the first tube of the latest sample
    assert found.flags == tubes[1].flags
    assert codes(found) == [FlagCode.PERSISTENT_UNFAVOURABLE]
    assert found.severity is Severity.HIGH


def test_a_result_in_the_window_with_only_information_needs_no_review() -> None:
    tubes = assess([tube(on(-30), 9), tube(on(-3), 0)])

    found = evaluate(cycle(DAY_ONE), tubes)

    assert codes(found) == [FlagCode.CONVERSION_TO_FAVOURABLE]
    assert found.severity is Severity.INFO
    assert not found.needs_review


def test_a_high_result_outside_the_window_does_not_stand_for_the_cycle() -> None:
    tubes = assess([tube(on(-30), 1), tube(on(-8), 30)])

    found = evaluate(cycle(DAY_ONE), tubes)

    assert found.state is PreCycleState.MISSING
    assert codes(found) == [FlagCode.MISSING_PRE_CYCLE_DRAW]


def test_a_rejected_tube_beside_a_result_in_the_window_adds_nothing() -> None:
    tubes = assess([tube(on(-3), 2), tube(on(-3), None, status="rejected")])

    found = evaluate(cycle(DAY_ONE), tubes)

    assert found.state is PreCycleState.RESULT_IN_WINDOW
    assert found.flags == ()


# --- discordant samples --------------------------------------------------------------------


def test_samples_of_both_categories_in_one_window_are_discordant() -> None:
    # 20 CTC/7.5 mL on Monday, 3 on Thursday.
    tubes = assess([tube(on(-3), 20), tube(on(0), 3)])

    found = evaluate(cycle(DAY_ONE), tubes)

    assert codes(found) == [FlagCode.DISCORDANT_IN_WINDOW, FlagCode.CONVERSION_TO_FAVOURABLE]
    discordant = found.flags[0]
    assert discordant.severity is Severity.REVIEW
    assert discordant.source == tubes[1].draw.id
    assert discordant.message == (
        "The samples in the window disagree: 20 on Mon 30 Nov 2026, 3 on Thu 3 Dec 2026 (CTC/7.5 "
        "mL); "
        "the latest is favourable"
    )


def test_a_lower_bound_in_a_discordant_window_reads_as_a_bound() -> None:
    tubes = assess([tube(on(-5), 1000, more_than=True), tube(on(-1), 2)])

    found = evaluate(cycle(DAY_ONE), tubes)

    assert "disagree: > 1000 on Sat 28 Nov 2026, 2 on Wed 2 Dec 2026" in found.flags[0].message


def test_samples_of_one_category_in_a_window_are_not_discordant() -> None:
    tubes = assess([tube(on(-5), 0), tube(on(-1), 4)])

    assert evaluate(cycle(DAY_ONE), tubes).flags == ()


def test_a_cancelled_cycle_or_a_cancer_type_without_a_cut_off_is_never_discordant() -> None:
    breast = assess([tube(on(-3), 20), tube(on(0), 3)])
    lung = assess([tube(on(-3), 20), tube(on(0), 3)], cancer_type="lung")

    cancelled = evaluate(cycle(DAY_ONE, status="cancelled"), breast)
    no_cutoff = evaluate(cycle(DAY_ONE), lung)

    assert codes(cancelled) == [FlagCode.CONVERSION_TO_FAVOURABLE]
    assert codes(no_cutoff) == [FlagCode.NO_CUTOFF]


# --- pending results and tubes that are not evaluable --------------------------------------


@pytest.mark.parametrize("status", ["planned", "given", "cancelled"])
@pytest.mark.parametrize("today", [BEFORE, OPENS, DAY_ONE, AFTER, on(60)])
def test_a_pending_result_beats_everything_but_a_result(status: str, today: date) -> None:
    tubes = assess([tube(on(-4), None, status="rejected"), tube(on(-2), None, status="pending")])

    found = evaluate(cycle(DAY_ONE, status=status), tubes, today=today)

    assert found.state is PreCycleState.RESULT_PENDING
    assert (found.flags, found.severity, found.draw) == ((), None, None)


def test_a_result_beats_a_pending_tube_in_the_same_window() -> None:
    tubes = assess([tube(on(-4), 3), tube(on(-2), None, status="pending")])

    assert evaluate(cycle(DAY_ONE), tubes).state is PreCycleState.RESULT_IN_WINDOW


@pytest.mark.parametrize(
    ("today", "state", "expected"),
    [
        (BEFORE, PreCycleState.NOT_YET_DUE, []),
        (OPENS, PreCycleState.DRAW_DUE, [FlagCode.NOT_EVALUABLE]),
        (DAY_ONE, PreCycleState.DRAW_DUE, [FlagCode.NOT_EVALUABLE]),
        (AFTER, PreCycleState.MISSING, [FlagCode.MISSING_PRE_CYCLE_DRAW, FlagCode.NOT_EVALUABLE]),
    ],
)
def test_a_cycle_is_not_evaluable_only_while_a_draw_is_due_or_missing(
    today: date, state: PreCycleState, expected: list[str]
) -> None:
    tubes = assess([tube(on(-5), None, status="rejected"), tube(on(-2), None, status="failed")])

    found = evaluate(cycle(DAY_ONE), tubes, today=today)

    assert found.state is state
    assert codes(found) == expected
    assert found.needs_review is bool(expected)


def test_not_evaluable_names_each_tube_and_the_cycle_that_needs_a_repeat_draw() -> None:
    tubes = assess([tube(on(-5), None, status="rejected"), tube(on(-2), None, status="failed")])

    found = evaluate(cycle(DAY_ONE, number=4), tubes, today=OPENS)

    (not_evaluable,) = found.flags
    assert not_evaluable.severity is Severity.REVIEW
    assert not_evaluable.source == tubes[1].draw.id
    assert not_evaluable.message == (
        "Not evaluable in the pre-cycle window (rejected on Sat 28 Nov 2026, failed on Tue 1 Dec "
        "2026): "
        "a repeat draw is needed before cycle 4"
    )


def test_an_unknown_cycle_status_is_refused() -> None:
    with pytest.raises(ValueError, match="postponed"):
        evaluate(cycle(DAY_ONE, status="postponed"))


# --- what stands before the cycle, in words ------------------------------------------------


def test_the_last_day_to_draw_is_three_days_before_day_one() -> None:
    assert last_day_to_draw(cycle(DAY_ONE)) == date(2026, 11, 30)


def test_not_yet_due_says_when_the_window_opens() -> None:
    found = evaluate(cycle(DAY_ONE), today=BEFORE)

    assert state_message(found) == "Nothing due yet: the draw window opens Thu 26 Nov 2026"


def test_draw_due_gives_the_window_and_the_last_day_to_draw() -> None:
    found = evaluate(cycle(DAY_ONE), today=OPENS)

    assert state_message(found) == (
        "Draw due: no CTC result yet in the window Thu 26 Nov 2026 to Thu 3 Dec 2026; draw by "
        "Mon 30 Nov 2026 "
        "for the result to be back by day 1 (Thu 3 Dec 2026); a pre-dose draw on day 1 still counts"
    )


def test_result_pending_says_since_the_first_pending_tube_in_the_window() -> None:
    tubes = assess(
        [
            tube(on(-20), None, status="pending"),  # outside the window
            tube(on(-1), None, status="pending"),
            tube(on(-2), None, status="pending"),
        ]
    )

    found = evaluate(cycle(DAY_ONE), tubes)

    assert state_message(found, tubes) == "Result pending since Tue 1 Dec 2026"
    assert state_message(found) == "Result pending"


def test_a_result_or_a_missing_draw_has_no_state_message_its_flags_say_it() -> None:
    with_result = evaluate(cycle(DAY_ONE), assess([tube(on(-2), 1)]))
    missing = evaluate(cycle(DAY_ONE))

    assert with_result.state is PreCycleState.RESULT_IN_WINDOW
    assert state_message(with_result) == ""
    assert missing.state is PreCycleState.MISSING
    assert state_message(missing) == ""


def test_the_phase_days_stand_for_every_day_of_their_phase() -> None:
    subject = cycle(DAY_ONE)
    tubes = assess([tube(on(-4), None, status="rejected")])

    before, inside, after = phase_days(subject)

    assert (before, inside, after) == (BEFORE, DAY_ONE, AFTER)
    for day in (on(n) for n in range(-40, 40)):
        phase = before if day < OPENS else inside if day <= DAY_ONE else after
        assert evaluate(subject, tubes, today=day) == evaluate(subject, tubes, today=phase)
