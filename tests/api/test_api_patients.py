"""/api/v1/patients/: list, search, create, read and edit patients."""

from __future__ import annotations

import pytest

from patients.models import Patient

pytestmark = pytest.mark.django_db

URL = "/api/v1/patients/"
NEW = {
    "mrn": "MRN0100",
    "given_name": "Ann",
    "family_name": "Lee",
    "birth_date": "1958-03-02",
    "sex": "female",
    "cancer_type": "colorectal",
}


def test_it_creates_a_patient_and_returns_it_with_its_id(api, oncologist):
    api.force_authenticate(oncologist)

    r = api.post(URL, {**NEW, "diagnosed_on": "2025-11-01"}, format="json")

    assert r.status_code == 201
    body = r.json()
    patient = Patient.objects.get(mrn="MRN0100")
    assert body["id"] == patient.pk
    assert body["cancer_type"] == "colorectal"
    assert body["cutoff"] == 3
    assert body["version"] == 1
    assert str(patient.diagnosed_on) == "2025-11-01"
    assert patient.history.get().history_user == oncologist


def test_it_lists_patients_paginated_and_searches_by_name_or_mrn(api, nurse, oncologist, settings):
    for i in range(3):
        api.force_authenticate(oncologist)
        api.post(URL, {**NEW, "mrn": f"S-{i}", "family_name": f"Family{i}"}, format="json")
    api.force_authenticate(nurse)

    everyone = api.get(URL).json()
    by_name = api.get(URL, {"search": "family1"}).json()
    by_mrn = api.get(URL, {"search": "S-2"}).json()
    page = api.get(URL, {"page_size": 2}).json()

    assert set(everyone) == {"count", "next", "previous", "results"}
    assert everyone["count"] == 3
    assert [p["mrn"] for p in by_name["results"]] == ["S-1"]
    assert [p["mrn"] for p in by_mrn["results"]] == ["S-2"]
    assert len(page["results"]) == 2
    assert page["next"] is not None


def test_the_list_takes_a_fixed_number_of_queries(
    api, nurse, oncologist, django_assert_max_num_queries, care_teams
):
    api.force_authenticate(oncologist)
    for i in range(20):
        api.post(URL, {**NEW, "mrn": f"Q-{i}"}, format="json")
    api.force_authenticate(nurse)

    # 6 for the page, 1 asking whether care teams apply, 1 for the patients' teams,
    # 3 for its access-log entry (lock, last hash, insert).
    with django_assert_max_num_queries(11):
        r = api.get(URL)

    assert r.json()["count"] == 20


def test_it_edits_a_patient_with_its_version(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.patch(f"{URL}{patient.pk}/", {"family_name": "Doe-Smith", "version": 1}, format="json")

    assert r.status_code == 200
    assert r.json()["family_name"] == "Doe-Smith"
    assert r.json()["version"] == 2


def test_a_stale_version_gets_409_and_changes_nothing(api, oncologist, patient):
    api.force_authenticate(oncologist)
    api.patch(f"{URL}{patient.pk}/", {"given_name": "Janet", "version": 1}, format="json")

    r = api.patch(f"{URL}{patient.pk}/", {"given_name": "Joan", "version": 1}, format="json")

    assert r.status_code == 409
    assert "changed by someone else" in r.json()["version"][0]
    assert Patient.objects.get(pk=patient.pk).given_name == "Janet"
    (missed,) = r.json()["changes_since_your_version"]
    assert missed["by"] == oncologist.username
    assert missed["changes"] == [{"field": "given name", "old": "Jane", "new": "Janet"}]
    assert "given name: Jane → Janet" in missed["summary"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"mrn": "MRN0001"}, "mrn"),
        ({"cancer_type": "lung"}, "cancer_type"),
        ({"sex": "x"}, "sex"),
        ({"birth_date": "17/05/1960"}, "birth_date"),
        ({"birth_date": "1960-02-30"}, "birth_date"),
        ({"given_name": ""}, "given_name"),
        ({"mrn": "has spaces"}, "mrn"),
        ({"diagnosed_on": "1950-01-01", "birth_date": "1960-01-01"}, "diagnosed_on"),
    ],
)
def test_bad_input_names_the_field_and_saves_nothing(api, oncologist, patient, change, field):
    api.force_authenticate(oncologist)

    r = api.post(URL, {**NEW, **change}, format="json")

    assert r.status_code == 400
    assert list(r.json()) == [field]
    assert r.json()[field][0]
    assert Patient.objects.count() == 1


def test_an_unknown_cancer_type_lists_the_choices(api, oncologist):
    api.force_authenticate(oncologist)

    r = api.post(URL, {**NEW, "cancer_type": "lung"}, format="json")

    assert r.json() == {"cancer_type": ['"lung" is not one of: breast, prostate, colorectal.']}


def test_a_missing_field_is_reported(api, oncologist):
    api.force_authenticate(oncologist)
    incomplete = {k: v for k, v in NEW.items() if k != "birth_date"}

    r = api.post(URL, incomplete, format="json")

    assert r.status_code == 400
    assert r.json() == {"birth_date": ["This field is required."]}


def test_malformed_json_is_a_400_and_saves_nothing(api, oncologist):
    api.force_authenticate(oncologist)

    r = api.post(URL, '{"mrn": "X",', content_type="application/json")

    assert r.status_code == 400
    assert not Patient.objects.exists()


def test_choices_are_accepted_by_label_in_any_case(api, oncologist):
    api.force_authenticate(oncologist)

    r = api.post(URL, {**NEW, "sex": "Female", "cancer_type": "Colorectal"}, format="json")

    assert r.status_code == 201
    assert (r.json()["sex"], r.json()["cancer_type"]) == ("female", "colorectal")
