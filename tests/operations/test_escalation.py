"""Escalation (spec section 5): a high result unacknowledged for 24 hours is e-mailed, once.

The logic runs against Django's locmem outbox; one test sends through Django's
SMTP backend to a real SMTP server (aiosmtpd) on a loopback port, and one to a
port where nothing listens. Results are built through the services, so their
stored ranks are the ones the services keep; only `resulted_at` is set by hand,
to put a result exactly on either side of the delay.
"""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import psycopg2
import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from patients import services
from patients.models import AccessAction, AccessEvent, CTCDraw, Patient
from patients.roles import NURSE, ONCOLOGIST
from patients.services.escalation import ESCALATION_ACCOUNT, RUN_LOCK_KEY
from patients.services.records import acknowledge_result
from tests import builders

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
DELAY = timedelta(hours=24)  # CTC_ESCALATE_AFTER_HOURS' default
BASE_URL = "https://ctctrack.hospital.example"
RESULTS_LINK = f"{BASE_URL}/results/"
HIGH, REVIEW = 0, 1


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.CTC_ESCALATE_AFTER_HOURS = 24
    settings.CTCTRACK_BASE_URL = BASE_URL


def _oncologist(username: str, *, email: str, active: bool = True):
    user = builders.user_with_role(ONCOLOGIST, username=username)
    user.email, user.is_active = email, active
    user.save()
    return user


@pytest.fixture
def treating(db):
    return _oncologist("tom", email="tom@hospital.example")


@pytest.fixture
def colleague(db):
    return _oncologist("cora", email="cora@hospital.example")


def _patient(by, *, oncologist=None, mrn: str = "MRN-ESC-1", family_name: str = "Quill") -> Patient:
    return builders.patient(
        by,
        mrn=mrn,
        given_name="Rosalind",
        family_name=family_name,
        birth_date=date(1958, 4, 9),
        cancer_type="breast",
        oncologist=oncologist,
    )


def _result(patient: Patient, by, counts: tuple[int, int], *, resulted_at: datetime) -> CTCDraw:
    """Two samples a week apart; the second stands for the result, resulted at `resulted_at`."""
    builders.draw(patient, by, drawn_at=date(2026, 11, 2), ctc_count=counts[0])
    second = builders.draw(patient, by, drawn_at=date(2026, 11, 9), ctc_count=counts[1])
    CTCDraw.objects.filter(pk=second.pk).update(resulted_at=resulted_at)
    second.refresh_from_db()
    return second


def _high(patient: Patient, by, *, resulted_at: datetime = NOW - DELAY) -> CTCDraw:
    """1 CTC then 30 CTC per 7.5 mL (breast, cut-off 5): a clear conversion, a high flag."""
    draw = _result(patient, by, (1, 30), resulted_at=resulted_at)
    assert draw.review_rank == HIGH and not draw.review_acknowledged
    return draw


def _escalated_at(draw: CTCDraw) -> datetime | None:
    return CTCDraw.objects.values_list("escalated_at", flat=True).get(pk=draw.pk)


def _events() -> list[AccessEvent]:
    return list(AccessEvent.objects.filter(action=AccessAction.ESCALATION))


# --- when -----------------------------------------------------------------------------


def test_a_high_result_is_not_escalated_a_minute_before_the_delay(treating):
    draw = _high(_patient(treating, oncologist=treating), treating, resulted_at=NOW - DELAY)

    run = services.escalate_flags(now=NOW - timedelta(minutes=1))

    assert run.draw_ids == ()
    assert mail.outbox == []
    assert _escalated_at(draw) is None


def test_a_high_result_is_escalated_when_the_delay_has_passed(treating):
    draw = _high(_patient(treating, oncologist=treating), treating, resulted_at=NOW - DELAY)

    run = services.escalate_flags(now=NOW)

    assert run.draw_ids == (draw.pk,)
    assert run.recipients == {treating.pk: 1}
    assert [m.to for m in mail.outbox] == [["tom@hospital.example"]]
    assert _escalated_at(draw) == NOW


