"""The access-log gaps an attack found: every read or write of patient data names its patients,
no patient's name reaches a URL through admin search, a refused session request says whose
session it was, and a sender's control id cannot write what it likes into the log."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.cache import cache
from django.test import Client

from patients.interop.csv import importer
from patients.models import AccessAction, AccessEvent
from tests import builders
from tests.paths import DATA as SAMPLES

pytestmark = pytest.mark.django_db

HL7 = SAMPLES / "hl7"


def test_an_admin_list_names_the_patients_it_showed(client, admin_user, patient, oncologist):
    other = builders.patient(oncologist, mrn="MRN0002", birth_date=date(1970, 1, 1))
    client.force_login(admin_user)

    r = client.get("/admin/patients/patient/")

    assert r.status_code == 200
    event = AccessEvent.objects.filter(target__startswith="admin patient list").get()
    assert event.target == f"admin patient list: patients {patient.pk}, {other.pk}"


def test_an_admin_list_of_draws_names_their_patient(client, admin_user, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=date(2026, 3, 1))
    client.force_login(admin_user)

    client.get("/admin/patients/ctcdraw/")

    event = AccessEvent.objects.filter(target__startswith="admin ctcdraw list").get()
    assert event.patient_id == patient.pk


def test_admin_search_never_takes_a_name_or_mrn(client, admin_user, patient):
    client.force_login(admin_user)

    by_name = client.get("/admin/patients/patient/", {"q": "Doe"})
    by_id = client.get("/admin/patients/patient/", {"q": str(patient.pk)})

    assert by_name.status_code == 200
    assert "MRN0001" not in by_name.content.decode()  # a name finds nobody
    assert "MRN0001" in by_id.content.decode()
    assert "Search by patient id" in by_name.content.decode()


def test_a_session_api_request_refused_for_csrf_is_logged_with_its_user(nurse, patient):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(nurse)

    r = browser.post(f"/api/v1/patients/{patient.pk}/draws/", {}, content_type="application/json")

    assert r.status_code == 403
    event = AccessEvent.objects.get(action=AccessAction.PERMISSION_DENIED)
    assert event.username == "nina"
    assert event.target.endswith("(CSRF check failed)")


def test_a_senders_control_id_is_bounded_in_the_log(api, oncologist, patient):
    api.force_authenticate(oncologist)
    body = (HL7 / "oru_r01_final.hl7").read_text()
    hostile = "<script>" + "X" * 300 + "\u202e"
    body = body.replace("CL260302-0001", hostile.replace("|", ""), 1)

    api.generic("POST", "/api/v1/hl7/oru/", data=body.encode(), content_type="text/plain")

    event = AccessEvent.objects.get(action=AccessAction.IMPORT)
    control_id = event.target.removeprefix("HL7 ").split(":")[0]
    assert control_id == "?script?" + "X" * 32 + "…"
    assert "<" not in event.target and "\u202e" not in event.target


def test_a_csv_import_names_the_patients_it_wrote(oncologist, patient):
    text = (
        "mrn,drawn_at,blood_volume_ml,status,ctc_count\nMRN0001,2026-03-01 08:30,7.5,resulted,4\n"
    )

    importer.import_csv(text, by=oncologist, source="test.csv", channel="CSV upload")

    event = AccessEvent.objects.get(action=AccessAction.IMPORT)
    assert event.patient_id == patient.pk
    assert event.target == "CSV upload: 1 draw added"


# --- anonymous refusals are counted, not written one by one --------------------------------


@pytest.fixture
def counting_cache():
    """A cache with no counts from earlier tests (local memory lives as long as the process)."""
    cache.clear()
    yield
    cache.clear()


def test_an_anonymous_flood_of_refused_posts_writes_a_few_counted_rows(counting_cache):
    browser = Client(enforce_csrf_checks=True)

    for _ in range(300):
        assert browser.post("/accounts/login/", {}).status_code == 403

    targets = list(
        AccessEvent.objects.filter(action=AccessAction.PERMISSION_DENIED)
        .order_by("id")
        .values_list("target", flat=True)
    )
    # 1, 10, 100 (all in one minute, unless the test straddles one: then a few more)
    assert 3 <= len(targets) <= 6
    assert targets[0] == "POST /accounts/login/ (CSRF check failed)"
    assert (
        "POST /accounts/login/ (CSRF check failed) (refusal 100 from this address this minute)"
        in targets
    )


def test_anonymous_api_calls_without_credentials_are_counted_too(api, counting_cache):
    for _ in range(20):
        assert api.get("/api/v1/patients/").status_code == 401

    assert 2 <= AccessEvent.objects.filter(action=AccessAction.PERMISSION_DENIED).count() <= 4


def test_a_signed_in_users_refusals_are_each_written(nurse, counting_cache):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(nurse)

    for _ in range(12):
        browser.post("/patients/new/", {})

    assert AccessEvent.objects.filter(action=AccessAction.PERMISSION_DENIED).count() == 12


def test_the_full_export_names_the_patients_whose_draws_it_holds(client, oncologist, patient):
    with_draws = builders.patient(oncologist, mrn="MRN0002", birth_date=date(1970, 1, 1))
    builders.patient(oncologist, mrn="MRN0003", birth_date=date(1971, 1, 1))  # no draw yet
    builders.draw(patient, oncologist, drawn_at=date(2026, 3, 1))
    builders.draw(with_draws, oncologist, drawn_at=date(2026, 3, 2))
    client.force_login(oncologist)

    r = client.post("/exports/draws.csv", {"reason": "Tumour board audit", "confirm": "on"})
    b"".join(r.streaming_content)

    event = AccessEvent.objects.get(action=AccessAction.EXPORT)
    assert event.target == (
        "CSV of all patients' draws; reason: Tumour board audit: "
        f"patients {patient.pk}, {with_draws.pk}"
    )
