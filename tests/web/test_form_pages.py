"""The oncologists' forms: patient, therapy line, cycle, draw, imaging."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pytest_django.asserts import assertContains, assertRedirects

from patients import services
from patients.models import CTCDraw, ImagingAssessment, Patient, TherapyLine, TreatmentCycle
from tests import builders

pytestmark = pytest.mark.django_db

NEW_PATIENT = {
    "mrn": "F-100",
    "given_name": "Ann",
    "family_name": "Lee",
    "birth_date": "1958-03-02",
    "sex": "female",
    "cancer_type": "colorectal",
    "active": "on",
}


def _edit_urls(patient, line, cycle, draw) -> list[str]:
    return [
        "/patients/new/",
        f"/patients/{patient.pk}/edit/",
        f"/patients/{patient.pk}/lines/new/",
        f"/lines/{line.pk}/edit/",
        f"/lines/{line.pk}/cycles/new/",
        f"/cycles/{cycle.pk}/edit/",
        f"/patients/{patient.pk}/draws/new/",
        f"/draws/{draw.pk}/edit/",
        f"/draws/{draw.pk}/entered-in-error/",
        f"/patients/{patient.pk}/imaging/new/",
    ]


def test_nurses_get_403_on_every_edit_url_and_nothing_changes(
    client, nurse, patient, line, cycle, draw
):
    client.force_login(nurse)

    for url in _edit_urls(patient, line, cycle, draw):
        assert client.post(url, {"reason": "x", "note": "x"}).status_code == 403, url
        if not url.endswith("entered-in-error/"):
            assert client.get(url).status_code == 403, url

    draw.refresh_from_db()
    assert (draw.version, draw.entered_in_error) == (1, False)
    assert Patient.objects.count() == 1


def test_anonymous_users_are_sent_to_login_from_every_edit_url(client, patient, line, cycle, draw):
    for url in _edit_urls(patient, line, cycle, draw):
        r = client.post(url, {})
        assert r.status_code == 302 and r.url.startswith("/accounts/login/"), url


def test_an_oncologist_registers_a_patient(client, oncologist):
    client.force_login(oncologist)

    r = client.post("/patients/new/", NEW_PATIENT)

    patient = Patient.objects.get(mrn="F-100")
    assertRedirects(r, f"/patients/{patient.pk}/", fetch_redirect_response=False)
    assert patient.history.get().history_user == oncologist


def test_bad_patient_input_is_shown_next_to_the_field_and_nothing_is_saved(
    client, oncologist, patient
):
    client.force_login(oncologist)

    r = client.post("/patients/new/", {**NEW_PATIENT, "mrn": "MRN0001", "birth_date": "2 March"})

    assert r.status_code == 400
    assertContains(r, "Nothing was saved", status_code=400)
    assertContains(r, "Enter a valid date.", status_code=400)
    assertContains(r, 'aria-invalid="true"', status_code=400)
    assertContains(r, 'value="Ann"', status_code=400)  # what was typed is kept
    assert Patient.objects.count() == 1


def test_a_duplicate_mrn_is_reported_on_the_mrn_field(client, oncologist, patient):
    client.force_login(oncologist)

    r = client.post("/patients/new/", {**NEW_PATIENT, "mrn": "MRN0001"})

    assert r.status_code == 400
    assert r.context["form"].errors["mrn"] == ["A patient with this MRN already exists."]


def test_a_stale_patient_edit_tells_the_second_editor_and_keeps_their_input(
    client, oncologist, patient
):
    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"given_name": "Janet"},
    )
    client.force_login(oncologist)
    stale = {
        **NEW_PATIENT,
        "mrn": "MRN0001",
        "given_name": "Joan",
        "family_name": "Doe",
        "birth_date": "1960-05-17",
        "cancer_type": "breast",
        "version": 1,
    }

    r = client.post(f"/patients/{patient.pk}/edit/", stale)

    assert r.status_code == 400
    assertContains(r, "changed by someone else", status_code=400)
    assertContains(r, 'value="Joan"', status_code=400)
    patient.refresh_from_db()
    assert patient.given_name == "Janet"


def test_an_oncologist_adds_a_line_and_plans_its_first_cycle(client, oncologist, patient):
    client.force_login(oncologist)

    client.post(
        f"/patients/{patient.pk}/lines/new/",
        {"regimen": "Capecitabine", "start_date": "2026-02-02", "cycle_length_days": 21},
    )
    line = TherapyLine.objects.get()
    form = client.get(f"/lines/{line.pk}/cycles/new/")
    r = client.post(
        f"/lines/{line.pk}/cycles/new/",
        {"number": 1, "scheduled_date": "2026-02-02", "status": "planned"},
    )

    assert form.context["form"].initial == {"number": 1, "scheduled_date": date(2026, 2, 2)}
    assert r.status_code == 302
    assert TreatmentCycle.objects.get().scheduled_date == date(2026, 2, 2)


def test_delaying_a_cycle_asks_for_a_reason_and_can_move_the_later_ones(
    client, oncologist, line, cycle
):
    later = services.plan_cycle(
        line=line, by=oncologist, number=2, scheduled_date=date(2026, 1, 26)
    )
    client.force_login(oncologist)
    delay = {"number": 1, "scheduled_date": "2026-01-12", "status": "delayed", "version": 1}

    no_reason = client.post(f"/cycles/{cycle.pk}/edit/", delay)
    moved = client.post(
        f"/cycles/{cycle.pk}/edit/",
        {**delay, "status_reason": "Neutrophils 0.8", "move_later_cycles": "on"},
    )

    assert no_reason.status_code == 400
    assert "status_reason" in no_reason.context["form"].errors
    assert moved.status_code == 302
    cycle.refresh_from_db()
    later.refresh_from_db()
    assert (cycle.status, cycle.scheduled_date) == ("delayed", date(2026, 1, 12))
    assert later.scheduled_date == date(2026, 2, 2)


def test_saving_a_draw_shows_the_flags_it_produced(client, oncologist, patient):
    services.record_draw(
        patient=patient, by=oncologist, drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC), ctc_count=1
    )
    client.force_login(oncologist)

    r = client.post(
        f"/patients/{patient.pk}/draws/new/",
        {
            "drawn_at": "2026-01-23T09:00",
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "8",
        },
        follow=True,
    )

    assertContains(r, "Draw saved. Flags:")
    assertContains(r, "Converted to unfavourable")
    assert CTCDraw.objects.count() == 2


@pytest.mark.parametrize(
    "change, field",
    [
        ({"ctc_count": "-2"}, "ctc_count"),
        ({"ctc_count": ""}, "ctc_count"),
        ({"status": "rejected"}, "ctc_count"),
        ({"blood_volume_ml": "0"}, "blood_volume_ml"),
        ({"blood_volume_ml": "500"}, "blood_volume_ml"),
        ({"drawn_at": "2099-01-01T09:00"}, "drawn_at"),
        ({"drawn_at": "yesterday"}, "drawn_at"),
    ],
)
def test_a_bad_draw_is_reported_next_to_the_field(client, oncologist, patient, change, field):
    client.force_login(oncologist)
    good = {
        "drawn_at": "2026-01-23T09:00",
        "blood_volume_ml": "7.5",
        "status": "resulted",
        "ctc_count": "8",
    }

    r = client.post(f"/patients/{patient.pk}/draws/new/", {**good, **change})

    assert r.status_code == 400
    assert field in r.context["form"].errors
    assert not CTCDraw.objects.exists()


def test_editing_a_draw_needs_a_reason_which_the_history_keeps(client, oncologist, draw):
    client.force_login(oncologist)
    edit = {
        "drawn_at": "2026-01-02T09:30",
        "blood_volume_ml": "7.5",
        "status": "resulted",
        "ctc_count": "30",
        "accession": "ACC-1",
        "version": 1,
    }

    no_reason = client.post(f"/draws/{draw.pk}/edit/", edit)
    saved = client.post(f"/draws/{draw.pk}/edit/", {**edit, "reason": "Transcription error"})

    assert no_reason.status_code == 400
    assert "reason" in no_reason.context["form"].errors
    assert saved.status_code == 302
    draw.refresh_from_db()
    assert draw.ctc_count == 30
    assert draw.history.first().history_change_reason == "Transcription error"


def test_a_draw_is_marked_entered_in_error_never_deleted(client, oncologist, draw):
    client.force_login(oncologist)

    blank = client.post(
        f"/draws/{draw.pk}/entered-in-error/", {"error-reason": "", "error-version": 1}
    )
    r = client.post(
        f"/draws/{draw.pk}/entered-in-error/", {"error-reason": "Duplicate", "error-version": 1}
    )

    assert blank.status_code == 400
    assert r.status_code == 302
    draw.refresh_from_db()
    assert (draw.entered_in_error, draw.error_reason) == (True, "Duplicate")
    assert CTCDraw.objects.count() == 1


def test_an_oncologist_records_imaging(client, oncologist, patient):
    client.force_login(oncologist)

    bad = client.post(
        f"/patients/{patient.pk}/imaging/new/",
        {"performed_on": "2099-01-01", "modality": "ct", "response": "SD"},
    )
    good = client.post(
        f"/patients/{patient.pk}/imaging/new/",
        {"performed_on": "2026-01-20", "modality": "ct", "response": "SD"},
    )

    assert bad.status_code == 400
    assert "performed_on" in bad.context["form"].errors
    assert good.status_code == 302
    assert ImagingAssessment.objects.get().response == "SD"


def test_a_refused_second_step_of_a_delay_undoes_the_delay(client, oncologist, line, cycle):
    later = services.plan_cycle(
        line=line, by=oncologist, number=2, scheduled_date=date(2026, 1, 26)
    )
    client.force_login(oncologist)

    r = client.post(
        f"/cycles/{cycle.pk}/edit/",
        {
            "number": 1,
            "scheduled_date": "2026-01-12",
            "status": "delayed",
            "status_reason": "Platelets 62",
            "given_date": "2026-01-31",  # a delayed cycle has no given date: refused
            "move_later_cycles": "on",
            "version": 1,
        },
    )

    assert r.status_code == 400
    cycle.refresh_from_db()
    later.refresh_from_db()
    assert (cycle.status, cycle.scheduled_date, cycle.version) == ("planned", date(2026, 1, 5), 1)
    assert later.scheduled_date == date(2026, 1, 26)
