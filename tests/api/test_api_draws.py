"""/api/v1/patients/{id}/draws/ and /api/v1/draws/{id}/: CTC draws in and out."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from patients.models import CTCDraw

pytestmark = pytest.mark.django_db

GOOD = {"drawn_at": "2026-02-01T08:30:00+01:00", "status": "resulted", "ctc_count": 7}


def _url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/draws/"


def test_it_records_a_draw_with_the_standard_volume(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "accession": "CS-26-0001"}, format="json")

    assert r.status_code == 201
    body = r.json()
    draw = CTCDraw.objects.get()
    assert body["id"] == draw.pk
    assert body["blood_volume_ml"] == 7.5
    assert body["ctc_count"] == 7
    assert body["entered_by"] == "olivia"
    assert draw.drawn_at.isoformat() == "2026-02-01T07:30:00+00:00"
    assert draw.accession == "CS-26-0001"


def test_it_lists_a_patients_draws_oldest_first(api, nurse, oncologist, patient):
    api.force_authenticate(oncologist)
    api.post(_url(patient), {**GOOD, "drawn_at": "2026-03-01T08:00:00Z"}, format="json")
    api.post(_url(patient), {**GOOD, "drawn_at": "2026-01-01T08:00:00Z"}, format="json")
    api.force_authenticate(nurse)

    r = api.get(_url(patient))

    assert [d["drawn_at"][:10] for d in r.json()] == ["2026-01-01", "2026-03-01"]


def test_a_rejected_or_failed_draw_has_no_count(api, oncologist, patient):
    api.force_authenticate(oncologist)

    rejected = api.post(
        _url(patient),
        {"drawn_at": GOOD["drawn_at"], "status": "rejected", "comment": "Haemolysed"},
        format="json",
    )

    assert rejected.status_code == 201
    assert rejected.json()["ctc_count"] is None


@pytest.mark.parametrize(
    "change, field",
    [
        ({"ctc_count": -1}, "ctc_count"),
        ({"ctc_count": 2.5}, "ctc_count"),
        ({"ctc_count": "seven"}, "ctc_count"),
        ({"ctc_count": None}, "ctc_count"),
        ({"status": "rejected"}, "ctc_count"),  # a count on a rejected draw
        ({"blood_volume_ml": 0}, "blood_volume_ml"),
        ({"blood_volume_ml": 500}, "blood_volume_ml"),
        ({"blood_volume_ml": -7.5}, "blood_volume_ml"),
        ({"status": "lost"}, "status"),
        ({"drawn_at": "2026-02-01T08:30:00"}, "drawn_at"),  # no offset: ambiguous
        ({"drawn_at": "yesterday"}, "drawn_at"),
        ({"drawn_at": "1950-01-01T08:00:00Z"}, "drawn_at"),  # before the birth date
    ],
)
def test_bad_input_names_the_field_and_saves_nothing(api, oncologist, patient, change, field):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, **change}, format="json")

    assert r.status_code == 400, r.json()
    assert list(r.json()) == [field]
    assert not CTCDraw.objects.exists()


def test_a_missing_count_on_a_resulted_draw_is_refused(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {"drawn_at": GOOD["drawn_at"], "status": "resulted"}, format="json")

    assert r.status_code == 400
    assert r.json() == {"ctc_count": ["A resulted draw needs a count (0 or more)."]}


def test_a_draw_in_the_future_is_refused(api, oncologist, patient):
    api.force_authenticate(oncologist)
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()

    r = api.post(_url(patient), {**GOOD, "drawn_at": tomorrow}, format="json")

    assert r.json() == {"drawn_at": ["The draw time is in the future."]}
    assert not CTCDraw.objects.exists()


def test_a_duplicate_accession_is_refused(api, oncologist, patient, draw):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "accession": "ACC-1"}, format="json")

    assert r.status_code == 400
    assert r.json() == {"accession": ["A draw with this accession number already exists."]}
    assert CTCDraw.objects.count() == 1


def test_a_non_standard_volume_is_kept_exactly(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "blood_volume_ml": "4.25"}, format="json")

    assert r.status_code == 201
    assert CTCDraw.objects.get().blood_volume_ml == Decimal("4.25")


def test_a_pending_draw_gets_its_result_later_with_history(api, oncologist, patient):
    api.force_authenticate(oncologist)
    created = api.post(
        _url(patient), {"drawn_at": GOOD["drawn_at"], "status": "pending"}, format="json"
    ).json()

    r = api.patch(
        f"/api/v1/draws/{created['id']}/",
        {"status": "resulted", "ctc_count": 4, "version": created["version"]},
        format="json",
    )

    assert r.status_code == 200
    assert (r.json()["status"], r.json()["ctc_count"], r.json()["version"]) == ("resulted", 4, 2)
    history = CTCDraw.objects.get().history.order_by("history_date")
    assert [h.status for h in history] == ["pending", "resulted"]


def test_a_stale_edit_of_a_draw_gets_409(api, oncologist, draw):
    api.force_authenticate(oncologist)
    api.patch(f"/api/v1/draws/{draw.pk}/", {"ctc_count": 4, "version": 1}, format="json")

    r = api.patch(f"/api/v1/draws/{draw.pk}/", {"ctc_count": 40, "version": 1}, format="json")

    assert r.status_code == 409
    assert r.json()["current_version"] == 2
    draw.refresh_from_db()
    assert draw.ctc_count == 4


def test_a_bad_edit_names_the_field_and_changes_nothing(api, oncologist, draw):
    api.force_authenticate(oncologist)

    r = api.patch(f"/api/v1/draws/{draw.pk}/", {"status": "failed", "version": 1}, format="json")

    assert r.status_code == 400
    assert list(r.json()) == ["ctc_count"]
    draw.refresh_from_db()
    assert (draw.status, draw.ctc_count, draw.version) == ("resulted", 3, 1)


def test_the_draw_list_runs_the_same_queries_for_2_or_22_draws(
    api, nurse, oncologist, patient, line, count_queries
):
    api.force_authenticate(oncologist)
    for day in range(1, 3):
        api.post(_url(patient), {**GOOD, "drawn_at": f"2026-01-{day:02d}T08:00:00Z"})
    api.force_authenticate(nurse)
    api.get(_url(patient))  # warm the permission cache, as every later request finds it
    few = count_queries(lambda: api.get(_url(patient)))
    api.force_authenticate(oncologist)
    for day in range(3, 23):
        api.post(_url(patient), {**GOOD, "drawn_at": f"2026-01-{day:02d}T08:00:00Z"})
    api.force_authenticate(nurse)

    many = count_queries(lambda: api.get(_url(patient)))

    assert few == many
    assert len(api.get(_url(patient)).json()) == 22


def test_a_draw_is_marked_entered_in_error_and_stays_listed(api, oncologist, nurse, draw):
    api.force_authenticate(nurse)
    assert (
        api.post(f"/api/v1/draws/{draw.pk}/entered-in-error/", {"reason": "x"}).status_code == 403
    )
    api.force_authenticate(oncologist)

    blank = api.post(f"/api/v1/draws/{draw.pk}/entered-in-error/", {"reason": ""}, format="json")
    r = api.post(
        f"/api/v1/draws/{draw.pk}/entered-in-error/",
        {"reason": "Sample belonged to another patient", "version": 1},
        format="json",
    )
    listed = api.get(f"/api/v1/patients/{draw.patient_id}/draws/").json()

    assert blank.status_code == 400
    assert list(blank.json()) == ["reason"]
    assert r.status_code == 200
    assert (r.json()["entered_in_error"], r.json()["flags"], r.json()["category"]) == (
        True,
        [],
        None,
    )
    assert [d["entered_in_error"] for d in listed] == [True]
