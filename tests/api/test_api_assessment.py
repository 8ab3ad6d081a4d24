"""/api/v1/patients/{id}/assessment/ and the rule fields on every draw."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from patients import services
from tests import builders

pytestmark = pytest.mark.django_db


def _record(patient, by, day: date, count: int | None, *, drawn_hour: int = 9, **fields):
    return services.record_draw(
        patient=patient,
        by=by,
        drawn_at=datetime(day.year, day.month, day.day, drawn_hour, tzinfo=UTC),
        ctc_count=count,
        **fields,
    )


def _codes(flags) -> list[str]:
    return [f["code"] for f in flags]


def test_posting_a_draw_returns_its_rate_category_interval_and_flags(api, oncologist, patient):
    _record(patient, oncologist, date(2026, 1, 2), 2)
    api.force_authenticate(oncologist)

    r = api.post(
        f"/api/v1/patients/{patient.pk}/draws/",
        {"drawn_at": "2026-01-23T09:00:00Z", "status": "resulted", "ctc_count": 9},
        format="json",
    )

    body = r.json()
    assert r.status_code == 201
    assert body["rate_per_7_5_ml"] == 9.0
    assert body["category"] == "unfavourable"
    assert body["ci95"] == pytest.approx([4.12, 17.08], abs=0.01)
    assert body["p_at_or_above_cutoff"] == pytest.approx(0.953, abs=0.001)
    assert body["sample"] == {
        "draw_ids": [body["id"]],
        "count": 9,
        "count_qualifier": "",
        "volume_ml": 7.5,
        "rate_per_7_5_ml": 9.0,
        "ci95": body["ci95"],
    }
    # One category flag, high because 9 is clearly at or above the cut-off (p >= 0.90).
    assert [(f["code"], f["severity"]) for f in body["flags"]] == [
        ("conversion_to_unfavourable", "high"),
        ("rise_beyond_noise", "review"),
    ]
    rise = body["flags"][1]["message"]
    assert "2 CTC/7.5 mL to 9 CTC/7.5 mL" in rise and "p = 0.033" in rise
    assert (body["needs_review"], body["acknowledged"], body["acknowledgements"]) == (
        True,
        False,
        [],
    )


def test_a_count_near_the_cut_off_is_flagged_for_review_with_its_chance(api, oncologist, patient):
    _record(patient, oncologist, date(2026, 1, 2), 2)
    api.force_authenticate(oncologist)

    r = api.post(
        f"/api/v1/patients/{patient.pk}/draws/",
        {"drawn_at": "2026-01-23T09:00:00Z", "status": "resulted", "ctc_count": 5},
        format="json",
    )

    body = r.json()
    assert body["p_at_or_above_cutoff"] == pytest.approx(0.53, abs=0.005)
    ((code, severity, message),) = [(f["code"], f["severity"], f["message"]) for f in body["flags"]]
    assert (code, severity) == ("conversion_to_unfavourable", "review")
    assert "near the cut-off" in message and "about 53%" in message


def test_a_zero_count_reads_none_detected_and_a_rejected_draw_has_no_category(
    api, nurse, oncologist, patient
):
    zero = _record(patient, oncologist, date(2026, 1, 2), 0)
    rejected = _record(patient, oncologist, date(2026, 1, 9), None, status="rejected")
    api.force_authenticate(nurse)

    zero_body = api.get(f"/api/v1/draws/{zero.pk}/").json()
    rejected_body = api.get(f"/api/v1/draws/{rejected.pk}/").json()

    assert zero_body["category"] == "favourable"
    assert zero_body["ci95"] == pytest.approx([0, 3.69], abs=0.01)
    assert (rejected_body["category"], rejected_body["ci95"], rejected_body["rate_per_7_5_ml"]) == (
        None,
        None,
        None,
    )
    assert _codes(rejected_body["flags"]) == ["not_evaluable"]
    assert (rejected_body["sample"], rejected_body["needs_review"]) == (None, True)
    assert zero_body["flags"] == [] and zero_body["needs_review"] is False


def test_a_non_standard_volume_is_scaled_to_7_5_ml(api, nurse, oncologist, patient):
    draw = _record(patient, oncologist, date(2026, 1, 2), 2, blood_volume_ml=Decimal("10"))
    api.force_authenticate(nurse)

    body = api.get(f"/api/v1/draws/{draw.pk}/").json()

    assert body["rate_per_7_5_ml"] == 1.5
    assert body["sample"]["volume_ml"] == 10.0
    assert _codes(body["flags"]) == ["non_standard_volume"]


def test_tubes_drawn_together_carry_their_samples_rate_and_flags(api, nurse, oncologist, patient):
    _record(patient, oncologist, date(2026, 1, 2), 1)
    four = _record(patient, oncologist, date(2026, 1, 23), 4)
    six = _record(patient, oncologist, date(2026, 1, 23), 6)
    failed = _record(patient, oncologist, date(2026, 1, 23), None, status="failed")
    api.force_authenticate(nurse)

    body = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()

    by_id = {d["id"]: d for d in body["draws"]}
    for tube in (four, six):
        drawn = by_id[tube.pk]
        assert drawn["sample"]["draw_ids"] == [four.pk, six.pk]
        assert (drawn["sample"]["count"], drawn["sample"]["volume_ml"]) == (10, 15.0)
        assert drawn["rate_per_7_5_ml"] == 5.0  # 10 in 15 mL, never 4 compared with 6
        # At the cut-off but not clearly above it: review, not high.
        assert [(f["code"], f["severity"]) for f in drawn["flags"]] == [
            ("conversion_to_unfavourable", "review")
        ]
    beside = by_id[failed.pk]
    assert (beside["flags"], beside["needs_review"]) == ([], False)  # the sample stands for it
    assert beside["sample"]["draw_ids"] == [four.pk, six.pk]


def test_the_assessment_lists_every_draw_oldest_first_and_the_upcoming_cycles(
    api, nurse, oncologist, patient, line
):
    services.plan_cycle(
        line=line,
        by=oncologist,
        number=1,
        scheduled_date=date(2026, 1, 5),
        status="given",
        given_date=date(2026, 1, 5),
    )
    upcoming = services.plan_cycle(
        line=line, by=oncologist, number=2, scheduled_date=date(2026, 1, 26)
    )
    _record(patient, oncologist, date(2026, 1, 21), 7)
    _record(patient, oncologist, date(2026, 1, 1), 3)
    api.force_authenticate(nurse)

    body = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()

    assert (body["patient"], body["cancer_type"], body["cutoff"]) == (patient.pk, "breast", 5)
    assert [d["ctc_count"] for d in body["draws"]] == [3, 7]
    assert [c["id"] for c in body["upcoming_cycles"]] == [upcoming.pk]
    cycle = body["upcoming_cycles"][0]
    assert (cycle["therapy_line"], cycle["number"], cycle["scheduled_date"]) == (
        line.pk,
        2,
        "2026-01-26",
    )
    # 7 is unfavourable but not clearly (chance 82% < 90%): review, not high.
    assert [(f["code"], f["severity"]) for f in cycle["flags"]] == [
        ("conversion_to_unfavourable", "review")
    ]
    assert cycle["first_scheduled_date"] == "2026-01-26"
    assert cycle["window"] == {"from": "2026-01-19", "to": "2026-01-26"}
    assert (cycle["pre_cycle_state"], cycle["acknowledged"]) == ("result_in_window", False)
    (given,) = body["given_cycles"]
    assert (given["number"], given["status"], given["given_date"]) == (1, "given", "2026-01-05")
    assert given["window"] == {"from": "2025-12-29", "to": "2026-01-05"}
    assert (given["pre_cycle_state"], given["flags"], given["acknowledged"]) == (
        "result_in_window",
        [],  # 3 at baseline: favourable
        False,
    )


def test_a_cycle_whose_day_1_passed_without_a_result_in_its_window_is_flagged_missing(
    api, nurse, oncologist, patient, line
):
    services.plan_cycle(line=line, by=oncologist, number=1, scheduled_date=date(2026, 1, 26))
    _record(patient, oncologist, date(2026, 1, 18), 2)  # 8 days before day 1: outside
    _record(patient, oncologist, date(2026, 1, 20), None, status="failed")
    api.force_authenticate(nurse)

    body = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()

    (cycle,) = body["upcoming_cycles"]
    assert [(f["code"], f["severity"]) for f in cycle["flags"]] == [
        ("missing_pre_cycle_draw", "review"),
        ("not_evaluable", "review"),
    ]
    assert cycle["pre_cycle_state"] == "missing"


def _cycle_on(patient, line, by, day_1: date):
    return services.plan_cycle(line=line, by=by, number=9, scheduled_date=day_1)


def test_before_its_window_opens_a_cycle_has_no_flag(api, nurse, oncologist, patient, line):
    today = timezone.localdate()
    _cycle_on(patient, line, oncologist, today + timedelta(days=8))
    _record(patient, oncologist, today - timedelta(days=3), None, status="rejected")
    api.force_authenticate(nurse)

    (cycle,) = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()["upcoming_cycles"]

    assert (cycle["pre_cycle_state"], cycle["severity"], cycle["flags"]) == (
        "not_yet_due",
        None,
        [],
    )
    assert cycle["window"]["from"] == (today + timedelta(days=1)).isoformat()


@pytest.mark.parametrize("day_1", [0, 3, 7])  # day 1 itself, inside, the window's first day
def test_in_its_window_without_a_result_a_draw_is_due(api, nurse, oncologist, patient, line, day_1):
    today = timezone.localdate()
    _cycle_on(patient, line, oncologist, today + timedelta(days=day_1))
    _record(patient, oncologist, today - timedelta(days=9), 2)  # before the window
    api.force_authenticate(nurse)

    (cycle,) = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()["upcoming_cycles"]

    assert (cycle["pre_cycle_state"], cycle["severity"], cycle["flags"]) == ("draw_due", None, [])


def test_a_rejected_tube_in_the_window_asks_for_a_repeat_while_the_draw_is_due(
    api, nurse, oncologist, patient, line
):
    today = timezone.localdate()
    _cycle_on(patient, line, oncologist, today + timedelta(days=4))
    _record(patient, oncologist, today - timedelta(days=1), None, status="rejected")
    api.force_authenticate(nurse)

    (cycle,) = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()["upcoming_cycles"]

    assert cycle["pre_cycle_state"] == "draw_due"
    assert [(f["code"], f["severity"]) for f in cycle["flags"]] == [("not_evaluable", "review")]


def test_a_pending_tube_in_the_window_is_a_result_pending_even_after_day_1(
    api, nurse, oncologist, patient, line
):
    today = timezone.localdate()
    _cycle_on(patient, line, oncologist, today - timedelta(days=1))
    _record(patient, oncologist, today - timedelta(days=4), None, status="pending")
    api.force_authenticate(nurse)

    (cycle,) = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()["upcoming_cycles"]

    assert (cycle["pre_cycle_state"], cycle["flags"]) == ("result_pending", [])


def test_acknowledging_a_cycle_makes_it_read_acknowledged_and_a_new_sample_undoes_that(
    api, nurse, oncologist, patient, line
):
    today = timezone.localdate()
    cycle = _cycle_on(patient, line, oncologist, today + timedelta(days=5))
    _record(patient, oncologist, today - timedelta(days=30), 1)
    _record(patient, oncologist, today - timedelta(days=1), 12)
    url = f"/api/v1/patients/{patient.pk}/assessment/"
    api.force_authenticate(nurse)
    api.post(f"/api/v1/cycles/{cycle.pk}/acknowledgements/", {"note": "Seen"}, format="json")

    acknowledged = api.get(url).json()["upcoming_cycles"][0]["acknowledged"]
    _record(patient, oncologist, today - timedelta(days=1), 30, drawn_hour=15)
    after_new_sample = api.get(url).json()["upcoming_cycles"][0]

    assert acknowledged is True
    assert after_new_sample["acknowledged"] is False
    assert after_new_sample["flags"][0]["code"] == "persistent_unfavourable"


def test_the_assessment_runs_the_same_queries_for_few_or_many_draws(
    api, nurse, oncologist, patient, line, count_queries
):
    url = f"/api/v1/patients/{patient.pk}/assessment/"
    for n in range(3):
        services.plan_cycle(
            line=line,
            by=oncologist,
            number=n + 1,
            scheduled_date=date(2026, 1, 5) + timedelta(days=21 * n),
        )
        _record(patient, oncologist, date(2026, 1, 1) + timedelta(days=21 * n), n)
    api.force_authenticate(nurse)
    api.get(url)
    few = count_queries(lambda: api.get(url))
    for n in range(3, 30):
        services.plan_cycle(
            line=line,
            by=oncologist,
            number=n + 1,
            scheduled_date=date(2026, 1, 5) + timedelta(days=7 * n),
        )
        _record(patient, oncologist, date(2026, 1, 1) + timedelta(days=7 * n), n % 7)

    many = count_queries(lambda: api.get(url))

    assert few == many


def test_the_assessment_needs_a_role(api, outsider, patient):
    api.force_authenticate(outsider)

    assert api.get(f"/api/v1/patients/{patient.pk}/assessment/").status_code == 403
    assert api.get("/api/v1/patients/999999/assessment/").status_code == 403


def test_a_delayed_cycle_keeps_its_original_window_and_the_draw_taken_for_it(
    api, nurse, oncologist, patient, line
):
    today = timezone.localdate()
    planned = today + timedelta(days=1)
    cycle = _cycle_on(patient, line, oncologist, planned)
    _record(patient, oncologist, today - timedelta(days=3), 2)  # drawn for the planned day 1
    services.delay_cycle_and_following(
        cycle=cycle,
        by=oncologist,
        new_date=planned + timedelta(days=7),
        reason="Neutrophils 0.8",
        version=builders.version_of(cycle),
    )
    api.force_authenticate(nurse)

    (upcoming,) = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()["upcoming_cycles"]

    assert (upcoming["status"], upcoming["scheduled_date"]) == (
        "delayed",
        (planned + timedelta(days=7)).isoformat(),
    )
    assert upcoming["first_scheduled_date"] == planned.isoformat()
    assert upcoming["window"] == {
        "from": (planned - timedelta(days=7)).isoformat(),
        "to": (planned + timedelta(days=7)).isoformat(),
    }
    assert (upcoming["pre_cycle_state"], upcoming["flags"]) == ("result_in_window", [])
