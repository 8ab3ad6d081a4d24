"""Who may use the API: anonymous 401, no role 403, nurses read, oncologists and staff write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from patients.models import AccessAction, AccessEvent, ApiToken, Patient

pytestmark = pytest.mark.django_db

NEW_PATIENT = {
    "mrn": "NEW-1",
    "given_name": "Ann",
    "family_name": "Lee",
    "birth_date": "1958-03-02",
    "sex": "female",
    "cancer_type": "breast",
}


def _read_urls(patient, line, cycle, draw) -> list[str]:
    return [
        "/api/v1/patients/",
        f"/api/v1/patients/{patient.pk}/",
        f"/api/v1/patients/{patient.pk}/therapy-lines/",
        f"/api/v1/therapy-lines/{line.pk}/cycles/",
        f"/api/v1/cycles/{cycle.pk}/",
        f"/api/v1/patients/{patient.pk}/draws/",
        f"/api/v1/draws/{draw.pk}/",
        f"/api/v1/patients/{patient.pk}/imaging/",
    ]


def test_anonymous_users_get_401_everywhere(api, patient, line, cycle, draw):
    for url in _read_urls(patient, line, cycle, draw):
        assert api.get(url).status_code == 401, url
    assert api.post("/api/v1/patients/", NEW_PATIENT, format="json").status_code == 401
    assert not Patient.objects.filter(mrn="NEW-1").exists()


def test_users_without_a_role_get_403_everywhere(api, outsider, patient, line, cycle, draw):
    api.force_authenticate(outsider)

    for url in _read_urls(patient, line, cycle, draw):
        assert api.get(url).status_code == 403, url
    assert api.post("/api/v1/patients/", NEW_PATIENT, format="json").status_code == 403


def test_nurses_read_everything_but_write_nothing(api, nurse, patient, line, cycle, draw):
    api.force_authenticate(nurse)

    for url in _read_urls(patient, line, cycle, draw):
        assert api.get(url).status_code == 200, url
    assert api.post("/api/v1/patients/", NEW_PATIENT, format="json").status_code == 403
    assert api.patch(f"/api/v1/draws/{draw.pk}/", {"ctc_count": 9}).status_code == 403
    assert api.patch(f"/api/v1/cycles/{cycle.pk}/", {"status": "given"}).status_code == 403
    draw.refresh_from_db()
    assert draw.ctc_count == 3


def test_oncologists_and_staff_may_write(api, oncologist, admin_user):
    api.force_authenticate(oncologist)
    assert api.post("/api/v1/patients/", NEW_PATIENT, format="json").status_code == 201

    api.force_authenticate(admin_user)
    staff_patient = {**NEW_PATIENT, "mrn": "NEW-2"}
    assert api.post("/api/v1/patients/", staff_patient, format="json").status_code == 201


def test_a_token_is_issued_for_a_username_and_password(api, nurse, patient):
    r = api.post(
        "/api/v1/auth/token/",
        {"username": "nina", "password": "correct-horse-42"},
        format="json",
    )
    assert r.status_code == 200
    token = r.json()["token"]

    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listed = api.get("/api/v1/patients/")

    assert listed.status_code == 200
    assert listed.json()["results"][0]["mrn"] == "MRN0001"
    stored = ApiToken.objects.get(user=nurse)
    assert stored.prefix == token[:8]
    assert token not in (stored.digest, stored.prefix)  # only a hash of the key is kept


def test_a_wrong_password_gets_no_token(api, nurse):
    r = api.post("/api/v1/auth/token/", {"username": "nina", "password": "nope"}, format="json")

    assert r.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_bad_token_is_refused(api, patient):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert api.get("/api/v1/patients/").status_code == 401


def _token_for(api, username: str = "nina") -> str:
    body = {"username": username, "password": "correct-horse-42"}
    return api.post("/api/v1/auth/token/", body, format="json").json()["token"]


def _age(token: str, seconds: int) -> None:
    # As if issued `seconds` ago: it expires when a token issued then would.
    issued = timezone.now() - timedelta(seconds=seconds)
    max_age = timedelta(seconds=django_settings.CTCTRACK_API_TOKEN_MAX_AGE_SECONDS)
    ApiToken.objects.filter(prefix=token[:8]).update(created_at=issued, expires_at=issued + max_age)


def test_a_token_expires_like_a_session(api, nurse, patient, settings):
    settings.CTCTRACK_API_TOKEN_MAX_AGE_SECONDS = 3600
    token = _token_for(api)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    _age(token, 3599)
    assert api.get("/api/v1/patients/").status_code == 200

    _age(token, 3601)
    r = api.get("/api/v1/patients/")
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]
    failed = AccessEvent.objects.filter(action=AccessAction.LOGIN_FAILED).get()
    assert failed.target == "GET /api/v1/patients/"


def test_asking_again_after_expiry_gives_a_new_token_that_works(api, nurse, patient, settings):
    settings.CTCTRACK_API_TOKEN_MAX_AGE_SECONDS = 3600
    old = _token_for(api)
    _age(old, 3601)
    new = _token_for(api)

    assert new != old
    api.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert api.get("/api/v1/patients/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert api.get("/api/v1/patients/").status_code == 200


def test_tokens_last_as_long_as_a_session_by_default():
    from django.conf import settings

    assert settings.CTCTRACK_API_TOKEN_MAX_AGE_SECONDS == 12 * 3600


def test_a_session_login_works_for_the_api(client, nurse, patient):
    client.force_login(nurse)

    r = client.get("/api/v1/patients/", HTTP_ACCEPT="application/json")

    assert r.status_code == 200
    assert r.json()["count"] == 1


def test_session_writes_need_the_csrf_token(oncologist):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(oncologist)

    r = csrf_client.post("/api/v1/patients/", NEW_PATIENT, content_type="application/json")

    assert r.status_code == 403
    assert not Patient.objects.filter(mrn="NEW-1").exists()


def test_nothing_is_ever_deleted_through_the_api(api, oncologist, admin_user, patient, draw):
    api.force_authenticate(oncologist)
    assert api.delete(f"/api/v1/patients/{patient.pk}/").status_code == 403
    assert api.delete(f"/api/v1/draws/{draw.pk}/").status_code == 403

    api.force_authenticate(admin_user)  # holds every permission, still no DELETE
    assert api.delete(f"/api/v1/patients/{patient.pk}/").status_code == 405
    assert api.delete(f"/api/v1/draws/{draw.pk}/").status_code == 405
    assert api.put(f"/api/v1/draws/{draw.pk}/", {}).status_code == 405
    assert Patient.objects.filter(pk=patient.pk).exists()
    assert draw.patient.draws.count() == 1


def test_unknown_ids_are_404(api, nurse):
    api.force_authenticate(nurse)

    for url in [
        "/api/v1/patients/999999/",
        "/api/v1/patients/999999/draws/",
        "/api/v1/patients/999999/therapy-lines/",
        "/api/v1/patients/999999/imaging/",
        "/api/v1/therapy-lines/999999/cycles/",
        "/api/v1/cycles/999999/",
        "/api/v1/draws/999999/",
    ]:
        assert api.get(url).status_code == 404, url
