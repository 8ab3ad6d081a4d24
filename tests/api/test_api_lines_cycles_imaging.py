"""Therapy lines, their cycles, and imaging through the API."""

from __future__ import annotations

import pytest

from patients.models import ImagingAssessment, TherapyLine, TreatmentCycle

pytestmark = pytest.mark.django_db

LINE = {"regimen": "FOLFOX", "start_date": "2026-02-02", "cycle_length_days": 14}


def _lines(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/therapy-lines/"


def _cycles(line) -> str:
    return f"/api/v1/therapy-lines/{line.pk}/cycles/"


def test_it_adds_therapy_lines_numbering_them_in_turn(api, oncologist, patient):
    api.force_authenticate(oncologist)

    first = api.post(_lines(patient), {**LINE, "contains_doxorubicin": True}, format="json")
    second = api.post(_lines(patient), {**LINE, "start_date": "2026-06-01"}, format="json")

    assert first.status_code == second.status_code == 201
    assert (first.json()["line_number"], second.json()["line_number"]) == (1, 2)
    assert first.json()["contains_doxorubicin"] is True
    assert [line["id"] for line in api.get(_lines(patient)).json()] == [
        first.json()["id"],
        second.json()["id"],
    ]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"cycle_length_days": 0}, "cycle_length_days"),
        ({"cycle_length_days": 400}, "cycle_length_days"),
        ({"cycle_length_days": "three weeks"}, "cycle_length_days"),
        ({"end_date": "2026-01-01"}, "end_date"),
        ({"regimen": ""}, "regimen"),
        ({"start_date": "2026-13-01"}, "start_date"),
        ({"line_number": 0}, "line_number"),
    ],
)
def test_a_bad_line_names_the_field_and_saves_nothing(api, oncologist, patient, change, field):
    api.force_authenticate(oncologist)

    r = api.post(_lines(patient), {**LINE, **change}, format="json")

    assert r.status_code == 400, r.json()
    assert list(r.json()) == [field]
    assert not TherapyLine.objects.exists()


def test_a_duplicate_line_number_is_refused(api, oncologist, patient, line):
    api.force_authenticate(oncologist)

    r = api.post(_lines(patient), {**LINE, "line_number": 1}, format="json")

    assert r.json() == {"line_number": ["This patient already has a line 1."]}


def test_it_plans_cycles_and_lists_them_in_order(api, oncologist, line):
    api.force_authenticate(oncologist)

    for number, day1 in [(2, "2026-01-26"), (1, "2026-01-05")]:
        r = api.post(_cycles(line), {"number": number, "scheduled_date": day1}, format="json")
        assert r.status_code == 201
        assert r.json()["status"] == "planned"

    assert [c["number"] for c in api.get(_cycles(line)).json()] == [1, 2]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"number": 1, "scheduled_date": "2026-01-26"}, "number"),  # duplicate
        ({"number": 0, "scheduled_date": "2026-01-26"}, "number"),
        ({"number": 2, "scheduled_date": "2026-01-26", "status": "delayed"}, "status_reason"),
        ({"number": 2, "scheduled_date": "2026-01-26", "status": "skipped"}, "status"),
        ({"number": 2, "scheduled_date": "not a date"}, "scheduled_date"),
    ],
)
def test_a_bad_cycle_names_the_field_and_saves_nothing(api, oncologist, cycle, body, field):
    api.force_authenticate(oncologist)

    r = api.post(_cycles(cycle.therapy_line), body, format="json")

    assert r.status_code == 400, r.json()
    assert list(r.json()) == [field]
    assert TreatmentCycle.objects.count() == 1


def test_a_cycle_is_delayed_with_a_reason_and_given_later(api, oncologist, cycle):
    api.force_authenticate(oncologist)
    url = f"/api/v1/cycles/{cycle.pk}/"

    no_reason = api.patch(url, {"status": "delayed", "version": 1}, format="json")
    delayed = api.patch(
        url,
        {
            "status": "delayed",
            "status_reason": "Platelets 62",
            "scheduled_date": "2026-01-12",
            "version": 1,
        },
        format="json",
    )
    given = api.patch(
        url,
        {"status": "given", "given_date": "2026-01-12", "status_reason": "", "version": 2},
        format="json",
    )

    assert no_reason.status_code == 400
    assert no_reason.json() == {"status_reason": ["Give a reason why the cycle is delayed."]}
    assert delayed.status_code == 200
    assert given.status_code == 200
    assert given.json()["version"] == 3
    assert [h.status for h in cycle.history.order_by("history_date")] == [
        "planned",
        "delayed",
        "given",
    ]


def test_it_records_imaging_with_its_recist_response(api, oncologist, nurse, patient):
    api.force_authenticate(oncologist)

    r = api.post(
        f"/api/v1/patients/{patient.pk}/imaging/",
        {"performed_on": "2026-02-20", "modality": "PET-CT", "response": "pd", "note": "Liver"},
        format="json",
    )
    api.force_authenticate(nurse)
    listed = api.get(f"/api/v1/patients/{patient.pk}/imaging/").json()

    assert r.status_code == 201
    assert (r.json()["modality"], r.json()["response"]) == ("pet_ct", "PD")
    assert [i["id"] for i in listed] == [r.json()["id"]]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"modality": "x-ray"}, "modality"),
        ({"response": "better"}, "response"),
        ({"performed_on": "2999-01-01"}, "performed_on"),
    ],
)
def test_bad_imaging_names_the_field(api, oncologist, patient, change, field):
    api.force_authenticate(oncologist)
    body = {"performed_on": "2026-02-20", "modality": "CT", "response": "SD", **change}

    r = api.post(f"/api/v1/patients/{patient.pk}/imaging/", body, format="json")

    assert r.status_code == 400
    assert list(r.json()) == [field]
    assert not ImagingAssessment.objects.exists()
