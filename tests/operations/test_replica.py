"""The read replica's router and read-your-writes pin (ctctrack/routers.py).

The `replica` alias here is a second connection to the test database, built by
the function settings use for DATABASE_REPLICA_URL; these tests turn the router on.
The data is committed (transaction=True), because the replica is a second
connection and sees only committed rows, as a real standby does. Each test
watches which connection every query of a request went to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import InternalError, OperationalError, connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ctctrack import routers
from ctctrack.middleware import is_database_outage
from ctctrack.routers import PRIMARY, REPLICA, ROUTER, ReplicaRouter
from ctctrack.settings import replica_database
from patients import services
from patients.models import AccessAction, AccessEvent, CTCDraw, Patient

pytestmark = pytest.mark.django_db(transaction=True, databases=[PRIMARY, REPLICA])

WRITES = ("INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Queries:
    primary: list[str]
    replica: list[str]

    def on_replica(self, table: str) -> bool:
        return any(f'"{table}"' in sql for sql in self.replica)

    def on_primary(self, table: str) -> bool:
        return any(f'"{table}"' in sql for sql in self.primary)

    def replica_from(self, table: str) -> bool:
        """A query on the replica reads this table itself (not joined to a clinical one)."""
        return any(f'FROM "{table}"' in sql for sql in self.replica)


def capture(call: Callable[[], object]) -> tuple[object, Queries]:
    with (
        CaptureQueriesContext(connections[PRIMARY]) as primary,
        CaptureQueriesContext(connections[REPLICA]) as replica,
    ):
        result = call()
    return result, Queries(
        [q["sql"] for q in primary.captured_queries], [q["sql"] for q in replica.captured_queries]
    )


@pytest.fixture(scope="module", autouse=True)
def replica_alias(django_db_setup) -> Iterator[None]:
    """A `replica` alias on the test database, built as settings build it, for this module.

    Only here, so the rest of the suite runs as a deployment without a replica does.
    """
    connections.settings[REPLICA] = replica_database(connections[PRIMARY].settings_dict)
    yield
    connections[REPLICA].close()
    del connections[REPLICA]
    del connections.settings[REPLICA]


@pytest.fixture
def with_replica(settings) -> Iterator[None]:
    """The settings DATABASE_REPLICA_URL gives (the alias itself is always there in tests)."""
    settings.DATABASE_ROUTERS = [ROUTER]
    settings.CTCTRACK_READ_YOUR_WRITES_SECONDS = 10
    yield


@pytest.fixture
def browser(with_replica) -> Client:
    return Client()  # a new client loads the middleware with the router on


@pytest.fixture
def charted(patient, oncologist) -> Patient:
    services.record_draw(
        patient=patient, by=oncologist, drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC), ctc_count=7
    )
    return patient


def _draw_form(count: int) -> dict[str, str]:
    return {
        "drawn_at": "2026-01-23T09:00",
        "blood_volume_ml": "7.5",
        "status": "resulted",
        "ctc_count": str(count),
    }


# --- what goes where ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, table",
    [
        ("patients:worklist", "patients_treatmentcycle"),  # names joined only for its rows
        ("patients:list", "patients_patient"),
        ("patients:detail", "patients_patient"),
        ("patients:chart-svg", "patients_patient"),
        ("patients:chart-png", "patients_patient"),
    ],
)
def test_list_pages_and_charts_read_clinical_data_from_the_replica(
    browser, nurse, charted, name, table
):
    browser.force_login(nurse)
    url = reverse(name, args=[charted.pk] if name.endswith(("detail", "svg", "png")) else [])

    response, queries = capture(lambda: browser.get(url))

    assert response.status_code == 200
    assert queries.on_replica(table)
    assert not queries.on_primary(table)


def test_sign_in_session_and_access_log_stay_on_the_primary(browser, nurse, charted):
    browser.force_login(nurse)

    response, queries = capture(lambda: browser.get(reverse("patients:detail", args=[charted.pk])))

    assert response.status_code == 200
    for table in ("django_session", "auth_user", "auth_permission", "patients_accessevent"):
        assert queries.on_primary(table), table
        assert not queries.replica_from(table), table
    assert AccessEvent.objects.filter(patient=charted, action=AccessAction.VIEW).exists()


def test_the_replica_never_gets_a_write(browser, nurse, charted):
    browser.force_login(nurse)
    url = reverse("patients:detail", args=[charted.pk])

    response, queries = capture(lambda: browser.get(url))

    assert response.status_code == 200
    assert queries.replica, "the page read nothing from the replica: the test proves nothing"
    assert not [sql for sql in queries.replica if sql.lstrip().upper().startswith(WRITES)]


@pytest.mark.parametrize(
    "url",
    [
        "/patients/{pk}/report.pdf",
        "/patients/{pk}/draws/new/",
        "/patients/{pk}/draws.csv",
        "/api/v1/patients/",
        "/api/v1/patients/{pk}/",
    ],
)
def test_other_pages_and_the_api_read_only_the_primary(browser, oncologist, charted, url):
    browser.force_login(oncologist)

    response, queries = capture(lambda: browser.get(url.format(pk=charted.pk)))

    assert response.status_code == 200
    assert queries.on_primary("patients_patient")
    assert queries.replica == []


def test_a_form_post_writes_and_reads_only_the_primary(browser, oncologist, charted):
    browser.force_login(oncologist)
    url = reverse("patients:draw-create", args=[charted.pk])

    response, queries = capture(lambda: browser.post(url, _draw_form(12)))

    assert response.status_code == 302
    assert queries.replica == []
    assert CTCDraw.objects.filter(patient=charted, ctc_count=12).exists()


def test_the_router_sends_every_write_to_the_primary(with_replica):
    router = ReplicaRouter()
    token = routers._replica_allowed.set(True)  # as inside a replica view
    try:
        assert router.db_for_read(Patient) == REPLICA
        assert router.db_for_write(Patient) == PRIMARY
        assert router.db_for_read(AccessEvent) == PRIMARY
        assert router.db_for_read(Patient.history.model) == REPLICA
        assert router.allow_migrate(REPLICA, "patients") is False
    finally:
        routers._replica_allowed.reset(token)


def test_a_locking_read_inside_a_replica_view_still_goes_to_the_primary(with_replica, patient):
    token = routers._replica_allowed.set(True)
    try:
        assert Patient.objects.all().db == REPLICA
        assert Patient.objects.select_for_update().db == PRIMARY
    finally:
        routers._replica_allowed.reset(token)


def test_management_commands_use_the_primary(with_replica, patient, tmp_path):
    csv = tmp_path / "draws.csv"
    csv.write_text(
        "mrn,drawn_at,status,ctc_count,accession,comment\n"
        "MRN0001,2026-01-20 09:00,resulted,4,A-9,\n"
    )

    _, queries = capture(lambda: call_command("import_ctc", str(csv), verbosity=0))

    assert queries.on_primary("patients_patient")
    assert queries.replica == []
    assert CTCDraw.objects.filter(patient=patient, ctc_count=4).exists()


# --- read-your-writes --------------------------------------------------------------------


def test_after_a_write_the_writer_reads_the_primary_and_sees_it(browser, oncologist, charted):
    browser.force_login(oncologist)
    posted = browser.post(reverse("patients:draw-create", args=[charted.pk]), _draw_form(12))
    assert routers.pin_cookie_name() in posted.cookies

    page, queries = capture(lambda: browser.get(reverse("patients:detail", args=[charted.pk])))

    assert page.status_code == 200
    assert queries.replica == []
    assert queries.on_primary("patients_ctcdraw")
    assert "Latest CTC count 12" in page.content.decode()


def test_another_user_keeps_reading_the_replica_meanwhile(browser, oncologist, nurse, charted):
    browser.force_login(oncologist)
    browser.post(reverse("patients:draw-create", args=[charted.pk]), _draw_form(12))
    other = Client()
    other.force_login(nurse)

    _, queries = capture(lambda: other.get(reverse("patients:detail", args=[charted.pk])))

    assert queries.on_replica("patients_ctcdraw")


def test_once_the_window_has_passed_the_writer_reads_the_replica_again(
    browser, oncologist, charted, settings
):
    browser.force_login(oncologist)
    browser.post(reverse("patients:draw-create", args=[charted.pk]), _draw_form(12))
    assert routers.pin_cookie_name() in browser.cookies
    # A window of 0 s has passed for any cookie signed before now (no clock is stopped).
    settings.CTCTRACK_READ_YOUR_WRITES_SECONDS = 0

    _, queries = capture(lambda: browser.get(reverse("patients:detail", args=[charted.pk])))

    assert queries.on_replica("patients_ctcdraw")


def test_a_pin_cookie_not_signed_by_the_server_is_ignored(browser, nurse, charted):
    browser.force_login(nurse)
    browser.cookies[routers.pin_cookie_name()] = "1"

    _, queries = capture(lambda: browser.get(reverse("patients:detail", args=[charted.pk])))

    assert queries.on_replica("patients_ctcdraw")


# --- without a replica ---------------------------------------------------------------------


def test_without_a_replica_nothing_reads_it_and_no_pin_is_set(client, oncologist, charted):
    client.force_login(oncologist)

    posted, writes = capture(
        lambda: client.post(reverse("patients:draw-create", args=[charted.pk]), _draw_form(12))
    )
    page, reads = capture(lambda: client.get(reverse("patients:detail", args=[charted.pk])))

    assert posted.status_code == 302 and page.status_code == 200
    assert routers.pin_cookie_name() not in posted.cookies
    assert writes.replica == [] and reads.replica == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="read-only sessions: PostgreSQL")
def test_on_postgresql_the_replica_connection_refuses_writes(with_replica, patient):
    with pytest.raises(InternalError, match="read-only transaction"):
        Patient.objects.using(REPLICA).filter(pk=patient.pk).update(given_name="Changed")


def _an_operational_error_on_the_open_primary() -> OperationalError:
    """A failing query on a working connection: a bug's 500, not an outage's 503."""
    with pytest.raises(OperationalError) as info, transaction.atomic(), connection.cursor() as c:
        if connection.vendor == "postgresql":
            c.execute("SET LOCAL statement_timeout = 1")
            c.execute("SELECT pg_sleep(1)")
        else:
            c.execute("SELECT no_such_column FROM patients_patient")
    return info.value


def test_a_closed_replica_connection_is_not_taken_for_an_outage(with_replica):
    if connection.vendor == "sqlite":
        pytest.skip("Django never closes the in-memory SQLite test database: PostgreSQL shows it")
    connections[REPLICA].ensure_connection()
    connections[REPLICA].close()  # as at the end of an earlier request

    error = _an_operational_error_on_the_open_primary()

    assert not is_database_outage(error)
    assert connection.connection is not None
