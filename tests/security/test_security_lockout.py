"""Sign-in throttling (django-axes): 5 failures lock a username and address for 15 minutes,
on the sign-in form and on the API token endpoint alike."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.utils import timezone
from pytest_django.asserts import assertContains

from patients.models import ApiToken

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-42"
LOGIN = "/accounts/login/"
TOKEN_URL = "/api/v1/auth/token/"


def _fail(client, username: str, times: int, **extra):
    r = None
    for _ in range(times):
        r = client.post(LOGIN, {"username": username, "password": "wrong"}, **extra)
    return r


def _sign_in(client, username: str = "nina", **extra):
    return client.post(LOGIN, {"username": username, "password": PASSWORD}, **extra)


def test_four_failures_still_leave_the_form_open(client, nurse):
    r = _fail(client, "nina", 4)

    assertContains(r, "Please enter a correct username and password")
    assert _sign_in(client).status_code == 302


def test_the_fifth_failure_locks_and_says_when_to_try_again(client, nurse):
    r = _fail(client, "nina", 5)

    assertContains(r, "Too many failed sign-in attempts. Try again in 15 minutes", status_code=429)
    assert r["Retry-After"] == "900"


def test_while_locked_even_the_right_password_is_refused(client, nurse):
    _fail(client, "nina", 5)

    r = _sign_in(client)

    assert r.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_page_does_not_reveal_whether_the_username_exists(client, nurse):
    known = _fail(client, "nina", 5)
    unknown = _fail(client, "nobody-by-this-name", 5)

    assert known.status_code == unknown.status_code == 429
    assert _page_text(known) == _page_text(unknown)
    assert b"nina" not in known.content


def _page_text(response) -> bytes:
    # Everything but the CSRF token, which differs on every page.
    return response.content.split(b"<main", 1)[1]


def test_the_lock_holds_for_that_address_only(client, nurse):
    _fail(client, "nina", 5, REMOTE_ADDR="10.1.1.1")

    r = _sign_in(client, REMOTE_ADDR="10.2.2.2")

    assert r.status_code == 302
    assert client.session["_auth_user_id"] == str(nurse.pk)


def test_a_client_cannot_escape_the_lock_by_sending_x_forwarded_for(client, nurse):
    for n in range(5):
        r = _fail(client, "nina", 1, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}")

    assert r.status_code == 429


def test_behind_a_trusted_proxy_the_lock_holds_for_the_forwarded_client(client, nurse, settings):
    settings.CTCTRACK_TRUSTED_PROXY_COUNT = 1
    _fail(client, "nina", 5, HTTP_X_FORWARDED_FOR="10.1.1.1")

    locked = _sign_in(client, HTTP_X_FORWARDED_FOR="10.1.1.1")
    other = _sign_in(client, HTTP_X_FORWARDED_FOR="10.2.2.2")

    assert locked.status_code == 429
    assert other.status_code == 302


def test_the_lock_holds_for_that_username_only(client, nurse, oncologist):
    _fail(client, "nina", 5)

    r = _sign_in(client, "olivia")

    assert r.status_code == 302


def test_the_lock_ends_after_15_minutes(client, nurse):
    _fail(client, "nina", 5)
    # The last failure happened 15 minutes ago.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))

    r = _sign_in(client)

    assert r.status_code == 302


def test_an_administrator_lifts_a_lockout_from_the_command_line(client, nurse):
    # The emergency access procedure (docs/security.md).
    _fail(client, "nina", 5)

    call_command("axes_reset_username", "nina", stdout=io.StringIO())

    assert _sign_in(client).status_code == 302


def test_a_successful_sign_in_clears_earlier_failures(client, nurse):
    _fail(client, "nina", 3)

    _sign_in(client)

    assert not AccessAttempt.objects.filter(username="nina").exists()


def test_admin_sign_in_is_throttled_too(client, admin_user):
    for _ in range(5):
        r = client.post("/admin/login/", {"username": "ada", "password": "wrong"})

    assert r.status_code == 429


# --- the API token endpoint ------------------------------------------------------------------


def test_the_token_endpoint_answers_a_good_sign_in(api, nurse):
    r = api.post(TOKEN_URL, {"username": "nina", "password": PASSWORD}, format="json")

    assert r.status_code == 200
    assert r.json()["token"][:8] == ApiToken.objects.get(user=nurse).prefix


def test_the_token_endpoint_refuses_a_wrong_password_without_saying_which_part(api, nurse):
    r = api.post(TOKEN_URL, {"username": "nina", "password": "wrong"}, format="json")

    assert r.status_code == 400
    assert r.json() == {"non_field_errors": ["Unable to sign in with these credentials."]}


def test_the_token_endpoint_names_a_missing_field(api):
    r = api.post(TOKEN_URL, {"username": "nina"}, format="json")

    assert r.status_code == 400
    assert list(r.json()) == ["password"]


def test_the_token_endpoint_locks_after_five_failures_with_json(api, nurse):
    for _ in range(5):
        r = api.post(TOKEN_URL, {"username": "nina", "password": "wrong"}, format="json")

    assert r.status_code == 429
    assert r.json()["detail"].startswith("Too many failed sign-in attempts. Try again in 15")
    assert r["Retry-After"] == "900"


def test_while_locked_the_token_endpoint_refuses_the_right_password(api, nurse):
    for _ in range(5):
        api.post(TOKEN_URL, {"username": "nina", "password": "wrong"}, format="json")

    r = api.post(TOKEN_URL, {"username": "nina", "password": PASSWORD}, format="json")

    assert r.status_code == 429
    assert not ApiToken.objects.exists()


def test_failures_on_the_form_and_the_api_add_up(client, api, nurse):
    _fail(client, "nina", 3)
    for _ in range(2):
        r = api.post(TOKEN_URL, {"username": "nina", "password": "wrong"}, format="json")

    assert r.status_code == 429


def test_a_token_clears_earlier_failures(api, nurse):
    for _ in range(3):
        api.post(TOKEN_URL, {"username": "nina", "password": "wrong"}, format="json")

    api.post(TOKEN_URL, {"username": "nina", "password": PASSWORD}, format="json")

    assert not AccessAttempt.objects.filter(username="nina").exists()


def test_the_test_clients_login_still_works(client, nurse):
    # authenticate() without a request has no address to lock: it is not throttled.
    assert client.login(username="nina", password=PASSWORD)
