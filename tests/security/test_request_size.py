"""A form too large for Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` (2.5 MB) answers 413
and says so (a page, the API's JSON, FHIR's OperationOutcome), never a bare 400;
a request Django cannot read otherwise gets the app's 400 page.

Real requests through the whole middleware stack (CSRF checks included: the
limit is met when the middleware reads the form).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.asserts import assertContains

from patients.models import CTCDraw, Patient

pytestmark = pytest.mark.django_db

OVER = 3 * 1024 * 1024  # over Django's 2.5 MB
LIMIT_TEXT = (
    "The form sent is larger than 2.5 MB, the most a form may send (files chosen in a file "
    "field do not count towards it)."
)


@pytest.fixture
def signed_in(oncologist) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(oncologist)
    client.get("/patients/new/")  # the CSRF cookie, as a browser holds it
    return client


def _csrf(client: Client) -> str:
    return client.cookies["csrftoken"].value


def test_a_form_over_the_limit_answers_413_naming_it_and_saves_nothing(signed_in):
    r = signed_in.post(
        "/patients/new/",
        {"csrfmiddlewaretoken": _csrf(signed_in), "given_name": "x" * OVER, "family_name": "Q"},
    )

    assert r.status_code == 413
    assertContains(r, LIMIT_TEXT, status_code=413)
    assertContains(r, "Nothing was saved.", status_code=413)
    assert not Patient.objects.exists()


def test_the_limit_named_follows_the_setting(signed_in, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

    r = signed_in.post(
        "/patients/new/", {"csrfmiddlewaretoken": _csrf(signed_in), "given_name": "x" * OVER}
    )

    assertContains(r, "larger than 1 MB, the most a form may send", status_code=413)


def test_a_csv_file_over_its_own_limit_gets_the_upload_pages_error(signed_in):
    # Files do not count towards the form limit: the upload page's own 5 MB limit speaks.
    big = b"mrn,drawn_at,status,ctc_count\r\n" + b"M" * (5 * 1024 * 1024)

    r = signed_in.post(
        "/imports/csv/",
        {"csrfmiddlewaretoken": _csrf(signed_in), "file": SimpleUploadedFile("x.csv", big)},
    )

    assertContains(r, "The file is larger than 5 MB; split it or use the command.", status_code=400)
    assert not CTCDraw.objects.exists()


def test_the_api_answers_a_form_over_the_limit_in_json(oncologist):
    client = Client()
    client.force_login(oncologist)

    r = client.post("/api/v1/patients/", {"given_name": "x" * OVER})

    assert (r.status_code, r.json()) == (413, {"detail": LIMIT_TEXT})


def test_fhir_answers_a_form_over_the_limit_with_an_operation_outcome(oncologist):
    client = Client()
    client.force_login(oncologist)

    r = client.post(
        "/fhir/r4/Observation/_search",
        urlencode({"patient": "x" * OVER}),
        content_type="application/x-www-form-urlencoded",
    )

    assert r.status_code == 413
    assert r.json()["issue"][0]["code"] == "too-long"
    assert r.json()["issue"][0]["diagnostics"] == LIMIT_TEXT


def test_a_form_django_cannot_read_otherwise_gets_the_apps_400_page(signed_in, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = {f"field{n}": "1" for n in range(20)}

    r = signed_in.post("/patients/new/", {"csrfmiddlewaretoken": _csrf(signed_in), **fields})

    assertContains(r, "The request could not be read", status_code=400)
    assertContains(r, "Nothing was saved.", status_code=400)
