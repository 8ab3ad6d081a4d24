"""The API under version 2 of the rules: `count_qualifier` on draws (a count that is a
lower bound), the 1.0-10.0 mL volume, and `first_scheduled_date` on cycles."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from patients.models import VOLUME_OUT_OF_RANGE, CTCDraw
from tests import builders

pytestmark = pytest.mark.django_db

GOOD = {"drawn_at": "2026-02-01T08:30:00+01:00", "status": "resulted", "ctc_count": 7}


def _url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/draws/"


def test_a_lower_bound_is_posted_with_its_qualifier(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "ctc_count": 1000, "count_qualifier": ">"}, format="json")

    assert r.status_code == 201, r.json()
    body = r.json()
    assert (body["count_qualifier"], body["ctc_count"]) == (">", 1000)
    draw = CTCDraw.objects.get()
    assert (draw.count_qualifier, draw.ctc_count) == (">", 1000)


@pytest.mark.parametrize("sent", [{}, {"count_qualifier": ""}])
def test_a_count_is_exact_unless_said_otherwise(api, oncologist, patient, sent):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, **sent}, format="json")

    assert r.json()["count_qualifier"] == ""


def test_every_draw_object_carries_its_qualifier(api, nurse, oncologist, patient):
    builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC),
        ctc_count=1000,
        count_qualifier=">",
    )
    rejected = builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 9, 9, tzinfo=UTC), status="rejected"
    )
    api.force_authenticate(nurse)

    listed = api.get(_url(patient)).json()
    one = api.get(f"/api/v1/draws/{rejected.pk}/").json()
    assessed = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()

    assert [d["count_qualifier"] for d in listed] == [">", ""]
    assert one["count_qualifier"] == ""
    assert [d["count_qualifier"] for d in assessed["draws"]] == [">", ""]


@pytest.mark.parametrize("qualifier", ["<", ">=", "more than", "~", None, 5])
def test_a_qualifier_other_than_more_than_or_exact_is_a_400_naming_the_field(
    api, oncologist, patient, qualifier
):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "count_qualifier": qualifier}, format="json")

    assert r.status_code == 400
    assert list(r.json()) == ["count_qualifier"]
    assert not CTCDraw.objects.exists()


def test_the_qualifier_message_says_what_to_send(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "count_qualifier": "<"}, format="json")

    (message,) = r.json()["count_qualifier"]
    assert 'Use ">" when ctc_count is a lower bound' in message


def test_a_lower_bound_below_the_cut_off_is_a_400_on_the_count(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "ctc_count": 4, "count_qualifier": ">"}, format="json")

    assert r.status_code == 400
    (message,) = r.json()["ctc_count"]
    assert message.startswith("A lower bound below the cut-off cannot be classified")
    assert not CTCDraw.objects.exists()


def test_a_qualifier_on_a_draw_without_a_count_is_a_400(api, oncologist, patient):
    api.force_authenticate(oncologist)

    r = api.post(
        _url(patient),
        {"drawn_at": GOOD["drawn_at"], "status": "failed", "count_qualifier": ">"},
        format="json",
    )

    assert r.status_code == 400
    assert list(r.json()) == ["count_qualifier"]


def test_a_patch_makes_a_count_a_lower_bound_and_back(api, oncologist, patient):
    draw = builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC), ctc_count=1000
    )
    api.force_authenticate(oncologist)

    bound = api.patch(
        f"/api/v1/draws/{draw.pk}/",
        {"count_qualifier": ">", "version": 1, "reason": "Lab reported >1000"},
        format="json",
    )
    exact = api.patch(
        f"/api/v1/draws/{draw.pk}/",
        {"count_qualifier": "", "version": 2, "reason": "Recounted"},
        format="json",
    )

    assert (bound.status_code, bound.json()["count_qualifier"]) == (200, ">")
    assert (exact.status_code, exact.json()["count_qualifier"]) == (200, "")
    assert [h.count_qualifier for h in draw.history.order_by("history_date")] == ["", ">", ""]


def test_a_patch_to_a_bad_qualifier_is_a_400_and_changes_nothing(api, oncologist, draw):
    api.force_authenticate(oncologist)

    r = api.patch(
        f"/api/v1/draws/{draw.pk}/",
        {"count_qualifier": "<", "version": 1, "reason": "x"},
        format="json",
    )

    assert r.status_code == 400
    assert list(r.json()) == ["count_qualifier"]
    assert CTCDraw.objects.get(pk=draw.pk).version == 1


# --- the blood volume ------------------------------------------------------------------


@pytest.mark.parametrize("volume", ["0.9", "10.1", "0.5", "12", 0.5, 12])
def test_a_volume_outside_1_to_10_ml_is_a_clear_400(api, oncologist, patient, volume):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "blood_volume_ml": volume}, format="json")

    assert r.status_code == 400
    assert r.json() == {"blood_volume_ml": [VOLUME_OUT_OF_RANGE]}
    assert not CTCDraw.objects.exists()


@pytest.mark.parametrize("volume", ["1.0", "10.0"])
def test_a_volume_at_either_end_of_the_range_is_recorded(api, oncologist, patient, volume):
    api.force_authenticate(oncologist)

    r = api.post(_url(patient), {**GOOD, "blood_volume_ml": volume}, format="json")

    assert r.status_code == 201
    assert CTCDraw.objects.get().blood_volume_ml == Decimal(volume)


def test_a_patch_to_a_volume_outside_the_range_is_a_400(api, oncologist, draw):
    api.force_authenticate(oncologist)

    r = api.patch(
        f"/api/v1/draws/{draw.pk}/",
        {"blood_volume_ml": "15", "version": 1, "reason": "x"},
        format="json",
    )

    assert r.status_code == 400
    assert r.json() == {"blood_volume_ml": [VOLUME_OUT_OF_RANGE]}


# --- cycles ---------------------------------------------------------------------------------


def test_a_cycle_shows_its_first_planned_day_1_which_a_patch_cannot_set(api, oncologist, cycle):
    api.force_authenticate(oncologist)

    r = api.patch(
        f"/api/v1/cycles/{cycle.pk}/",
        {
            "status": "delayed",
            "status_reason": "Neutropenia",
            "scheduled_date": "2026-01-12",
            "first_scheduled_date": "2025-12-01",  # read only: ignored
            "version": 1,
        },
        format="json",
    )

    assert r.status_code == 200, r.json()
    assert (r.json()["scheduled_date"], r.json()["first_scheduled_date"]) == (
        "2026-01-12",
        "2026-01-05",
    )
    cycle.refresh_from_db()
    assert cycle.first_scheduled_date == date(2026, 1, 5)
