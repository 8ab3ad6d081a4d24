"""An oncologist enters, corrects and delays without surprises.

A corrected count says so where clinicians read it, with what it was; a delayed cycle
shows the day 1 it was planned for; a line's cycles are planned in one go; imaging is
corrected like a draw; a second draw on one day is confirmed, not taken twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from pytest_django.asserts import assertContains, assertNotContains

from patients import services
from patients.models import CTCDraw, CycleStatus, ImagingAssessment, TreatmentCycle
from patients.web.documents import imaging_of
from patients.web.forms import DrawForm
from tests import builders

pytestmark = pytest.mark.django_db


def _correct(draw: CTCDraw, by, reason: str, **changes) -> CTCDraw:
    return services.update_draw(
        draw=draw, by=by, changes=changes, version=builders.version_of(draw), reason=reason
    )


# --- corrected results ------------------------------------------------------------------


def test_a_corrected_count_says_so_with_the_original_value_who_when_and_why(
    client, nurse, oncologist, draw
):
    oncologist.first_name, oncologist.last_name = "Olivia", "Hart"
    oncologist.save()
    _correct(draw, oncologist, "Lab recount", ctc_count=5)
    _correct(draw, oncologist, "Volume was 5 mL", blood_volume_ml="5.0")
    client.force_login(nurse)

    r = client.get(f"/patients/{draw.patient_id}/")

    row = r.content.decode().split(f'id="draw-{draw.pk}"')[1].split("</tr>")[0]
    assert "corrected</span> first recorded as 3 in 7.5 mL; last corrected by Olivia Hart" in row
    assert "“Volume was 5 mL”" in row
    assert "<details" in row and "Earlier values (2 corrections)" in row
    details = row.split("<details")[1]
    assert "“Lab recount”): CTC count (cells in the sample) 3 → 5" in details
    assert "Blood volume (mL) 7.5 → 5" in details


def test_a_pending_tube_getting_its_result_is_not_a_correction(client, nurse, oncologist, patient):
    pending = builders.draw(patient, oncologist, drawn_at=date(2026, 1, 2), status="pending")
    _correct(pending, oncologist, "Result in", status="resulted", ctc_count=2)
    client.force_login(nurse)

    r = client.get(f"/patients/{patient.pk}/")

    assertNotContains(r, "tag-corrected")


def test_the_patient_page_runs_the_same_queries_for_few_or_many_corrected_draws_and_scans(
    client, nurse, oncologist, patient, count_queries
):
    def corrected_draw(day: int) -> None:
        d = builders.draw(patient, oncologist, drawn_at=date(2026, 1, day), ctc_count=day)
        _correct(d, oncologist, "Recount", ctc_count=day + 1)
        scan = services.record_imaging(
            patient=patient,
            by=oncologist,
            performed_on=date(2026, 1, day),
            modality="ct",
            response="SD",
        )
        services.update_imaging(
            imaging=scan, by=oncologist, changes={"response": "PR"}, version=1, reason="Amended"
        )

    corrected_draw(1)
    client.force_login(nurse)
    client.get(f"/patients/{patient.pk}/")
    few = count_queries(lambda: client.get(f"/patients/{patient.pk}/"))
    for day in range(2, 20):
        corrected_draw(day)

    many = count_queries(lambda: client.get(f"/patients/{patient.pk}/"))

    assert few == many


# --- delaying a cycle -----------------------------------------------------------------------


def _cycle_post(cycle: TreatmentCycle, **fields) -> dict:
    return {
        "scheduled_date": cycle.scheduled_date.isoformat(),
        "status": cycle.status,
        "given_date": "",
        "status_reason": "",
        "version": str(builders.version_of(cycle)),
        **fields,
    }


def test_a_cycle_is_delayed_by_a_number_of_days_and_shows_its_first_day_1(client, oncologist, line):
    c1 = builders.cycle(line, oncologist, number=1, scheduled_date=date(2026, 12, 30))
    c2 = builders.cycle(line, oncologist, number=2, scheduled_date=date(2027, 1, 20))
    client.force_login(oncologist)

    r = client.post(
        f"/cycles/{c1.pk}/edit/",
        _cycle_post(c1, delay_days="7", status_reason="neutrophils", move_later_cycles="on"),
    )

    assert r.status_code == 302
    c1.refresh_from_db()
    c2.refresh_from_db()
    assert (c1.scheduled_date, c1.status, c1.first_scheduled_date) == (
        date(2027, 1, 6),
        CycleStatus.DELAYED,
        date(2026, 12, 30),
    )
    assert c2.scheduled_date == date(2027, 1, 27)
    page = client.get(f"/patients/{line.patient_id}/").content.decode()
    assert 'Wed 6 Jan 2027<span class="muted">, delayed from 30 Dec 2026: neutrophils' in page
    assert 'Wed 27 Jan 2027<span class="muted">, moved from 20 Jan</span>' in page


def test_a_delay_in_days_and_a_different_new_day_1_are_refused_together(client, oncologist, cycle):
    client.force_login(oncologist)

    r = client.post(
        f"/cycles/{cycle.pk}/edit/",
        _cycle_post(cycle, scheduled_date="2026-01-20", delay_days="3", status_reason="x"),
    )

    assert r.status_code == 400
    assertContains(r, "not both", status_code=400)
    cycle.refresh_from_db()
    assert cycle.scheduled_date == date(2026, 1, 5)


def test_the_cycle_number_cannot_be_changed_after_creation(client, oncologist, cycle):
    client.force_login(oncologist)

    form = client.get(f"/cycles/{cycle.pk}/edit/").content.decode()
    r = client.post(f"/cycles/{cycle.pk}/edit/", _cycle_post(cycle, number="7"))

    assert 'name="number"' not in form
    assert r.status_code == 302
    cycle.refresh_from_db()
    assert cycle.number == 1


# --- planning several cycles ----------------------------------------------------------------


def test_several_cycles_are_planned_at_once(client, oncologist, line):
    client.force_login(oncologist)

    form = client.get(f"/lines/{line.pk}/cycles/plan/")
    r = client.post(
        f"/lines/{line.pk}/cycles/plan/",
        {"first_number": "1", "count": "4", "first_date": "2026-01-05", "every_days": "21"},
    )

    assertContains(form, 'value="21"')  # the line's cycle length
    assert r.status_code == 302
    planned = list(line.cycles.order_by("number").values_list("number", "scheduled_date"))
    assert planned == [(n + 1, date(2026, 1, 5) + timedelta(days=21 * n)) for n in range(4)]
    assert all(c.first_scheduled_date == c.scheduled_date for c in line.cycles.all())


def test_planning_is_all_or_nothing_with_each_problem_on_its_field(client, oncologist, line):
    builders.cycle(line, oncologist, number=3, scheduled_date=date(2026, 2, 16))
    client.force_login(oncologist)

    clash = client.post(
        f"/lines/{line.pk}/cycles/plan/",
        {"first_number": "1", "count": "4", "first_date": "2026-01-05", "every_days": "21"},
    )
    early = client.post(
        f"/lines/{line.pk}/cycles/plan/",
        {"first_number": "4", "count": "2", "first_date": "2025-12-01", "every_days": "21"},
    )

    assertContains(clash, "Line 1 already has C3.", status_code=400)
    assertContains(
        early, "Day 1 cannot be before the line starts (Mon 5 Jan 2026).", status_code=400
    )
    assert list(line.cycles.values_list("number", flat=True)) == [3]


def test_plan_cycles_refuses_too_many_at_once(oncologist, line):
    with pytest.raises(ValidationError, match="from 1 to"):
        services.plan_cycles(
            line=line,
            by=oncologist,
            first_number=1,
            count=services.MAX_CYCLES_PLANNED_AT_ONCE + 1,
            first_date=date(2026, 1, 5),
            every_days=21,
        )
    assert not line.cycles.exists()


# --- imaging corrections ----------------------------------------------------------------------


@pytest.fixture
def scan(patient, oncologist) -> ImagingAssessment:
    return services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 1, 20), modality="ct", response="SD"
    )


def test_imaging_is_corrected_with_a_reason_and_keeps_its_history(client, oncologist, scan):
    client.force_login(oncologist)
    data = {"performed_on": "2026-01-20", "modality": "ct", "response": "PR", "version": "1"}

    refused = client.post(f"/imaging/{scan.pk}/edit/", data)
    r = client.post(f"/imaging/{scan.pk}/edit/", {**data, "reason": "Report amended"})

    assertContains(refused, "This field is required.", status_code=400)
    assert r.status_code == 302
    scan.refresh_from_db()
    assert (scan.response, scan.version) == ("PR", 2)
    assert [h.response for h in scan.history.order_by("history_date")] == ["SD", "PR"]
    assert scan.history.latest("history_date").history_change_reason == "Report amended"
    page = client.get(f"/patients/{scan.patient_id}/").content.decode()
    row = page.split(f'id="imaging-{scan.pk}"')[1].split("</tr>")[0]
    assert "first recorded as CT of Tue 20 Jan 2026: Stable disease (SD)" in row
    assert "“Report amended”" in row and "<details" in row


def test_imaging_entered_in_error_stays_on_record_and_leaves_the_chart(client, oncologist, scan):
    client.force_login(oncologist)

    blank = client.post(f"/imaging/{scan.pk}/entered-in-error/", {"error-reason": ""})
    r = client.post(
        f"/imaging/{scan.pk}/entered-in-error/",
        {"error-reason": "Another patient's scan", "error-version": "1"},
    )

    assertContains(blank, "Say why it was entered in error.", status_code=400)
    assert r.status_code == 302
    scan.refresh_from_db()
    assert (scan.entered_in_error, scan.error_reason) == (True, "Another patient's scan")
    page = client.get(f"/patients/{scan.patient_id}/")
    assertContains(page, "Entered in error:</strong> Another patient&#x27;s scan")
    assertNotContains(page, f"/imaging/{scan.pk}/edit/")
    assert imaging_of(scan.patient) == []  # what the chart and the report draw


def test_the_api_lists_imaging_entered_in_error_as_such(api, nurse, oncologist, scan):
    services.mark_imaging_entered_in_error(
        imaging=scan, by=oncologist, reason="Wrong patient", version=1
    )
    api.force_authenticate(nurse)

    listed = api.get(f"/api/v1/patients/{scan.patient_id}/imaging/").json()

    assert [(i["entered_in_error"], i["error_reason"], i["version"]) for i in listed] == [
        (True, "Wrong patient", 2)
    ]


def test_a_nurse_cannot_correct_imaging(client, nurse, scan):
    client.force_login(nurse)

    assert client.get(f"/imaging/{scan.pk}/edit/").status_code == 403
    assert client.post(f"/imaging/{scan.pk}/entered-in-error/", {}).status_code == 403


# --- same-day duplicates ----------------------------------------------------------------------


def test_a_draw_on_the_last_day_of_the_calendar_is_refused_as_in_the_future(
    client, oncologist, draw
):
    # Found by the form fuzzing: looking for other draws that day overflowed past 9999.
    client.force_login(oncologist)
    data = {"drawn_at": "9999-12-31T23:59", "blood_volume_ml": "7.5", "status": "resulted"}

    r = client.post(f"/patients/{draw.patient_id}/draws/new/", {**data, "ctc_count": "3"})

    assertContains(r, "The draw time is in the future.", status_code=400)
    assert CTCDraw.objects.filter(patient=draw.patient_id).count() == 1


def test_a_second_draw_on_the_same_day_asks_for_confirmation(client, oncologist, draw):
    client.force_login(oncologist)
    data = {
        "drawn_at": "2026-01-02T15:00",
        "blood_volume_ml": "7.5",
        "status": "resulted",
        "ctc_count": "3",
    }

    asked = client.post(f"/patients/{draw.patient_id}/draws/new/", data)
    confirmed = client.post(
        f"/patients/{draw.patient_id}/draws/new/", {**data, "confirm_same_day": "on"}
    )

    assertContains(asked, "already has a draw on Fri 2 Jan 2026", status_code=400)
    assertContains(asked, 'name="confirm_same_day"', status_code=400)
    assert confirmed.status_code == 302
    assert CTCDraw.objects.filter(patient=draw.patient_id).count() == 2


def test_a_draw_on_another_day_needs_no_confirmation(client, oncologist, draw):
    client.force_login(oncologist)

    r = client.post(
        f"/patients/{draw.patient_id}/draws/new/",
        {
            "drawn_at": "2026-01-03T09:00",
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "1",
        },
    )

    assert r.status_code == 302


# --- what the forms show --------------------------------------------------------------------


def test_the_draw_form_shows_the_cut_off_and_last_count_and_defaults_to_now(
    client, oncologist, draw
):
    client.force_login(oncologist)

    r = client.get(f"/patients/{draw.patient_id}/draws/new/")

    assertContains(r, "unfavourable at 5 or more CTC per 7.5 mL")
    assertContains(r, "3 in 7.5 mL")
    now = timezone.localtime().strftime("%Y-%m-%dT%H:")
    assertContains(r, f'value="{now}')


def test_the_new_patient_form_has_no_reason_but_the_edit_has(client, oncologist, patient):
    client.force_login(oncologist)

    assertNotContains(client.get("/patients/new/"), 'name="reason"')
    assertContains(client.get(f"/patients/{patient.pk}/edit/"), 'name="reason"')


def test_the_doxorubicin_box_explains_itself(client, oncologist, patient):
    client.force_login(oncologist)

    assertContains(client.get(f"/patients/{patient.pk}/lines/new/"), "falsely high")


def test_the_draw_form_starts_at_now_in_the_clinics_time_to_the_minute():
    shown = DrawForm().initial["drawn_at"]

    assert (shown.second, shown.microsecond) == (0, 0)
    assert timedelta(0) <= datetime.now(UTC) - shown < timedelta(minutes=1)
    assert shown.utcoffset() == timezone.localtime().utcoffset()
