"""Errors show no traceback, SQL or patient data; a database outage answers a plain 503;
logs carry no names, MRNs or counts.

The outage is real: the test points Django's connection at a database that cannot
be reached (a closed port for PostgreSQL, a file in a missing folder for SQLite).
The failing views below are real views in this module's URLconf, not mocks.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ctctrack.logs import WITHHELD, RedactPHIFilter, strip_query_strings
from patients.models import Patient
from tests.builders import api_token
from tests.outage import unreachable_database

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

# Patient data that must never reach a page or a log. (Tracebacks keep source
# lines, so the code that raises uses these names, never the values.)
NAME = "Zebedee"
MRN = "Z-0042"
COUNT = "12 CTC/7.5 mL"
BAD_SQL = "SELECT given_name FROM patients_patient WHERE given_name = %s AND no_such_column = 1"


def _bad_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute(BAD_SQL, [NAME])


def crash_with_patient_data(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"could not process {NAME}, MRN {MRN}, {COUNT}")


def crash_with_bad_sql(request: HttpRequest) -> HttpResponse:
    _bad_query()
    return HttpResponse("not reached")


class ApiCrashWithBadSql(APIView):
    permission_classes: list = []

    def get(self, request: Request) -> Response:
        _bad_query()
        return Response({})


urlpatterns = [
    path("boom/patient-data/", crash_with_patient_data),
    path("boom/sql/", crash_with_bad_sql),
    path("api/v1/boom/sql/", ApiCrashWithBadSql.as_view()),
    path("", include("ctctrack.urls")),
]


@pytest.fixture
def browser() -> Client:
    """A client that receives what a browser would, instead of re-raising server errors."""
    return Client(raise_request_exception=False)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What the project's log handler (the one with the PHI filter) writes.

    The handler writes to the stderr of the moment, which pytest swaps in and out around
    each test; a handler with the same filters and format, writing to a buffer, stands
    in for it during the test.
    """
    root = logging.getLogger()
    (handler,) = (
        h for h in root.handlers if any(isinstance(f, RedactPHIFilter) for f in h.filters)
    )
    buffer = io.StringIO()
    stand_in = logging.StreamHandler(buffer)
    stand_in.setFormatter(handler.formatter)
    stand_in.setLevel(handler.level)
    for f in handler.filters:
        stand_in.addFilter(f)
    root.removeHandler(handler)
    root.addHandler(stand_in)
    try:
        yield buffer
    finally:
        root.removeHandler(stand_in)
        root.addHandler(handler)


# --- error pages ----------------------------------------------------------------------------


def test_a_server_error_shows_a_plain_page_without_traceback_or_data(browser):
    r = browser.get("/boom/patient-data/")

    assert r.status_code == 500
    body = r.content.decode()
    assert "Something went wrong" in body
    for leak in (NAME, MRN, "RuntimeError", "Traceback", "File "):
        assert leak not in body


def test_a_bad_query_is_a_500_without_sql_not_an_outage(browser):
    r = browser.get("/boom/sql/")

    assert r.status_code == 500
    for leak in ("SELECT", "no_such_column", NAME, "Traceback"):
        assert leak not in r.content.decode()


def test_an_api_server_error_has_no_sql_or_traceback(browser):
    r = browser.get("/api/v1/boom/sql/")

    assert r.status_code == 500
    for leak in ("SELECT", "no_such_column", NAME, "Traceback"):
        assert leak not in r.content.decode()


def test_error_pages_are_never_stored(browser):
    r = browser.get("/boom/patient-data/")

    assert "no-store" in r["Cache-Control"]


def test_a_not_found_page_lists_no_urls(client, nurse):
    client.force_login(nurse)

    r = client.get("/no/such/page/")

    assert r.status_code == 404
    assert b"patients/&lt;int:pk&gt;" not in r.content and b"URLconf" not in r.content


def test_an_api_validation_error_names_the_field_and_nothing_else(api, oncologist):
    api.force_authenticate(oncologist)

    r = api.post("/api/v1/patients/", {"given_name": NAME}, format="json")

    assert r.status_code == 400
    assert "mrn" in r.json()
    assert "Traceback" not in r.content.decode() and "SELECT" not in r.content.decode()
    assert not Patient.objects.exists()