def test_a_result_is_escalated_once(treating):
    draw = _high(_patient(treating, oncologist=treating), treating)
    services.escalate_flags(now=NOW)

    again = services.escalate_flags(now=NOW + timedelta(hours=6))

    assert again.draw_ids == ()
    assert len(mail.outbox) == 1
    assert _escalated_at(draw) == NOW  # the first escalation's time, kept
    assert len(_events()) == 1


# --- which results --------------------------------------------------------------------


def test_a_result_flagged_for_review_only_is_never_escalated(treating):
    # 5 CTC at the cut-off of 5: the chance of being at or above it is not clear
    # enough for a high flag, so the conversion is flagged for review.
    draw = _result(
        _patient(treating, oncologist=treating), treating, (1, 5), resulted_at=NOW - 10 * DELAY
    )
    assert draw.review_rank == REVIEW

    assert services.escalate_flags(now=NOW).draw_ids == ()
    assert mail.outbox == []


def test_an_acknowledged_high_result_is_never_escalated(treating):
    nurse = builders.user_with_role(NURSE, username="nell")
    draw = _high(_patient(treating, oncologist=treating), treating)
    acknowledge_result(draw=draw, by=nurse, note="Phoned Dr Tom; repeat draw booked.")

    assert services.escalate_flags(now=NOW).draw_ids == ()
    assert mail.outbox == []
    assert _escalated_at(draw) is None


def test_a_high_result_entered_in_error_is_never_escalated(treating):
    draw = _high(_patient(treating, oncologist=treating), treating)
    services.mark_draw_entered_in_error(
        draw=draw, by=treating, reason="Wrong patient's tube", version=builders.version_of(draw)
    )

    assert services.escalate_flags(now=NOW).draw_ids == ()
    assert mail.outbox == []


# --- to whom ---------------------------------------------------------------------------


def test_one_mail_per_recipient_says_how_many_of_their_results_wait(treating, colleague):
    first = _high(_patient(treating, oncologist=treating, mrn="MRN-A"), treating)
    second = _high(_patient(treating, oncologist=treating, mrn="MRN-B"), treating)
    other = _high(_patient(treating, oncologist=colleague, mrn="MRN-C"), treating)

    run = services.escalate_flags(now=NOW)

    assert sorted(run.draw_ids) == sorted([first.pk, second.pk, other.pk])
    assert run.recipients == {treating.pk: 2, colleague.pk: 1}
    sent = {m.to[0]: m for m in mail.outbox}
    assert sorted(sent) == ["cora@hospital.example", "tom@hospital.example"]
    assert "2 CTC results with a high flag have not been acknowledged within 24 hours" in (
        sent["tom@hospital.example"].body
    )
    assert "1 CTC result with a high flag has not been acknowledged within 24 hours" in (
        sent["cora@hospital.example"].body
    )


def test_without_a_treating_oncologist_every_active_oncologist_is_told(treating, colleague):
    _oncologist("ivan", email="ivan@hospital.example", active=False)
    _oncologist("nomail", email="")
    nurse = builders.user_with_role(NURSE, username="nora")
    nurse.email = "nora@hospital.example"
    nurse.save()
    draw = _high(_patient(treating, oncologist=None), treating)

    run = services.escalate_flags(now=NOW)

    assert run.draw_ids == (draw.pk,)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "cora@hospital.example",
        "tom@hospital.example",
    ]


def test_a_treating_oncologist_who_left_is_replaced_by_every_active_oncologist(treating, colleague):
    patient = _patient(treating, oncologist=treating)
    _high(patient, treating)
    treating.is_active = False
    treating.save()

    services.escalate_flags(now=NOW)

    assert [m.to for m in mail.outbox] == [["cora@hospital.example"]]


def test_with_nobody_to_tell_nothing_is_marked_and_the_command_fails(treating):
    treating.email = ""
    treating.save()
    draw = _high(_patient(treating, oncologist=treating), treating)

    with pytest.raises(CommandError, match="1 high result"):
        call_command("escalate_flags", stdout=StringIO())

    assert mail.outbox == []
    assert _escalated_at(draw) is None
    assert _events() == []


