"""/api/v1/worklist/ and /api/v1/cycles/{id}/acknowledgements/."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from patients import assessment, services
from patients.models import Acknowledgement, TreatmentCycle
from tests import builders
from tests.web import worklist_states

pytestmark = pytest.mark.django_db

START = date(2026, 3, 2)


def _due(
    by, day1: date, counts: list[int | None], *, status: str = "planned", **patient: Any
) -> TreatmentCycle:
    """A new patient (`patient`: what builders.patient takes) with a line whose one upcoming
    cycle is on `day1`; draws weekly, the last 4 days before day 1 (None: a rejected specimen)."""
    owner = builders.patient(by, **patient)
    line = builders.therapy_line(owner, by, regimen="Docetaxel", start_date=day1 - timedelta(60))
    cycle = builders.cycle(line, by, number=1, scheduled_date=day1, status=status)
    builders.draws(owner, by, counts, first=day1 - timedelta(days=4 + 7 * (len(counts) - 1)))
    return cycle


def _get(api, **params):
    return api.get("/api/v1/worklist/", {"from": START.isoformat(), **params})


def test_it_orders_the_cycles_due_by_severity_then_day_1_then_name(api, nurse, oncologist):
    # START is past: every day 1 has passed, so a cycle with no draw is missing (review).
    calm = _due(oncologist, START, [0, 1], family_name="Adams")
    converted = _due(oncologist, START + timedelta(3), [1, 9], family_name="Brown")
    missing = _due(oncologist, START + timedelta(1), [], family_name="Clark")
    unfav_early = _due(oncologist, START, [12, 11], family_name="Diaz")
    unfav_same_day = _due(oncologist, START, [12, 13], family_name="Evans")
    api.force_authenticate(nurse)

    body = _get(api).json()

    assert (body["from"], body["to"]) == ("2026-03-02", "2026-03-09")
    assert [i["cycle"]["id"] for i in body["items"]] == [
        unfav_early.pk,  # high, day 1 on START, Diaz before Evans
        unfav_same_day.pk,
        converted.pk,  # high, later day 1
        missing.pk,  # review
        calm.pk,  # no flags
    ]
    assert [i["severity"] for i in body["items"]] == ["high", "high", "high", "review", None]
    assert [f["code"] for f in body["items"][3]["flags"]] == ["missing_pre_cycle_draw"]
    assert body["items"][3]["pre_cycle_state"] == "missing"


def test_an_item_carries_the_patient_cycle_latest_draw_and_flags(api, nurse, oncologist):
    cycle = _due(oncologist, START, [1, 9], mrn="MRN-7", given_name="Pat", family_name="Brown")
    patient = cycle.therapy_line.patient
    api.force_authenticate(nurse)

    (item,) = _get(api).json()["items"]

    assert item["patient"] == {"id": patient.pk, "mrn": "MRN-7", "name": "Pat Brown"}
    assert item["cycle"]["id"] == cycle.pk
    assert (item["cycle"]["number"], item["cycle"]["scheduled_date"]) == (1, "2026-03-02")
    assert item["cycle"]["regimen"] == "Docetaxel"
    assert item["latest_draw"]["ctc_count"] == 9
    assert item["latest_draw"]["category"] == "unfavourable"
    assert item["latest_draw"]["p_at_or_above_cutoff"] == pytest.approx(0.953, abs=0.001)
    assert item["latest_draw"]["sample"]["draw_ids"] == [item["latest_draw"]["id"]]
    assert (item["latest_draw"]["needs_review"], item["latest_draw"]["acknowledged"]) == (
        True,
        False,
    )
    # One category flag (version 1 added a second, "unfavourable", saying the same thing).
    assert [(f["code"], f["severity"]) for f in item["flags"]] == [
        ("conversion_to_unfavourable", "high"),
        ("rise_beyond_noise", "review"),
    ]
    assert item["severity"] == "high"
    assert item["first_scheduled_date"] == "2026-03-02"
    assert item["window"] == {"from": "2026-02-23", "to": "2026-03-02"}
    assert item["pre_cycle_state"] == "result_in_window"
    assert item["acknowledged"] is False
    assert item["acknowledgements"] == []


def test_it_lists_only_planned_and_delayed_cycles_inside_the_range(api, nurse, oncologist):
    inside = _due(oncologist, START + timedelta(6), [1])
    delayed = _due(oncologist, START, [1], status="delayed")
    _due(oncologist, START + timedelta(7), [1])  # the end is open
    _due(oncologist, START - timedelta(1), [1])
    given = _due(oncologist, START, [1])
    services.update_cycle(
        cycle=given,
        version=builders.version_of(given),
        by=oncologist,
        changes={"status": "given", "given_date": START},
    )
    api.force_authenticate(nurse)

    ids = {i["cycle"]["id"] for i in _get(api).json()["items"]}

    assert ids == {inside.pk, delayed.pk}


def test_days_widens_the_range(api, nurse, oncologist):
    _due(oncologist, START + timedelta(10), [1])
    api.force_authenticate(nurse)

    assert len(_get(api, days=11).json()["items"]) == 1
    assert len(_get(api).json()["items"]) == 0


@pytest.mark.parametrize(
    "params, field",
    [({"from": "02/03/2026"}, "from"), ({"days": "week"}, "days"), ({"days": 0}, "days")],
)
def test_bad_parameters_name_the_field(api, nurse, params, field):
    api.force_authenticate(nurse)

    r = api.get("/api/v1/worklist/", params)

    assert r.status_code == 400
    assert list(r.json()) == [field]


def test_the_worklist_runs_the_same_queries_for_5_and_50_patients(
    api, nurse, oncologist, count_queries, care_teams
):
    def add_patients(first: int, last: int) -> None:
        for i in range(first, last):
            cycle = _due(oncologist, START + timedelta(i % 7), [i % 4, i % 9 + 5])
            if i % 2:  # the results shown, acknowledged as results
                latest = cycle.therapy_line.patient.draws.latest("drawn_at")
                services.acknowledge_result(draw=latest, by=nurse, note="Seen")
            else:
                services.acknowledge_cycle(cycle=cycle, by=nurse, note="Seen")

    add_patients(0, 5)
    api.force_authenticate(nurse)
    _get(api)
    five = count_queries(lambda: _cold(api))
    add_patients(5, 50)

    fifty = count_queries(lambda: _cold(api))

    assert five == fifty
    assert len(_get(api).json()["items"]) == 50


def test_a_nurse_acknowledges_a_flagged_cycle_and_the_flags_stay(api, nurse, oncologist):
    cycle = _due(oncologist, START, [1, 9])
    api.force_authenticate(nurse)

    r = api.post(
        f"/api/v1/cycles/{cycle.pk}/acknowledgements/",
        {"note": "Discussed with Dr Olsen; scan booked"},
        format="json",
    )
    (item,) = _get(api).json()["items"]

    assert r.status_code == 201
    ack = Acknowledgement.objects.get()
    assert (ack.acknowledged_by, ack.cycle) == (nurse, cycle)
    assert [f["code"] for f in ack.flags] == [f["code"] for f in item["flags"]]
    assert item["flags"]  # acknowledging never hides the flags
    assert item["acknowledged"] is True
    assert item["acknowledgements"][0]["note"] == "Discussed with Dr Olsen; scan booked"
    assert item["acknowledgements"][0]["acknowledged_by"] == "nina"
    assert item["acknowledgements"][0]["acknowledged_at"]
    assert (item["acknowledgements"][0]["cycle"], item["acknowledgements"][0]["draw"]) == (
        cycle.pk,
        None,
    )


@pytest.mark.parametrize("body", [{"note": ""}, {"note": "   "}, {}])
def test_an_acknowledgement_needs_a_note(api, nurse, oncologist, body):
    cycle = _due(oncologist, START, [1, 9])
    api.force_authenticate(nurse)

    r = api.post(f"/api/v1/cycles/{cycle.pk}/acknowledgements/", body, format="json")

    assert r.status_code == 400
    assert list(r.json()) == ["note"]
    assert not Acknowledgement.objects.exists()


def test_oncologists_acknowledge_too_but_users_without_a_role_cannot(api, oncologist, outsider):
    cycle = _due(oncologist, START, [1, 9])
    url = f"/api/v1/cycles/{cycle.pk}/acknowledgements/"

    api.force_authenticate(outsider)
    assert api.post(url, {"note": "x"}, format="json").status_code == 403
    assert api.get("/api/v1/worklist/").status_code == 403
    api.force_authenticate(oncologist)
    assert api.post(url, {"note": "Reviewed"}, format="json").status_code == 201
    assert Acknowledgement.objects.get().acknowledged_by == oncologist


def test_the_worklist_defaults_to_the_coming_week(api, nurse):
    api.force_authenticate(nurse)

    body = api.get("/api/v1/worklist/").json()

    start = date.fromisoformat(body["from"])
    assert date.fromisoformat(body["to"]) - start == timedelta(days=7)


# --- paging -----------------------------------------------------------------------------


def _many_due(by, n: int) -> list:
    return [
        _due(by, START + timedelta(i % 7), [i % 9], family_name=f"Family{i:03d}") for i in range(n)
    ]


def test_it_pages_fifty_items_with_a_count_and_links_in_the_rules_order(api, nurse, oncologist):
    _many_due(oncologist, 53)
    api.force_authenticate(nurse)

    first = _get(api).json()
    second = api.get(first["next"]).json()

    expected = sorted(assessment.worklist(START, 7), key=assessment.worklist_order)
    ids = [i["cycle"]["id"] for i in first["items"] + second["items"]]
    assert ids == [item.cycle.pk for item in expected]  # all 53, none twice
    assert (first["count"], len(first["items"]), first["previous"]) == (53, 50, None)
    assert "page=2" in first["next"] and "from=2026-03-02" in first["next"]
    assert (second["count"], len(second["items"]), second["next"]) == (53, 3, None)
    assert (second["from"], second["to"]) == ("2026-03-02", "2026-03-09")
    assert second["previous"]


def test_page_size_chooses_how_many_items_a_page_holds(api, nurse, oncologist):
    _many_due(oncologist, 5)
    api.force_authenticate(nurse)

    body = _get(api, page_size=2, page=3).json()

    assert (body["count"], len(body["items"]), body["next"]) == (5, 1, None)


def test_a_page_out_of_range_is_not_found(api, nurse, oncologist):
    _many_due(oncologist, 3)
    api.force_authenticate(nurse)

    assert _get(api, page=2).status_code == 404
    assert _get(api, page="x").status_code == 404


def test_the_api_runs_the_same_queries_for_any_page(
    api, nurse, oncologist, count_queries, care_teams
):
    _many_due(oncologist, 55)
    api.force_authenticate(nurse)
    _get(api)

    assert count_queries(lambda: _cold(api)) == count_queries(lambda: _cold(api, page=2))
    # The page's patients' assessments from the cache: their rows are not loaded again.
    assert count_queries(lambda: _get(api, page=2)) < count_queries(lambda: _cold(api, page=2))


def _cold(api, **query):
    """The worklist with no assessment in the cache: the most queries it runs."""
    cache.clear()
    return _get(api, **query)


# --- states and order on today's date ---------------------------------------------------


def test_each_item_says_its_state_and_the_order_puts_unacknowledged_flags_first(
    api, nurse, oncologist
):
    cycles = worklist_states.build(oncologist, nurse)
    api.force_authenticate(nurse)

    body = api.get("/api/v1/worklist/", {"days": worklist_states.DAYS}).json()

    by_id = {cycle.pk: name for name, cycle in cycles.items()}
    shown = [
        (by_id[i["cycle"]["id"]], i["severity"], i["pre_cycle_state"], i["acknowledged"])
        for i in body["items"]
    ]
    assert shown == [
        ("high", "high", "result_in_window", False),
        ("not_evaluable", "review", "draw_due", False),
        ("review", "review", "result_in_window", False),
        ("acknowledged", "high", "result_in_window", True),
        ("info", "info", "result_in_window", False),
        ("draw_due", None, "draw_due", False),
        ("pending", None, "result_pending", False),
        ("nothing", None, "result_in_window", False),
        ("not_yet_due", None, "not_yet_due", False),
    ]
    flags = {by_id[i["cycle"]["id"]]: [f["code"] for f in i["flags"]] for i in body["items"]}
    assert flags["not_evaluable"] == ["not_evaluable"]
    assert flags["draw_due"] == flags["pending"] == flags["not_yet_due"] == []


def test_a_cycle_whose_window_has_not_opened_has_no_flag_and_says_when_it_opens(
    api, nurse, oncologist
):
    today = timezone.localdate()
    cycle = _due(oncologist, today + timedelta(days=10), [])  # opens in three days
    api.force_authenticate(nurse)

    (item,) = api.get("/api/v1/worklist/", {"days": 14}).json()["items"]

    assert item["cycle"]["id"] == cycle.pk
    assert (item["pre_cycle_state"], item["severity"], item["flags"]) == ("not_yet_due", None, [])
    assert item["window"] == {
        "from": (today + timedelta(days=3)).isoformat(),
        "to": (today + timedelta(days=10)).isoformat(),
    }


def test_a_second_acknowledgement_within_minutes_is_refused_with_a_message(api, nurse, oncologist):
    cycle = _due(oncologist, START, [1, 9])
    url = f"/api/v1/cycles/{cycle.pk}/acknowledgements/"
    api.force_authenticate(nurse)

    first = api.post(url, {"note": "Oncologist informed"}, format="json")
    again = api.post(url, {"note": "Oncologist informed"}, format="json")

    assert (first.status_code, again.status_code) == (201, 400)
    (message,) = again.json()["non_field_errors"]
    assert message.startswith("You acknowledged this cycle at ")
    assert message.endswith("less than 10 minutes ago; it was not acknowledged again.")
    assert Acknowledgement.objects.count() == 1


def test_a_cycle_with_nothing_to_acknowledge_is_refused(api, nurse, oncologist):
    cycle = _due(oncologist, START, [1, 0])
    api.force_authenticate(nurse)

    r = api.post(f"/api/v1/cycles/{cycle.pk}/acknowledgements/", {"note": "ok"}, format="json")

    assert r.status_code == 400
    assert r.json() == {
        "non_field_errors": ["Nothing to acknowledge: this cycle has no high or review flag."]
    }
    assert not Acknowledgement.objects.exists()


def test_the_api_keeps_the_rules_order_whatever_view_the_page_remembers(
    api, client, nurse, oncologist
):
    calm = _due(oncologist, START, [1, 0], family_name="Calm")
    risen = _due(oncologist, START + timedelta(days=3), [1, 9], family_name="Risen")
    client.force_login(nurse)
    client.get("/", {"view": "day"})
    api.force_authenticate(nurse)

    assert [i["cycle"]["id"] for i in _get(api).json()["items"]] == [risen.pk, calm.pk]


def test_a_new_draw_and_new_cut_offs_show_at_once(api, nurse, oncologist, settings):
    """The page's patients' assessments are kept in the cache (`listed_series_for_many`):
    a new draw, and a change of the cut-offs, show on the very next request."""
    cycle = _due(oncologist, START, [2])
    api.force_authenticate(nurse)
    assert _get(api).json()["items"][0]["latest_draw"]["ctc_count"] == 2

    builders.draw(
        cycle.therapy_line.patient, oncologist, drawn_at=START - timedelta(days=2), ctc_count=9
    )
    latest = _get(api).json()["items"][0]["latest_draw"]
    assert (latest["ctc_count"], latest["category"]) == (9, "unfavourable")

    settings.CTC_CUTOFFS = {**settings.CTC_CUTOFFS, "breast": 20}
    assert _get(api).json()["items"][0]["latest_draw"]["category"] == "favourable"
