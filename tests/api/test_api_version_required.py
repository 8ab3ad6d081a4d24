"""An API edit without the `version` it was based on: 428, and nothing saved."""

from __future__ import annotations

import pytest

from patients.messages import VERSION_REQUIRED

pytestmark = pytest.mark.django_db


def _refused(r) -> None:
    assert r.status_code == 428
    assert r.json() == {"version": [VERSION_REQUIRED]}


def test_a_patient_patch_without_a_version_is_refused(api, oncologist, patient):
    api.force_authenticate(oncologist)

    _refused(api.patch(f"/api/v1/patients/{patient.pk}/", {"given_name": "Joan"}, format="json"))

    patient.refresh_from_db()
    assert (patient.given_name, patient.version) == ("Jane", 1)


def test_a_cycle_patch_without_a_version_is_refused(api, oncologist, cycle):
    api.force_authenticate(oncologist)

    _refused(api.patch(f"/api/v1/cycles/{cycle.pk}/", {"number": 2}, format="json"))

    cycle.refresh_from_db()
    assert (cycle.number, cycle.version) == (1, 1)


def test_a_draw_patch_without_a_version_is_refused(api, oncologist, draw):
    api.force_authenticate(oncologist)

    r = api.patch(f"/api/v1/draws/{draw.pk}/", {"ctc_count": 30, "reason": "Typo"}, format="json")

    _refused(r)
    draw.refresh_from_db()
    assert (draw.ctc_count, draw.version) == (3, 1)


def test_entered_in_error_without_a_version_is_refused(api, oncologist, draw):
    api.force_authenticate(oncologist)

    r = api.post(
        f"/api/v1/draws/{draw.pk}/entered-in-error/", {"reason": "Duplicate"}, format="json"
    )

    _refused(r)
    draw.refresh_from_db()
    assert (draw.entered_in_error, draw.version) == (False, 1)


def test_a_null_version_is_refused_like_a_missing_one(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.patch(
        f"/api/v1/patients/{patient.pk}/", {"given_name": "Joan", "version": None}, format="json"
    )

    assert r.status_code in (400, 428)
    assert "version" in r.json()
    patient.refresh_from_db()
    assert patient.given_name == "Jane"
