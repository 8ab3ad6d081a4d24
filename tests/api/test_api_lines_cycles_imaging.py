"""Therapy lines, their cycles, and imaging through the API."""

from __future__ import annotations

from datetime import date

import pytest

from patients import services
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


@pytest.fixture
def scan(oncologist, patient) -> ImagingAssessment:
    return services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 2, 20), modality="ct", response="SD"
    )


def test_imaging_is_corrected_with_its_version_and_a_reason_keeping_its_history(
    api, oncologist, scan
):
    api.force_authenticate(oncologist)
    url = f"/api/v1/imaging/{scan.pk}/"

    without_reason = api.patch(url, {"response": "PR", "version": 1}, format="json")
    without_version = api.patch(url, {"response": "PR", "reason": "Amended"}, format="json")
    r = api.patch(url, {"response": "PR", "version": 1, "reason": "Report amended"}, format="json")
    stale = api.patch(url, {"response": "PD", "version": 1, "reason": "x"}, format="json")

    assert without_reason.status_code == 400 and list(without_reason.json()) == ["reason"]
    assert without_version.status_code == 428
    assert r.status_code == 200, r.json()
    assert (r.json()["response"], r.json()["version"]) == ("PR", 2)
    assert stale.status_code == 409
    scan.refresh_from_db()
    assert [h.response for h in scan.history.order_by("history_date")] == ["SD", "PR"]
    assert scan.history.latest("history_date").history_change_reason == "Report amended"


def test_a_nurse_reads_imaging_but_cannot_correct_it(api, nurse, scan):
    api.force_authenticate(nurse)
    url = f"/api/v1/imaging/{scan.pk}/"

    assert api.get(url).json()["response"] == "SD"
    r = api.patch(url, {"response": "PR", "version": 1, "reason": "x"}, format="json")
    marked = api.post(f"{url}entered-in-error/", {"reason": "x", "version": 1}, format="json")

    assert (r.status_code, marked.status_code) == (403, 403)
    scan.refresh_from_db()
    assert (scan.response, scan.entered_in_error) == ("SD", False)


def test_imaging_entered_in_error_stays_on_record_and_cannot_be_corrected(api, oncologist, scan):
    api.force_authenticate(oncologist)
    url = f"/api/v1/imaging/{scan.pk}/"

    refused = api.post(f"{url}entered-in-error/", {"reason": "", "version": 1}, format="json")
    r = api.post(
        f"{url}entered-in-error/", {"reason": "Wrong patient", "version": 1}, format="json"
    )
    later = api.patch(url, {"response": "PR", "version": 2, "reason": "x"}, format="json")

    assert refused.status_code == 400 and "reason" in refused.json()
    assert r.status_code == 200
    assert (r.json()["entered_in_error"], r.json()["error_reason"]) == (True, "Wrong patient")
    assert later.status_code == 400
    assert ImagingAssessment.objects.filter(pk=scan.pk, entered_in_error=True).exists()
