"""`manage.py acknowledge_history`: the results from before go-live acknowledged at once.

Results are built through the services, so their stored ranks are the ones the
services keep; only `resulted_at` is set by hand, to put a result before or on
the go-live day.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from patients import services
from patients.models import AccessAction, AccessEvent, Acknowledgement, CTCDraw, Patient
from tests import builders

pytestmark = pytest.mark.django_db

NOTE = "Reviewed on paper before go-live (clinic meeting 2026-11-30)"


@pytest.fixture
def today() -> date:
    return timezone.localdate()


def _patient(by, family: str) -> Patient:
    return builders.patient(by, family_name=family, oncologist=by)


def _resulted(draw: CTCDraw, at: datetime) -> CTCDraw:
    CTCDraw.objects.filter(pk=draw.pk).update(resulted_at=at)
    draw.refresh_from_db()
    return draw


def _old_high(by, patient: Patient, today: date) -> CTCDraw:
    """A high result drawn and resulted 40 days ago."""
    day = today - timedelta(days=40)
    return _resulted(builders.high_result(by, patient, day), builders.local_at(day, 15))


def _old_review(by, patient: Patient, today: date, days: int = 30) -> CTCDraw:
    day = today - timedelta(days=days)
    return _resulted(builders.review_result(by, patient, day), builders.local_at(day, 15))


def _waiting_ids() -> list[int]:
    return sorted(
        CTCDraw.objects.filter(
            review_rank__isnull=False, review_acknowledged=False, entered_in_error=False
        ).values_list("pk", flat=True)
    )


def _run(*args: str) -> str:
    out = StringIO()
    call_command("acknowledge_history", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _events() -> list[AccessEvent]:
    return list(AccessEvent.objects.filter(action=AccessAction.BULK_ACKNOWLEDGEMENT))


@pytest.fixture
def history(oncologist, today):
    """Two patients with results from before go-live, one with a result from today."""
    first, second = _patient(oncologist, "Ash"), _patient(oncologist, "Birch")
    made = {
        "first": [_old_high(oncologist, first, today), _old_review(oncologist, first, today, 10)],
        "second": [_old_review(oncologist, second, today)],
        # Reported today: after the go-live day's start, it stays for a nurse to review.
        "today": [builders.review_result(oncologist, _patient(oncologist, "Cedar"), today)],
    }
    made["patients"] = [first, second]
    return made


def test_a_dry_run_says_how_many_per_patient_and_changes_nothing(nurse, history, today):
    before = _waiting_ids()

    out = _run("--before", f"{today:%Y-%m-%d}", "--user", nurse.username, "--note", NOTE)

    first, second = history["patients"]
    assert f"patient {first.pk}: 2 results" in out
    assert f"patient {second.pk}: 1 result\n" in out
    assert f"would acknowledge 3 results of 2 patients reported before {today:%Y-%m-%d}" in out
    assert (_waiting_ids(), Acknowledgement.objects.count(), _events()) == (before, 0, [])


def test_it_acknowledges_what_was_reported_before_the_day_as_the_user_with_the_note(
    nurse, history, today
):
    out = _run("--before", f"{today:%Y-%m-%d}", "--user", nurse.username, "--note", NOTE, "--apply")

    assert "Acknowledged 3 results of 2 patients" in out
    # Only the result reported today still waits for review.
    assert _waiting_ids() == [d.pk for d in history["today"]]
    acks = list(Acknowledgement.objects.order_by("draw_id"))
    old = history["first"] + history["second"]
    assert [a.draw_id for a in acks] == sorted(d.pk for d in old)
    assert {(a.acknowledged_by_id, a.note) for a in acks} == {(nurse.pk, NOTE)}
    high = next(a for a in acks if a.draw_id == history["first"][0].pk)
    assert {f["code"] for f in high.flags} >= {"conversion_to_unfavourable"}
    # The same history row as a person's acknowledgement: who, and why.
    rows = Acknowledgement.history.filter(history_type="+")
    assert {(r.history_user_id, r.history_change_reason) for r in rows} == {
        (nurse.pk, "Flags acknowledged")
    }
    assert rows.count() == 3


def test_the_run_is_one_access_log_event_naming_the_results_and_patients(nurse, history, today):
    _run("--before", f"{today:%Y-%m-%d}", "--user", nurse.username, "--note", NOTE, "--apply")

    (event,) = _events()
    first, second = history["patients"]
    draws = sorted(d.pk for d in history["first"] + history["second"])
    assert event.user_id == nurse.pk
    assert event.patient_id is None  # two patients: named in the target
    assert event.target == (
        f"results reported before {today:%Y-%m-%d} acknowledged in bulk: 3 results of "
        f"2 patients; draws {', '.join(map(str, draws))}; patients {first.pk}, {second.pk}"
    )


def test_running_it_again_acknowledges_nothing_more(nurse, history, today):
    args = ("--before", f"{today:%Y-%m-%d}", "--user", nurse.username, "--note", NOTE, "--apply")
    _run(*args)

    out = _run(*args)

    assert "Nothing to acknowledge" in out
    assert (Acknowledgement.objects.count(), len(_events())) == (3, 1)


def test_a_pooled_sample_is_one_acknowledgement_of_its_first_tube(nurse, oncologist, today):
    patient = _patient(oncologist, "Pool")
    drawn = builders.local_at(today - timedelta(days=20))
    first = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=6)
    second = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=7)
    CTCDraw.objects.filter(pk__in=[first.pk, second.pk]).update(resulted_at=drawn)
    assert _waiting_ids()

    _run("--before", f"{today:%Y-%m-%d}", "--user", nurse.username, "--note", NOTE, "--apply")

    assert list(Acknowledgement.objects.values_list("draw_id", flat=True)) == [first.pk]
    assert _waiting_ids() == []


def test_a_result_someone_acknowledged_already_is_left_as_it_is(nurse, oncologist, history, today):
    done = services.acknowledge_result(draw=history["second"][0], by=oncologist, note="Seen")

    _run("--before", f"{today:%Y-%m-%d}", "--user", nurse.username, "--note", NOTE, "--apply")

    assert Acknowledgement.objects.filter(draw_id=history["second"][0].pk).get() == done
    assert Acknowledgement.objects.count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--note", "  "], "--note: write why"),
        (["--before", "2026-13-01"], "is not a date"),
        (["--user", "nobody"], "no user 'nobody'"),
        (["--user", "oscar"], "'oscar' may not acknowledge results"),
    ],
)
def test_it_refuses_without_a_note_a_date_or_a_user_who_may_acknowledge(
    nurse, outsider, history, today, args, message
):
    given = {"--before": f"{today:%Y-%m-%d}", "--user": nurse.username, "--note": NOTE}
    given.update(dict(zip(args[::2], args[1::2], strict=True)))

    with pytest.raises(CommandError, match=message):
        _run(*[part for pair in given.items() for part in pair], "--apply")

    assert (Acknowledgement.objects.count(), _events()) == (0, [])


def test_it_refuses_a_day_in_the_future(nurse, history, today):
    tomorrow = today + timedelta(days=1)

    with pytest.raises(CommandError, match="is in the future"):
        _run(
            "--before", f"{tomorrow:%Y-%m-%d}", "--user", nurse.username, "--note", NOTE, "--apply"
        )

    assert Acknowledgement.objects.count() == 0


def test_the_use_case_refuses_a_blank_note_itself(nurse, history, today):
    with pytest.raises(ValidationError) as refused:
        services.acknowledge_backlog(before=today, by=nurse, note=" ")

    assert list(refused.value.message_dict) == ["note"]
    assert Acknowledgement.objects.count() == 0
