"""The cast: one user per role, a patient with a therapy line and a cycle.

Made with the builders in tests/builders.py; a test that needs more people or
records calls those builders itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from patients import services
from patients.models import CTCDraw, Patient, TherapyLine, TreatmentCycle
from patients.roles import NURSE, ONCOLOGIST
from tests import builders


@pytest.fixture(autouse=True)
def _no_counts_from_earlier_tests():
    """Each test starts with an empty cache: counters kept there (anonymous refusals per
    source and minute, patients/audit/chain.py) must not carry over between tests."""
    cache.clear()


@pytest.fixture(autouse=True)
def _live_server_requests_close_their_connections(request, monkeypatch):
    """With the live server, each request closes its database connection when it ends.

    The settings keep connections for `DB_CONN_MAX_AGE` (60 s) in the thread that
    opened them. The live server answers each kept-alive client connection (a
    FHIR client's session, a browser) in a thread of its own, which the server
    does not wait for when it stops: with persistent connections, each such
    thread kept a PostgreSQL session open to the end of the run, and the test
    database could not be dropped ("is being accessed by other users"). The
    request threads read the same settings dict as the test's connection.
    (SQLite: the live server shares the test's one in-memory connection.)
    """
    if "live_server" in request.fixturenames and connection.vendor != "sqlite":
        monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def oncologist(db):
    return builders.user_with_role(ONCOLOGIST, username="olivia")


@pytest.fixture
def nurse(db):
    return builders.user_with_role(NURSE, username="nina")


@pytest.fixture
def outsider(db):
    """Logged in, but holds no role."""
    return builders.user_with_role(None, username="oscar")


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("ada", password="correct-horse-42")


@pytest.fixture(params=["one clinic", "two care teams"])
def care_teams(request, nurse, oncologist) -> str:
    """Run a test as one clinic (no team) and with two care teams, the nurse and the
    oncologist in the first (so the patients the oncologist registers join it too)."""
    if request.param == "two care teams":
        north = services.teams.create_team("North")
        services.teams.create_team("South")
        north.members.add(nurse, oncologist)
    return str(request.param)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def patient(oncologist) -> Patient:
    return builders.patient(
        oncologist,
        mrn="MRN0001",
        given_name="Jane",
        family_name="Doe",
        birth_date=date(1960, 5, 17),
        sex="female",
        cancer_type="breast",
    )


@pytest.fixture
def line(patient, oncologist) -> TherapyLine:
    return builders.therapy_line(
        patient, oncologist, regimen="Paclitaxel", start_date=date(2026, 1, 5), cycle_length_days=21
    )


@pytest.fixture
def cycle(line, oncologist) -> TreatmentCycle:
    return builders.cycle(line, oncologist, number=1, scheduled_date=date(2026, 1, 5))


@pytest.fixture
def draw(patient, oncologist) -> CTCDraw:
    return builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=3,
        accession="ACC-1",
    )


@pytest.fixture
def count_queries():
    """How many queries a call runs: compare two data sizes to catch N+1 regressions."""

    def count(call) -> int:
        with CaptureQueriesContext(connection) as captured:
            call()
        return len(captured.captured_queries)

    return count
