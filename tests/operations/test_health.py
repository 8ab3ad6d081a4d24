"""/healthz: the load balancer's probe."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from patients.accounts.middleware import LAST_SEEN_AT

pytestmark = pytest.mark.django_db


def test_it_answers_ok_as_plain_text_never_stored(client):
    r = client.get("/healthz")

    assert r.status_code == 200
    assert r.content == b"ok"
    assert r["Content-Type"].startswith("text/plain")
    assert "no-store" in r["Cache-Control"]


def test_its_route_is_the_path_the_middleware_answers(client):
    assert reverse("healthz") == "/healthz"


def test_it_answers_head_and_refuses_writes(client):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405
    assert client.delete("/healthz").status_code == 405


def test_it_queries_no_database_and_sets_no_cookie(client):
    with CaptureQueriesContext(connection) as queries:
        r = client.get("/healthz")

    assert r.status_code == 200
    assert len(queries) == 0
    assert not r.cookies


def test_it_neither_reads_nor_refreshes_a_signed_in_session(client, nurse):
    client.force_login(nurse)
    client.get(reverse("patients:worklist"))
    last_seen = client.session[LAST_SEEN_AT]

    with CaptureQueriesContext(connection) as queries:
        r = client.get("/healthz")

    assert r.status_code == 200
    assert len(queries) == 0
    assert client.session[LAST_SEEN_AT] == last_seen


def test_it_answers_a_load_balancer_over_plain_http_by_address(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["ctctrack.example.org"]

    probe = client.get("/healthz", HTTP_HOST="10.0.0.7")
    page = client.get("/accounts/login/", HTTP_HOST="ctctrack.example.org")

    assert (probe.status_code, probe.content) == (200, b"ok")
    assert page.status_code == 301  # everything else still goes to HTTPS
