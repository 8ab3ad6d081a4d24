"""/api/v1/results-to-review/ and /api/v1/draws/{id}/acknowledgements/.

Every result with a high or review flag is listed until someone acknowledges it,
whether or not a cycle is due (spec section 5): one item per sample, most severe
first, then the oldest result first.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from patients import services
from patients.api import pagination
from patients.api.serializers import draw_time
from patients.models import AccessAction, AccessEvent, Acknowledgement, CTCDraw, Patient
from tests import builders

pytestmark = pytest.mark.django_db

URL = "/api/v1/results-to-review/"


@pytest.fixture
def today() -> date:
    return timezone.localdate()


_at = builders.local_at


def _patient(by, family: str, **fields) -> Patient:
    return builders.patient(by, family_name=family, oncologist=by, **fields)


_high = builders.high_result


_review = builders.review_result


def _acknowledge(api, draw: CTCDraw, note: str = "Oncologist informed"):
    return api.post(f"/api/v1/draws/{draw.pk}/acknowledgements/", {"note": note}, format="json")


def _ids(body) -> list[int]:
    return [item["draw"]["id"] for item in body["items"]]


def test_an_item_carries_the_patient_the_sample_its_flags_and_when_it_was_resulted(
    api, nurse, oncologist, today
):
    patient = _patient(oncologist, "Brown", mrn="R-1", given_name="Pat")
    draw = _high(oncologist, patient, today - timedelta(days=2))
    api.force_authenticate(nurse)

    body = api.get(URL).json()

    assert (body["count"], body["count_capped"], body["next"], body["previous"]) == (
        1,
        False,
        None,
        None,
    )
    (item,) = body["items"]
    assert item["patient"] == {
        "id": patient.pk,
        "mrn": "R-1",
        "given_name": "Pat",
        "family_name": "Brown",
    }
    assert item["draw"]["id"] == draw.pk
    assert item["draw"]["ctc_count"] == 12
    assert item["draw"]["needs_review"] is True
    assert item["draw"]["acknowledged"] is False
    assert item["draw"]["sample"]["draw_ids"] == [draw.pk]
    assert [(f["code"], f["severity"]) for f in item["flags"]] == [
        ("conversion_to_unfavourable", "high"),
        ("rise_beyond_noise", "review"),
    ]
    assert item["severity"] == "high"
    assert item["escalated"] is False
    draw.refresh_from_db()
    assert datetime.fromisoformat(item["resulted_at"]) == draw.resulted_at


def test_tubes_of_one_venepuncture_are_one_item_listing_every_tube(api, nurse, oncologist, today):
    patient = _patient(oncologist, "Pooled")
    builders.draw(patient, oncologist, drawn_at=_at(today - timedelta(days=30)), ctc_count=1)
    drawn = _at(today - timedelta(days=3))
    first = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=8)
    second = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=9)
    api.force_authenticate(nurse)

    body = api.get(URL).json()

    (item,) = body["items"]
    assert item["draw"]["id"] == first.pk
    sample = item["draw"]["sample"]
    assert sample["draw_ids"] == [first.pk, second.pk]
    assert (sample["count"], sample["count_qualifier"], sample["volume_ml"]) == (17, "", 15.0)
    assert sample["rate_per_7_5_ml"] == 8.5
    assert item["draw"]["rate_per_7_5_ml"] == 8.5  # the sample's, not the tube's 8
    assert item["flags"][0]["code"] == "conversion_to_unfavourable"


def test_most_severe_first_then_the_oldest_result_first(api, nurse, oncologist, today):
    day = today - timedelta(days=5)
    # Entered first but resulted last: a pending tube whose count arrives at the end.
    late = builders.draw(
        _patient(oncologist, "Late"), oncologist, drawn_at=_at(day - timedelta(1)), status="pending"
    )
    review_old = _review(oncologist, _patient(oncologist, "ReviewOld"), day)
    high_old = _high(oncologist, _patient(oncologist, "HighOld"), day)
    high_new = _high(oncologist, _patient(oncologist, "HighNew"), day - timedelta(days=4))
    review_new = _review(oncologist, _patient(oncologist, "ReviewNew"), day - timedelta(days=9))
    services.update_draw(
        draw=late,
        by=oncologist,
        version=builders.version_of(late),
        changes={"status": "resulted", "ctc_count": 30},
        reason="Result arrived",
    )
    api.force_authenticate(nurse)

    body = api.get(URL).json()

    # Oldest by when the result was recorded (resulted_at), not by when it was drawn.
    assert _ids(body) == [high_old.pk, high_new.pk, review_old.pk, review_new.pk, late.pk]
    assert [i["severity"] for i in body["items"]] == ["high", "high", "review", "review", "review"]


def test_a_high_result_outside_every_window_and_one_with_no_cycle_are_listed(
    api, nurse, oncologist, today
):
    between = _patient(oncologist, "Between")
    line = builders.therapy_line(between, oncologist, start_date=today - timedelta(days=60))
    builders.cycle(line, oncologist, number=1, scheduled_date=today - timedelta(days=60))
    builders.cycle(line, oncologist, number=2, scheduled_date=today + timedelta(days=20))
    outside = _high(oncologist, between, today - timedelta(days=20))  # in no window
    no_cycle = _high(oncologist, _patient(oncologist, "Unplanned"), today - timedelta(days=1))
    api.force_authenticate(nurse)

    body = api.get(URL).json()

    assert sorted(_ids(body)) == sorted([outside.pk, no_cycle.pk])
    assert {i["severity"] for i in body["items"]} == {"high"}
    worklist = api.get("/api/v1/worklist/", {"days": 30}).json()
    assert [i["flags"] for i in worklist["items"]] == [[]]  # no cycle shows these results


def test_favourable_results_and_info_flags_are_not_listed(api, nurse, oncologist, today):
    patient = _patient(oncologist, "Calm")
    builders.draws(patient, oncologist, [12, 2, 3], first=today - timedelta(days=30))
    api.force_authenticate(nurse)

    body = api.get(URL).json()

    # 12 at baseline (review) is listed; 2 (converted to favourable: info) and 3 are not.
    assert [i["draw"]["ctc_count"] for i in body["items"]] == [12]


def test_a_lone_rejected_tube_is_listed_and_one_beside_a_sample_is_not(
    api, nurse, oncologist, today
):
    patient = _patient(oncologist, "Tubes")
    drawn = _at(today - timedelta(days=6))
    builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=2)
    builders.draw(patient, oncologist, drawn_at=drawn, status="rejected")
    lone = builders.draw(patient, oncologist, drawn_at=_at(today - timedelta(2)), status="failed")
    api.force_authenticate(nurse)

    body = api.get(URL).json()

    (item,) = body["items"]
    assert item["draw"]["id"] == lone.pk
    assert [f["code"] for f in item["flags"]] == ["not_evaluable"]
    assert item["draw"]["sample"] is None


def test_an_escalated_result_says_so(api, nurse, oncologist, today):
    draw = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=3))
    # What `manage.py escalate_flags` marks once the result has waited too long.
    CTCDraw.objects.filter(pk=draw.pk).update(escalated_at=timezone.now())
    api.force_authenticate(nurse)

    (item,) = api.get(URL).json()["items"]

    assert item["escalated"] is True


def test_acknowledging_a_result_takes_it_off_the_list_and_covers_its_cycle(
    api, nurse, oncologist, today
):
    patient = _patient(oncologist, "Brown")
    line = builders.therapy_line(patient, oncologist, start_date=today - timedelta(days=42))
    cycle = builders.cycle(line, oncologist, number=3, scheduled_date=today + timedelta(days=3))
    builders.draw(patient, oncologist, drawn_at=_at(today - timedelta(days=25)), ctc_count=1)
    drawn = _at(today - timedelta(days=2))  # in cycle 3's window
    first = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=6)
    second = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=7)
    other = _review(oncologist, _patient(oncologist, "Other"), today - timedelta(days=1))
    assessment = f"/api/v1/patients/{patient.pk}/assessment/"
    api.force_authenticate(nurse)
    assert api.get(assessment).json()["upcoming_cycles"][0]["acknowledged"] is False

    r = _acknowledge(api, second, "Called the patient; scan brought forward")

    assert r.status_code == 201
    body = r.json()
    assert (body["draw"], body["cycle"]) == (first.pk, None)  # the sample, by its first tube
    assert body["acknowledged_by"] == "nina"
    assert body["note"] == "Called the patient; scan brought forward"
    assert [f["code"] for f in body["flags"]] == ["conversion_to_unfavourable", "rise_beyond_noise"]
    assert _ids(api.get(URL).json()) == [other.pk]
    (upcoming,) = api.get(assessment).json()["upcoming_cycles"]
    assert upcoming["id"] == cycle.pk
    assert (upcoming["pre_cycle_state"], upcoming["acknowledged"]) == ("result_in_window", True)
    assert upcoming["flags"]  # acknowledging never hides a flag
    (item,) = api.get("/api/v1/worklist/").json()["items"]
    assert (item["acknowledged"], item["acknowledgements"][0]["draw"]) == (True, first.pk)
    tube = api.get(f"/api/v1/draws/{second.pk}/").json()
    assert (tube["needs_review"], tube["acknowledged"]) == (True, True)
    assert tube["acknowledgements"][0]["note"] == "Called the patient; scan brought forward"


def test_the_acknowledgements_of_a_result_are_listed_from_any_of_its_tubes(
    api, nurse, oncologist, today
):
    patient = _patient(oncologist, "Brown")
    drawn = _at(today - timedelta(days=2))
    first = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=6)
    second = builders.draw(patient, oncologist, drawn_at=drawn, ctc_count=7)
    services.acknowledge_result(draw=first, by=nurse, note="Seen")
    api.force_authenticate(nurse)

    listed = api.get(f"/api/v1/draws/{second.pk}/acknowledgements/").json()

    assert [(a["draw"], a["note"]) for a in listed] == [(first.pk, "Seen")]


@pytest.mark.parametrize("body", [{"note": ""}, {"note": "  \n "}, {}])
def test_an_acknowledgement_of_a_result_needs_a_note(api, nurse, oncologist, today, body):
    draw = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))
    api.force_authenticate(nurse)

    r = api.post(f"/api/v1/draws/{draw.pk}/acknowledgements/", body, format="json")

    assert r.status_code == 400
    assert list(r.json()) == ["note"]
    assert not Acknowledgement.objects.exists()
    assert _ids(api.get(URL).json()) == [draw.pk]


def test_a_result_with_no_review_flag_cannot_be_acknowledged(api, nurse, oncologist, today):
    calm = builders.draw(
        _patient(oncologist, "Calm"), oncologist, drawn_at=_at(today - timedelta(1)), ctc_count=1
    )
    api.force_authenticate(nurse)

    r = _acknowledge(api, calm)

    assert r.status_code == 400
    assert r.json() == {
        "non_field_errors": ["Nothing to acknowledge: this result has no high or review flag."]
    }
    assert not Acknowledgement.objects.exists()


def test_a_draw_entered_in_error_cannot_be_acknowledged(api, nurse, oncologist, today):
    draw = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))
    services.mark_draw_entered_in_error(
        draw=draw, by=oncologist, version=builders.version_of(draw), reason="Wrong patient"
    )
    api.force_authenticate(nurse)

    r = _acknowledge(api, draw)

    assert r.status_code == 400
    assert "entered in error" in r.json()["non_field_errors"][0]
    assert api.get(URL).json()["count"] == 0  # no longer a result to review


def test_oncologists_acknowledge_too_and_users_without_a_role_cannot(
    api, oncologist, outsider, today
):
    draw = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))

    api.force_authenticate(outsider)
    assert _acknowledge(api, draw).status_code == 403
    assert api.get(URL).status_code == 403
    assert api.get(f"/api/v1/draws/{draw.pk}/acknowledgements/").status_code == 403
    api.force_authenticate(oncologist)
    assert _acknowledge(api, draw).status_code == 201
    assert Acknowledgement.objects.get().acknowledged_by == oncologist


def test_anonymous_callers_get_401(api, oncologist, today):
    draw = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=2))

    assert api.get(URL).status_code == 401
    assert _acknowledge(api, draw).status_code == 401
    assert not Acknowledgement.objects.exists()


def test_an_unknown_draw_is_404(api, nurse):
    api.force_authenticate(nurse)

    assert _acknowledge(api, CTCDraw(pk=999999)).status_code == 404


def test_a_second_sample_brings_new_flags_that_need_their_own_acknowledgement(
    api, nurse, oncologist, today
):
    patient = _patient(oncologist, "Brown")
    first = _high(oncologist, patient, today - timedelta(days=10))
    services.acknowledge_result(draw=first, by=nurse, note="Seen")
    later = builders.draw(patient, oncologist, drawn_at=_at(today - timedelta(2)), ctc_count=14)
    api.force_authenticate(nurse)

    body = api.get(URL).json()

    assert _ids(body) == [later.pk]
    assert body["items"][0]["flags"][0]["code"] == "persistent_unfavourable"


def test_reading_the_list_is_in_the_access_log_with_the_patients_shown(
    api, nurse, oncologist, today
):
    shown = [_patient(oncologist, name) for name in ("Shown", "Also")]
    for patient in shown:
        _review(oncologist, patient, today - timedelta(days=1))
    builders.draw(
        _patient(oncologist, "Quiet"), oncologist, drawn_at=today - timedelta(1), ctc_count=0
    )
    api.force_authenticate(nurse)

    api.get(URL)

    event = AccessEvent.objects.filter(action=AccessAction.RESULTS).get()
    assert event.user == nurse
    assert event.target == (
        f"GET {URL}: patients {', '.join(str(p.pk) for p in sorted(shown, key=lambda p: p.pk))}"
    )


# --- paging and queries -------------------------------------------------------------------


def _many(by, n: int, today: date) -> list[CTCDraw]:
    """n results to review: every third one high, the others review."""
    made = []
    for i in range(n):
        patient = _patient(by, f"Family{i:03d}")
        day = today - timedelta(days=1 + i % 5)
        made.append(_high(by, patient, day) if i % 3 == 0 else _review(by, patient, day))
    return made


def test_it_pages_fifty_items_with_a_count_and_links(api, nurse, oncologist, today):
    made = _many(oncologist, 53, today)
    api.force_authenticate(nurse)

    first = api.get(URL).json()
    second = api.get(first["next"]).json()

    high = [d.pk for i, d in enumerate(made) if i % 3 == 0]
    review = [d.pk for i, d in enumerate(made) if i % 3 != 0]
    assert _ids(first) + _ids(second) == high + review  # in the order they were resulted
    assert (first["count"], len(first["items"]), first["previous"]) == (53, 50, None)
    assert (second["count"], len(second["items"]), second["next"]) == (53, 3, None)
    assert second["previous"]


def test_page_size_chooses_how_many_items_a_page_holds(api, nurse, oncologist, today):
    _many(oncologist, 5, today)
    api.force_authenticate(nurse)

    body = api.get(URL, {"page_size": 2, "page": 3}).json()

    assert (body["count"], len(body["items"]), body["next"]) == (5, 1, None)


def test_a_long_list_counts_only_so_far_beyond_the_page_and_says_so(
    api, nurse, oncologist, today, monkeypatch, count_queries
):
    # The list counts 1,000 items beyond the page; 7 items and 2 a page show it at scale.
    monkeypatch.setattr(pagination, "COUNTED_AHEAD", 3)
    made = _many(oncologist, 7, today)
    api.force_authenticate(nurse)

    first = api.get(URL, {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    third = api.get(URL, {"page_size": 2, "page": 3}).json()
    last = api.get(URL, {"page_size": 2, "page": 4}).json()

    # Page 1 counts up to 2 + 3 items: more than 5 wait.
    assert (first["count"], first["count_capped"], len(first["items"])) == (5, True, 2)
    assert first["next"]
    # Page 3 counts as far as 2 * 3 + 3 items: all 7, exact.
    assert (third["count"], third["count_capped"]) == (7, False)
    assert (last["count"], last["count_capped"], last["next"]) == (7, False, None)
    high = [d.pk for i, d in enumerate(made) if i % 3 == 0]
    review = [d.pk for i, d in enumerate(made) if i % 3 != 0]
    assert _ids(first) + _ids(second) + _ids(third) + _ids(last) == high + review
    # Counting only so far is the same one query as counting them all.
    capped = count_queries(lambda: _cold(api, {"page_size": 2}))
    exact = count_queries(lambda: _cold(api, {"page_size": 2, "page": 3}))
    assert capped == exact


def test_a_page_out_of_range_is_not_found(api, nurse, oncologist, today):
    _many(oncologist, 3, today)
    api.force_authenticate(nurse)

    assert api.get(URL, {"page": 2}).status_code == 404
    assert api.get(URL, {"page": "x"}).status_code == 404


def test_the_list_runs_the_same_queries_for_5_and_50_results(
    api, nurse, oncologist, today, count_queries, care_teams
):
    def add(first: int, last: int) -> None:
        for i in range(first, last):
            patient = _patient(oncologist, f"F{i}")
            day = today - timedelta(days=2)
            if i % 2:  # two tubes of one venepuncture, and a rejected one beside them
                builders.draw(patient, oncologist, drawn_at=_at(day), ctc_count=i % 9 + 5)
                builders.draw(patient, oncologist, drawn_at=_at(day), status="rejected")
            _high(oncologist, patient, day)
            services.acknowledge_result(
                draw=_review(oncologist, _patient(oncologist, f"G{i}"), day), by=nurse, note="ok"
            )

    add(0, 5)
    api.force_authenticate(nurse)
    api.get(URL)
    five = count_queries(lambda: _cold(api))
    add(5, 50)

    fifty = count_queries(lambda: _cold(api))

    assert five == fifty
    # The page's patients' assessments from the cache: their rows are not loaded again.
    assert count_queries(lambda: api.get(URL)) < fifty


def _cold(api, query=None):
    """The list with no assessment in the cache: the most queries it runs."""
    cache.clear()
    return api.get(URL, query)
    assert api.get(URL).json()["count"] == 50


def test_a_lone_rejected_tube_is_ordered_and_reported_by_when_it_was_entered(
    api, nurse, oncologist, today
):
    lone = _patient(oncologist, "Lone")
    rejected = builders.draw(
        lone, oncologist, drawn_at=_at(today - timedelta(3)), status="rejected"
    )
    later = _review(oncologist, _patient(oncologist, "Later"), today)
    CTCDraw.objects.filter(pk=later.pk).update(resulted_at=timezone.now() + timedelta(minutes=5))
    api.force_authenticate(nurse)

    items = api.get(URL).json()["items"]

    assert _ids({"items": items}) == [rejected.pk, later.pk]  # both review: the older first
    assert items[0]["resulted_at"] is None
    rejected.refresh_from_db()
    assert items[0]["reported_at"] == draw_time(rejected.entered_at)


def test_a_second_acknowledgement_of_a_result_within_minutes_is_refused(
    api, nurse, oncologist, today
):
    high = _high(oncologist, _patient(oncologist, "Brown"), today - timedelta(days=1))
    api.force_authenticate(nurse)

    assert _acknowledge(api, high).status_code == 201
    again = _acknowledge(api, high)

    assert again.status_code == 400
    assert "You acknowledged this result at " in again.json()["non_field_errors"][0]
    assert Acknowledgement.objects.count() == 1
