"""A patient's oncologist, set through the API, must be an active oncologist.

Every refusal reads the same and never echoes the id, so the API does not
reveal which user ids exist or what role they hold.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from patients.models import Patient
from patients.roles import NURSE, ONCOLOGIST
from tests import builders

pytestmark = pytest.mark.django_db

URL = "/api/v1/patients/"
NEW = {
    "mrn": "MRN0200",
    "given_name": "Ann",
    "family_name": "Lee",
    "birth_date": "1958-03-02",
    "sex": "female",
    "cancer_type": "colorectal",
}
MESSAGE = "Choose an active oncologist."


def _not_an_oncologist(kind: str) -> int:
    if kind == "nurse":
        return builders.user_with_role(NURSE).pk
    if kind == "staff":
        return get_user_model().objects.create_user("stu", is_staff=True).pk
    if kind == "no role":
        return builders.user_with_role(None).pk
    if kind == "inactive oncologist":
        user = builders.user_with_role(ONCOLOGIST)
        user.is_active = False
        user.save()
        return user.pk
    return 987654  # unknown


KINDS = ["nurse", "staff", "no role", "inactive oncologist", "unknown"]


@pytest.mark.parametrize("kind", KINDS)
def test_creating_a_patient_refuses_anyone_but_an_active_oncologist(api, oncologist, kind):
    user_id = _not_an_oncologist(kind)
    api.force_authenticate(oncologist)

    r = api.post(URL, {**NEW, "oncologist": user_id}, format="json")

    assert r.status_code == 400
    assert r.json()["oncologist"] == [MESSAGE]
    assert str(user_id) not in r.content.decode()
    assert not Patient.objects.filter(mrn="MRN0200").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_editing_a_patient_refuses_anyone_but_an_active_oncologist(api, oncologist, patient, kind):
    user_id = _not_an_oncologist(kind)
    api.force_authenticate(oncologist)

    r = api.patch(
        f"{URL}{patient.pk}/",
        {"oncologist": user_id, "version": patient.version, "reason": "Handover"},
        format="json",
    )

    assert r.status_code == 400
    assert r.json()["oncologist"] == [MESSAGE]
    assert str(user_id) not in r.content.decode()
    patient.refresh_from_db()
    assert patient.oncologist_id is None


@pytest.mark.parametrize("value", ["abc", [1], {"id": 1}])
def test_a_malformed_oncologist_gets_the_same_message(api, oncologist, value):
    api.force_authenticate(oncologist)

    r = api.post(URL, {**NEW, "oncologist": value}, format="json")

    assert r.status_code == 400
    assert r.json()["oncologist"] == [MESSAGE]


def test_an_active_oncologist_is_accepted(api, oncologist):
    api.force_authenticate(oncologist)

    r = api.post(URL, {**NEW, "oncologist": oncologist.pk}, format="json")

    assert r.status_code == 201
    assert Patient.objects.get(mrn="MRN0200").oncologist == oncologist
