"""Automatic logoff: 15 minutes idle, 12 hours in all (SessionTimeoutMiddleware).

Time is controlled honestly: the test writes an old sign-in or last-activity
time into the stored session, as if the user had walked away, then comes back.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.asserts import assertContains, assertRedirects

from patients.accounts.middleware import (
    LAST_SEEN_AT,
    SIGNED_IN_AT,
    duration_text,
    needs_last_seen_update,
    session_end,
)
from tests.builders import api_token

pytestmark = pytest.mark.django_db

MINUTE = 60


def _age_session(client, *, last_seen_ago: float = 0, signed_in_ago: float = 0) -> None:
    """Pretend the last request and the sign-in were this many seconds ago."""
    session = client.session
    now = time.time()
    session[LAST_SEEN_AT] = now - last_seen_ago
    session[SIGNED_IN_AT] = now - signed_in_ago
    session.save()


def test_the_limits_are_15_minutes_idle_and_12_hours_in_all(settings):
    assert settings.CTCTRACK_IDLE_TIMEOUT_SECONDS == 15 * MINUTE
    assert settings.CTCTRACK_SESSION_MAX_AGE_SECONDS == 12 * 3600
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"


def test_a_nurse_who_was_idle_for_15_minutes_is_signed_out_and_told_why(client, nurse):
    client.force_login(nurse)
    _age_session(client, last_seen_ago=15 * MINUTE + 1)

    r = client.get("/patients/")

    assertRedirects(r, "/accounts/login/?next=/patients/", fetch_redirect_response=False)
    assert "_auth_user_id" not in client.session
    assert [str(m) for m in get_messages(r.wsgi_request)] == [
        "You were signed out after 15 minutes without activity."
    ]


def test_the_login_page_then_shows_the_message(client, nurse):
    client.force_login(nurse)
    _age_session(client, last_seen_ago=20 * MINUTE)

    r = client.get("/", follow=True)

    assertContains(r, "You were signed out after 15 minutes without activity.")
    assertContains(r, '<label for="id_username">Username</label>', html=True)


def test_a_nurse_active_14_minutes_ago_stays_signed_in(client, nurse):
    client.force_login(nurse)
    _age_session(client, last_seen_ago=14 * MINUTE)

    r = client.get("/patients/")

    assert r.status_code == 200
    assert client.session["_auth_user_id"] == str(nurse.pk)


def test_each_request_counts_as_activity(client, nurse):
    client.force_login(nurse)
    _age_session(client, last_seen_ago=14 * MINUTE)

    client.get("/patients/")

    assert time.time() - client.session[LAST_SEEN_AT] < MINUTE


def _stored_session(client) -> str:
    return Session.objects.get(session_key=client.session.session_key).session_data


def test_requests_within_a_minute_leave_the_stored_session_as_it_was(client, nurse):
    client.force_login(nurse)
    _age_session(client, last_seen_ago=30)
    stored = _stored_session(client)

    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert client.get("/patients/").status_code == 200

    assert _stored_session(client) == stored
    assert not [
        q for q in queries.captured_queries if "UPDATE" in q["sql"] and "django_session" in q["sql"]
    ]


def test_idle_time_counts_from_the_stored_activity_time(client, nurse):
    """A request within the minute is not stored: walking away after it still times out."""
    client.force_login(nurse)
    _age_session(client, last_seen_ago=30)
    stored = client.session[LAST_SEEN_AT]
    client.get("/patients/")
    assert client.session[LAST_SEEN_AT] == stored  # the request was not stored
    _age_session(client, last_seen_ago=15 * MINUTE)  # then nothing for 15 minutes

    r = client.get("/patients/")

    assertRedirects(r, "/accounts/login/?next=/patients/", fetch_redirect_response=False)
    assert "_auth_user_id" not in client.session


def test_the_first_request_after_signing_in_stores_the_activity_time(client, nurse):
    client.force_login(nurse)

    client.get("/patients/")

    assert time.time() - client.session[LAST_SEEN_AT] < MINUTE


def test_an_active_session_still_ends_12_hours_after_signing_in(client, nurse):
    client.force_login(nurse)
    _age_session(client, last_seen_ago=10, signed_in_ago=12 * 3600 + 1)

    r = client.get("/")

    assertRedirects(r, "/accounts/login/?next=/", fetch_redirect_response=False)
    assert "_auth_user_id" not in client.session
    (message,) = get_messages(r.wsgi_request)
    assert "a session ends 12 hours after signing in" in str(message)


def test_a_form_posted_after_the_timeout_saves_nothing(client, oncologist, patient):
    client.force_login(oncologist)
    _age_session(client, last_seen_ago=16 * MINUTE)

    r = client.post(f"/patients/{patient.pk}/edit/", {"family_name": "Changed", "version": 1})

    assertRedirects(r, "/accounts/login/", fetch_redirect_response=False)
    patient.refresh_from_db()
    assert patient.family_name == "Doe"


def test_the_api_by_session_answers_401_after_the_timeout(client, nurse):
    client.force_login(nurse)
    _age_session(client, last_seen_ago=16 * MINUTE)

    r = client.get("/api/v1/patients/")

    assert r.status_code == 401
    assert r.json() == {"detail": "You were signed out after 15 minutes without activity."}
    assert "_auth_user_id" not in client.session


def test_the_api_by_token_has_no_session_to_time_out(api, nurse):
    token_key = api_token(nurse)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")

    r = api.get("/api/v1/patients/")

    assert r.status_code == 200


def test_the_idle_limit_comes_from_the_setting(client, nurse, settings):
    settings.CTCTRACK_IDLE_TIMEOUT_SECONDS = 5 * MINUTE
    client.force_login(nurse)
    _age_session(client, last_seen_ago=6 * MINUTE)

    r = client.get("/")

    assert r.status_code == 302
    (message,) = get_messages(r.wsgi_request)
    assert str(message) == "You were signed out after 5 minutes without activity."


def test_closing_the_browser_ends_the_session(settings):
    # Shared clinic workstations: the session cookie has no expiry date.
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True


# --- the rule itself (no database) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("signed_in_ago", "last_seen_ago", "expected"),
    [
        (60, 60, None),
        (3600, 899, None),
        (3600, 900, "idle"),
        (43199, 0, None),
        (43200, 0, "max_age"),
        (43200, 900, "max_age"),
    ],
)
def test_a_session_ends_when_either_limit_is_reached(signed_in_ago, last_seen_ago, expected):
    now = 1_000_000.0
    reason = session_end(
        signed_in_at=now - signed_in_ago,
        last_seen_at=now - last_seen_ago,
        now=now,
        idle_seconds=900,
        max_age_seconds=43200,
    )

    assert reason == expected


@pytest.mark.parametrize(
    ("last_seen_ago", "expected"),
    [(None, True), (0, False), (59.9, False), (60, True), (600, True)],
)
def test_the_activity_time_is_stored_once_a_minute_at_most(last_seen_ago, expected):
    now = 1_000_000.0
    last_seen = None if last_seen_ago is None else now - last_seen_ago

    assert needs_last_seen_update(last_seen, now) is expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(900, "15 minutes"), (60, "1 minute"), (43200, "12 hours"), (90, "90 seconds")],
)
def test_durations_read_as_words(seconds, text):
    assert duration_text(seconds) == text