# --- what the mail says, and the record of it --------------------------------------------


def test_the_mail_names_no_patient_and_no_count_but_links_to_the_results(treating):
    patient = _patient(treating, oncologist=treating, mrn="MRN-77213", family_name="Quill")
    _high(patient, treating)  # 1 then 30 CTC

    services.escalate_flags(now=NOW)

    (sent,) = mail.outbox
    text = f"{sent.subject}\n{sent.body}"
    for patient_data in ("MRN-77213", "Quill", "Rosalind", "1958", "30 CTC", " 30", "CTC 1"):
        assert patient_data not in text
    assert sent.subject == "CTC Track: 1 result with a high flag not acknowledged"
    assert RESULTS_LINK in sent.body


def test_the_access_log_names_the_draws_and_the_recipients_by_id_only(treating, colleague):
    mine = _high(_patient(treating, oncologist=treating, mrn="MRN-A"), treating)
    hers = _high(_patient(treating, oncologist=colleague, mrn="MRN-B"), treating)

    services.escalate_flags(now=NOW)

    (event,) = _events()
    assert event.username == ESCALATION_ACCOUNT
    assert event.patient_id is None  # two patients: listed by id in the target
    assert f"draws {min(mine.pk, hers.pk)}, {max(mine.pk, hers.pk)}" in event.target
    assert f"patients {mine.patient_id}, {hers.patient_id}" in event.target
    users = sorted([treating.pk, colleague.pk])
    assert f"to users {users[0]}, {users[1]}" in event.target
    assert "MRN" not in event.target and "Quill" not in event.target


def test_the_results_list_shows_the_result_as_escalated(treating, api):
    draw = _high(_patient(treating, oncologist=treating), treating)
    services.escalate_flags(now=NOW)
    api.force_authenticate(treating)

    items = api.get("/api/v1/results-to-review/").json()["items"]

    assert [(i["draw"]["id"], i["escalated"]) for i in items] == [(draw.pk, True)]


def test_a_run_takes_as_many_queries_for_three_results_as_for_one(
    treating, colleague, count_queries
):
    services.system_user(ESCALATION_ACCOUNT)  # made by the first run ever, once

    def run_with(results: int) -> int:
        for k in range(results):
            _high(_patient(treating, oncologist=None, mrn=f"MRN-{results}-{k}"), treating)
        return count_queries(lambda: services.escalate_flags(now=NOW))

    assert run_with(1) == run_with(3)


# --- the command ------------------------------------------------------------------------


def test_the_command_says_how_many_results_it_escalated_and_to_how_many(treating, colleague):
    _high(_patient(treating, oncologist=None), treating, resulted_at=datetime.now(UTC) - DELAY)
    out = StringIO()

    call_command("escalate_flags", stdout=out)
    call_command("escalate_flags", stdout=out)

    assert out.getvalue().splitlines() == [
        "Escalated 1 result to 2 recipients.",
        "Escalated 0 results to 0 recipients.",
    ]


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_shows_its_progress_on_a_terminal_and_nowhere_else(treating, monkeypatch):
    from patients.services import escalation

    for k in range(3):
        patient = _patient(treating, oncologist=treating, mrn=f"MRN-BAR-{k}")
        _high(patient, treating, resulted_at=datetime.now(UTC) - DELAY)
    monkeypatch.setattr(escalation, "MARK_BATCH", 2)  # three results: marked in two rounds
    by_hand, from_cron = _Terminal(), StringIO()

    call_command("escalate_flags", stdout=StringIO(), stderr=by_hand)
    CTCDraw.objects.update(escalated_at=None)
    call_command("escalate_flags", stdout=StringIO(), stderr=from_cron)

    assert "Escalating" in by_hand.getvalue() and "3/3" in by_hand.getvalue()
    assert from_cron.getvalue() == ""
    assert CTCDraw.objects.filter(escalated_at__isnull=False).count() == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="an advisory lock of PostgreSQL")
