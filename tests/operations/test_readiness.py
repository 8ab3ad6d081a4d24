"""/readyz: the load balancer's readiness probe (the database answers and the access log
can be written), beside /healthz, the liveness probe (the process answers).

The outage is real, as in tests/security/test_security_errors.py: Django's connection is
pointed at a database that cannot be reached. A log that cannot be written is a
read-only connection (what a standby or a read-only database file gives).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from patients.accounts.middleware import LAST_SEEN_AT
from patients.models import AccessEvent
from tests.outage import unreachable_database

pytestmark = pytest.mark.django_db

READYZ = "/readyz"


@pytest.fixture
def probe() -> Client:
    """A load balancer: no account, and it sees what a server error would give."""
    return Client(raise_request_exception=False)


@contextmanager
def read_only_database() -> Iterator[None]:
    """The connection answers queries but refuses every write."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            # Read-write to read-only is allowed mid-transaction; the test's rollback ends it.
            cursor.execute("SET TRANSACTION READ ONLY")
    try:
        yield
    finally:
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA query_only = OFF")


def _assert_unavailable(r) -> None:
    assert r.status_code == 503
    assert r.content == b"unavailable"
    assert r["Retry-After"] == "30"
    assert r["Content-Type"].startswith("text/plain")
    assert "no-store" in r["Cache-Control"]
    assert not r.cookies


# --- ready ---------------------------------------------------------------------------


def test_with_the_database_up_it_answers_ready_as_plain_text_never_stored(probe):
    r = probe.get(READYZ)

    assert r.status_code == 200
    assert r.content == b"ready"
    assert r["Content-Type"].startswith("text/plain")
    assert "no-store" in r["Cache-Control"]
    assert not r.cookies


def test_its_route_is_the_path_the_middleware_answers():
    assert reverse("readyz") == READYZ


def test_it_answers_head_and_refuses_writes(probe):
    head = probe.head(READYZ)

    assert (head.status_code, head.content) == (200, b"")
    assert probe.post(READYZ).status_code == 405
    assert probe.delete(READYZ).status_code == 405


def test_checking_the_access_log_adds_no_row_to_it(probe, nurse):
    before = AccessEvent.objects.count()

    for _ in range(3):
        assert probe.get(READYZ).status_code == 200

    assert AccessEvent.objects.count() == before


def test_it_neither_reads_nor_refreshes_a_signed_in_session(client, nurse):
    client.force_login(nurse)
    client.get(reverse("patients:worklist"))
    last_seen = client.session[LAST_SEEN_AT]

    r = client.get(READYZ)

    assert r.status_code == 200
    assert not r.cookies
    assert client.session[LAST_SEEN_AT] == last_seen


def test_it_answers_a_load_balancer_over_plain_http_by_address(probe, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["ctctrack.example.org"]

    r = probe.get(READYZ, HTTP_HOST="10.0.0.7")

    assert (r.status_code, r.content) == (200, b"ready")


# --- not ready -------------------------------------------------------------------------


def test_with_the_database_unreachable_it_answers_503_while_healthz_stays_ok(probe, tmp_path):
    with unreachable_database(tmp_path):
        ready = probe.get(READYZ)
        live = probe.get("/healthz")

    _assert_unavailable(ready)
    assert (live.status_code, live.content) == (200, b"ok")


def test_with_the_access_log_not_writable_it_answers_503(probe):
    with read_only_database():
        r = probe.get(READYZ)
        head = probe.head(READYZ)

    _assert_unavailable(r)
    assert head.status_code == 503


def test_it_is_ready_again_once_the_database_is_back(probe, tmp_path):
    with unreachable_database(tmp_path):
        assert probe.get(READYZ).status_code == 503

    assert probe.get(READYZ).status_code == 200