# --- database outage --------------------------------------------------------------------------


def _assert_plain_503(r) -> None:
    assert r.status_code == 503
    assert r["Retry-After"] == "30"
    assert "no-store" in r["Cache-Control"]
    body = r.content.decode()
    assert "The database cannot be reached" in body
    for leak in ("Traceback", "OperationalError", "sqlite", "5432", "connection"):
        assert leak not in body


def test_with_the_database_down_a_page_answers_503_plainly(browser, tmp_path):
    with unreachable_database(tmp_path):
        r = browser.get("/accounts/login/")

    _assert_plain_503(r)


def test_with_the_database_down_a_signed_in_user_gets_503_too(browser, nurse, tmp_path):
    # Sessions and authentication query the database before any view runs.
    browser.force_login(nurse)

    with unreachable_database(tmp_path):
        r = browser.get("/patients/")

    _assert_plain_503(r)


def test_with_the_database_down_the_api_answers_503_in_json(api, nurse, tmp_path):
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token(nurse)}")

    with unreachable_database(tmp_path):
        r = api.get("/api/v1/patients/")

    assert r.status_code == 503
    assert r.json() == {"detail": "The database is unavailable; try again shortly."}
    assert r["Retry-After"] == "30"


def test_with_the_database_down_the_api_by_session_answers_503_in_json(tmp_path, nurse):
    client = Client(raise_request_exception=False)
    client.force_login(nurse)

    with unreachable_database(tmp_path):
        r = client.get("/api/v1/patients/")

    assert r.status_code == 503
    assert r.json()["detail"] == "The database is unavailable; try again shortly."


def test_an_outage_during_a_post_logs_no_patient_data(browser, oncologist, tmp_path, log_output):
    browser.force_login(oncologist)

    with unreachable_database(tmp_path):
        r = browser.post("/patients/new/", {"given_name": NAME, "family_name": "Quill"})

    assert r.status_code == 503
    logged = log_output.getvalue()
    assert "/patients/new/" in logged
    assert NAME not in logged and "Quill" not in logged


# --- logs --------------------------------------------------------------------------------------


def test_a_server_error_logs_the_traceback_without_the_patient_data(browser, log_output):
    browser.get("/boom/patient-data/")

    logged = log_output.getvalue()
    assert "Internal Server Error: /boom/patient-data/" in logged
    assert "crash_with_patient_data" in logged  # where it happened is kept
    assert f"builtins.RuntimeError: {WITHHELD}" in logged
    for leak in (NAME, MRN, COUNT):
        assert leak not in logged


def test_a_failed_query_logs_no_sql_values(browser, log_output):
    # PostgreSQL quotes the failing statement with its values in the error message.
    browser.get("/boom/sql/")

    assert NAME not in log_output.getvalue()


def test_a_bad_request_with_a_patient_name_logs_only_the_path(client, oncologist, log_output):
    client.force_login(oncologist)

    r = client.post(
        "/patients/new/",
        {"mrn": MRN, "given_name": NAME, "family_name": "Quill", "birth_date": "not a date"},
    )

    assert r.status_code == 400
    logged = log_output.getvalue()
    assert "Bad Request: /patients/new/" in logged
    for leak in (NAME, "Quill", MRN, "not a date"):
        assert leak not in logged


def test_a_search_in_the_query_string_is_withheld_from_request_lines():
    line = '"GET /patients/?q=Zebedee+Quill&page=2 HTTP/1.1" 200 5120'

    assert strip_query_strings(line) == '"GET /patients/?[withheld] HTTP/1.1" 200 5120'


def test_the_filter_withholds_exception_messages_but_keeps_the_traceback():
    try:
        try:
            raise KeyError(f"{NAME} MRN {MRN}")
        except KeyError as exc:
            raise ValueError(f"count {COUNT} for {NAME}") from exc
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    RedactPHIFilter().filter(record)
    text = logging.Formatter().format(record)

    assert NAME not in text and MRN not in text and COUNT not in text
    assert f"builtins.KeyError: {WITHHELD}" in text
    assert f"builtins.ValueError: {WITHHELD}" in text
    assert "test_the_filter_withholds_exception_messages_but_keeps_the_traceback" in text