def test_a_run_while_another_is_sending_does_nothing(treating):
    draw = _high(_patient(treating, oncologist=treating), treating)
    other_run = psycopg2.connect(**connection.get_connection_params())
    try:
        with other_run.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [RUN_LOCK_KEY])
            out = StringIO()
            call_command("escalate_flags", stdout=out)
            # Now, not at close: the server ends a closed session in its own time.
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK_KEY])
    finally:
        other_run.close()

    assert out.getvalue() == "Another run is escalating now: nothing done.\n"
    assert mail.outbox == []
    assert services.escalate_flags(now=NOW).draw_ids == (draw.pk,)  # once it has finished


# --- real SMTP ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    server.start()
    try:
        yield server, inbox
    finally:
        server.stop()


def test_the_mail_reaches_a_real_smtp_server(treating, smtp_server):
    server, inbox = smtp_server
    draw = _high(_patient(treating, oncologist=treating), treating)

    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=server.hostname,
        EMAIL_PORT=server.port,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        EMAIL_TIMEOUT=10,
        DEFAULT_FROM_EMAIL="CTC Track <ctctrack@hospital.example>",
    ):
        run = services.escalate_flags(now=NOW)

    assert run.draw_ids == (draw.pk,)
    (envelope,) = inbox.envelopes
    assert envelope.rcpt_tos == ["tom@hospital.example"]
    assert envelope.mail_from == "ctctrack@hospital.example"
    received = envelope.content.decode()
    assert "Subject: CTC Track: 1 result with a high flag not acknowledged" in received
    assert RESULTS_LINK in received
    assert _escalated_at(draw) == NOW


def test_when_the_smtp_server_cannot_be_reached_nothing_is_marked_and_the_next_run_retries(
    treating,
):
    draw = _high(_patient(treating, oncologist=treating), treating, resulted_at=NOW - DELAY)

    unreachable = override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=_free_port(),  # nothing listens there: the connection is refused
        EMAIL_TIMEOUT=5,
    )
    with unreachable, pytest.raises(CommandError, match="nothing was escalated"):
        call_command("escalate_flags", stdout=StringIO())

    assert _escalated_at(draw) is None
    assert _events() == []
    assert services.escalate_flags(now=NOW).draw_ids == (draw.pk,)  # the next run
    assert len(mail.outbox) == 1


# --- care teams -----------------------------------------------------------------------


def test_with_care_teams_each_oncologist_hears_only_of_their_teams_patients(treating, colleague):
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    north.members.add(treating)
    south.members.add(colleague)
    # Neither patient has a treating oncologist: each result goes to every oncologist
    # who may see the patient, and only to them.
    of_north = _patient(treating, mrn="MRN-N-1", family_name="Northam")
    of_south = _patient(colleague, mrn="MRN-S-1", family_name="Southey")
    north_draw, south_draw = _high(of_north, treating), _high(of_south, colleague)

    run = services.escalate_flags(now=NOW)

    assert sorted(run.draw_ids) == sorted([north_draw.pk, south_draw.pk])
    assert run.recipients == {treating.pk: 1, colleague.pk: 1}
    assert sorted(m.to[0] for m in mail.outbox) == ["cora@hospital.example", "tom@hospital.example"]


def test_with_care_teams_the_treating_oncologist_outside_the_team_is_passed_over(
    treating, colleague
):
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    north.members.add(colleague)
    south.members.add(treating)
    patient = _patient(colleague, oncologist=treating)  # in North, treated by a South user
    draw = _high(patient, colleague)

    run = services.escalate_flags(now=NOW)

    assert run.draw_ids == (draw.pk,)
    assert run.recipients == {colleague.pk: 1}


def test_a_result_nobody_of_the_patients_teams_can_receive_waits_and_the_command_says_so(
    treating, colleague
):
    north, south = services.teams.create_team("North"), services.teams.create_team("South")
    north.members.add(treating)
    south.members.add(colleague)
    patient = _patient(treating)
    draw = _high(patient, treating)
    north.members.remove(treating)  # nobody of North left to tell

    with pytest.raises(CommandError, match="1 high result due for escalation"):
        call_command("escalate_flags", stdout=StringIO())

    assert mail.outbox == []
    assert _escalated_at(draw) is None
