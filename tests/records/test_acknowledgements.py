"""Acknowledging a result or a cycle: what is recorded, what it covers, what is refused.

An acknowledgement is recorded against what it covers, a sample (by its first
tube) or a cycle, with each flag and the sample it came from; a cycle is
acknowledged when every high or review flag it shows is covered; a new sample's
flags need their own acknowledgement (spec section 5).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from patients import assessment, services
from patients.assessment.results import waiting
from patients.messages import (
    DRAW_IN_ERROR,
    NOTE_REQUIRED,
    NOTHING_TO_ACKNOWLEDGE,
    NOTHING_TO_ACKNOWLEDGE_CYCLE,
    acknowledged_again,
)
from patients.models import Acknowledgement, CTCDraw, TreatmentCycle
from tests import builders

pytestmark = pytest.mark.django_db

DAY1 = date(2026, 3, 3)  # window: 24 Feb to 3 Mar


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _errors(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.message_dict


def _waiting() -> list[int]:
    return [d.pk for d in waiting(CTCDraw.objects.all())]


def _recorded(ack: Acknowledgement) -> list[tuple[str, int | None]]:
    return [(f["code"], f["source"]) for f in ack.flags]


def _cycle_acknowledged(cycle: TreatmentCycle) -> bool:
    cycle = TreatmentCycle.objects.select_related("therapy_line__patient").get(pk=cycle.pk)
    series = assessment.series_for(cycle.therapy_line.patient)
    return series.cycle_acknowledged(series.cycle_assessment(cycle))


def _nothing_saved() -> tuple[int, int]:
    return (Acknowledgement.objects.count(), Acknowledgement.history.count())


@pytest.fixture
def due(line, oncologist) -> TreatmentCycle:
    return builders.cycle(line, oncologist, number=3, scheduled_date=DAY1)


# --- acknowledging a result -------------------------------------------------------------------


def test_a_sample_acknowledged_from_any_tube_is_recorded_against_its_first(
    patient, oncologist, nurse
):
    first = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=4)
    second = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=6)
    assert _waiting() == [first.pk]  # 10 in 15 mL: 5 per 7.5 mL, unfavourable at baseline

    ack = services.acknowledge_result(draw=second, by=nurse, note="Oncologist informed")

    assert (ack.draw_id, ack.cycle_id) == (first.pk, None)
    assert _recorded(ack) == [("baseline_unfavourable", first.pk)]
    assert (ack.acknowledged_by, ack.note) == (nurse, "Oncologist informed")
    assert ack.history.get().history_change_reason == "Flags acknowledged"
    assert _waiting() == []


def test_a_failed_tube_beside_a_sample_acknowledges_that_sample(patient, oncologist, nurse):
    sample = builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=9)
    failed = builders.draw(
        patient, oncologist, drawn_at=_at(date(2026, 2, 1)), status="failed", ctc_count=None
    )

    ack = services.acknowledge_result(draw=failed, by=nurse, note="Seen")

    assert ack.draw_id == sample.pk
    assert _recorded(ack) == [("baseline_unfavourable", sample.pk)]


def test_a_lone_failed_tube_is_acknowledged_itself(patient, oncologist, nurse):
    failed = builders.draw(
        patient, oncologist, drawn_at=_at(date(2026, 2, 1)), status="failed", ctc_count=None
    )
    assert _waiting() == [failed.pk]  # not evaluable: a repeat draw is needed

    ack = services.acknowledge_result(draw=failed, by=nurse, note="Repeat draw booked")

    assert ack.draw_id == failed.pk
    assert _recorded(ack) == [("not_evaluable", failed.pk)]
    assert _waiting() == []


def test_a_result_with_nothing_to_acknowledge_is_refused_and_nothing_saved(
    patient, oncologist, nurse
):
    favourable = builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=1)
    before = CTCDraw.objects.values_list("review_rank", "review_acknowledged").get()

    errors = _errors(lambda: services.acknowledge_result(draw=favourable, by=nurse, note="Seen"))

    assert errors == {"non_field_errors": [NOTHING_TO_ACKNOWLEDGE]}
    assert _nothing_saved() == (0, 0)
    assert CTCDraw.objects.values_list("review_rank", "review_acknowledged").get() == before


@pytest.mark.parametrize("note", ["", "   ", None])
def test_a_blank_note_is_refused_and_nothing_saved(patient, oncologist, nurse, note):
    high = builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=40)

    errors = _errors(lambda: services.acknowledge_result(draw=high, by=nurse, note=note))

    assert errors == {"note": [NOTE_REQUIRED]}
    assert _nothing_saved() == (0, 0)
    assert _waiting() == [high.pk]


def test_a_draw_entered_in_error_cannot_be_acknowledged(patient, oncologist, nurse):
    wrong = builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=40)
    services.mark_draw_entered_in_error(
        draw=wrong, version=builders.version_of(wrong), by=oncologist, reason="Wrong patient"
    )

    errors = _errors(lambda: services.acknowledge_result(draw=wrong, by=nurse, note="Seen"))

    assert errors == {"non_field_errors": [DRAW_IN_ERROR]}
    assert _nothing_saved() == (0, 0)


def test_an_anonymous_user_cannot_acknowledge(patient, oncologist):
    high = builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=40)

    with pytest.raises(ValueError):
        services.acknowledge_result(draw=high, by=AnonymousUser(), note="Seen")
    assert _nothing_saved() == (0, 0)


# --- what an acknowledgement covers ------------------------------------------------------------


def test_acknowledging_a_sample_covers_the_cycle_that_shows_it(due, patient, oncologist, nurse):
    builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=1)
    high = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=9)
    assert not _cycle_acknowledged(due)

    services.acknowledge_result(draw=high, by=nurse, note="Oncologist informed")

    assert _cycle_acknowledged(due)


def test_acknowledging_a_cycle_takes_its_sample_off_the_results_to_review(
    due, patient, oncologist, nurse
):
    builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=1)
    high = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=9)
    assert _waiting() == [high.pk]

    ack = services.acknowledge_cycle(cycle=due, by=nurse, note="Oncologist informed")

    assert (ack.cycle_id, ack.draw_id) == (due.pk, None)
    assert _recorded(ack) == [
        ("conversion_to_unfavourable", high.pk),
        ("rise_beyond_noise", high.pk),
    ]
    assert _waiting() == []
    assert _cycle_acknowledged(due)


def test_a_new_samples_flags_are_not_covered(due, patient, oncologist, nurse):
    builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=1)
    first = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(5)), ctc_count=9)
    services.acknowledge_cycle(cycle=due, by=nurse, note="Oncologist informed")

    newer = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(1)), ctc_count=30)

    assert not _cycle_acknowledged(due)  # it shows the newer sample now: persistent, unseen
    assert _waiting() == [newer.pk]
    assert first.pk not in _waiting()


def test_a_cycles_own_flag_is_covered_only_by_acknowledging_the_cycle(
    due, patient, oncologist, nurse
):
    high = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(6)), ctc_count=20)
    builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(2)), ctc_count=1)
    # The latest sample is favourable (info), the earlier one unfavourable: they disagree.
    flags = {f.code for f in assessment.series_for(patient).cycle_assessment(due).flags}
    assert flags == {"conversion_to_favourable", "discordant_in_window"}

    services.acknowledge_result(draw=high, by=nurse, note="Seen the 20")

    assert not _cycle_acknowledged(due)  # the disagreement is the cycle's to acknowledge
    services.acknowledge_cycle(cycle=due, by=nurse, note="Repeat draw before day 1")
    assert _cycle_acknowledged(due)


def test_a_cycle_with_nothing_to_review_is_not_acknowledged(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=1)

    assert not _cycle_acknowledged(due)  # no high or review flag: nothing to acknowledge


def test_flags_stay_after_an_acknowledgement(due, patient, oncologist, nurse):
    builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=1)
    high = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=9)

    services.acknowledge_result(draw=high, by=nurse, note="Seen")

    series = assessment.series_for(patient)
    assert series.by_draw_id[high.pk].needs_review  # a property of the result
    assert series.cycle_assessment(due).severity == "high"
    (ack,) = series.acknowledgements_of_result(series.by_draw_id[high.pk])
    assert ack.acknowledged_by == nurse


# --- a delay keeps the window -----------------------------------------------------------------


def test_a_delayed_cycle_keeps_the_draw_taken_for_its_original_day_1(
    due, line, patient, oncologist
):
    after = builders.cycle(line, oncologist, number=4, scheduled_date=DAY1 + timedelta(21))
    draw = builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(4)), ctc_count=1)

    services.delay_cycle_and_following(
        cycle=due,
        version=builders.version_of(due),
        by=oncologist,
        new_date=DAY1 + timedelta(14),
        reason="Neutropenia",
    )

    series = assessment.series_for(patient)
    delayed = TreatmentCycle.objects.get(pk=due.pk)
    found = series.cycle_assessment(delayed)
    assert found.window == (DAY1 - timedelta(7), DAY1 + timedelta(14))  # opens as first planned
    assert (found.state, found.draw.draw.id) == ("result_in_window", draw.pk)
    moved = series.cycle_assessment(TreatmentCycle.objects.get(pk=after.pk))
    assert moved.window == (DAY1 + timedelta(14), DAY1 + timedelta(35))
    assert delayed.window_opens == DAY1 - timedelta(7)  # the stored rank's window too
    assert TreatmentCycle.objects.values_list("first_scheduled_date", "scheduled_date").get(
        pk=due.pk
    ) == (DAY1, DAY1 + timedelta(14))


def test_correcting_a_planned_day_1_moves_its_window(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(4)), ctc_count=1)

    services.update_cycle(
        cycle=due,
        version=builders.version_of(due),
        by=oncologist,
        changes={"scheduled_date": DAY1 + timedelta(14)},
        reason="Entered the wrong week",
    )

    found = assessment.series_for(patient).cycle_assessment(TreatmentCycle.objects.get(pk=due.pk))
    assert found.window == (DAY1 + timedelta(7), DAY1 + timedelta(14))
    assert found.state == "missing"  # the draw was for no planned date of this cycle


# --- what is refused: nothing to acknowledge, and the same acknowledgement twice ---------------


def test_a_cycle_with_nothing_to_acknowledge_is_refused_as_a_result_is(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=1)

    errors = _errors(lambda: services.acknowledge_cycle(cycle=due, by=oncologist, note="Seen"))

    assert errors == {"non_field_errors": [NOTHING_TO_ACKNOWLEDGE_CYCLE]}
    assert _nothing_saved() == (0, 0)


def test_the_same_person_acknowledging_a_result_again_within_minutes_is_refused(
    patient, oncologist, nurse
):
    high = builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=40)
    first = services.acknowledge_result(draw=high, by=nurse, note="Oncologist informed")

    errors = _errors(lambda: services.acknowledge_result(draw=high, by=nurse, note="Again"))

    at = timezone.localtime(first.acknowledged_at).strftime("%H:%M")
    assert errors == {"non_field_errors": [acknowledged_again("this result", at)]}
    assert "less than 10 minutes ago" in errors["non_field_errors"][0]
    assert _nothing_saved() == (1, 1)


def test_the_same_person_acknowledging_a_cycle_again_within_minutes_is_refused(
    due, patient, oncologist, nurse
):
    builders.draw(patient, oncologist, drawn_at=_at(DAY1 - timedelta(3)), ctc_count=40)
    services.acknowledge_cycle(cycle=due, by=nurse, note="Oncologist informed")

    errors = _errors(lambda: services.acknowledge_cycle(cycle=due, by=nurse, note="Again"))

    assert "You acknowledged this cycle at" in errors["non_field_errors"][0]
    assert _nothing_saved() == (1, 1)


def test_someone_else_or_the_same_person_later_may_acknowledge_again(patient, oncologist, nurse):
    high = builders.draw(patient, oncologist, drawn_at=_at(date(2026, 2, 1)), ctc_count=40)
    first = services.acknowledge_result(draw=high, by=nurse, note="Oncologist informed")

    services.acknowledge_result(draw=high, by=oncologist, note="Seen; imaging booked")
    # Eleven minutes later (the column cannot be edited through the services).
    Acknowledgement.objects.filter(pk=first.pk).update(
        acknowledged_at=first.acknowledged_at - timedelta(minutes=11)
    )
    services.acknowledge_result(draw=high, by=nurse, note="Patient called back")

    assert Acknowledgement.objects.count() == 3
