"""/api/v1/patients/{id}/assessment/ and the rule fields on every draw."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from patients import services

pytestmark = pytest.mark.django_db


def _record(patient, by, day: date, count: int | None, **fields):
    return services.record_draw(
        patient=patient,
        by=by,
        drawn_at=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
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
    assert _codes(body["flags"]) == [
        "conversion_to_unfavourable",
        "unfavourable",
        "rise_beyond_noise",
    ]
    assert {f["severity"] for f in body["flags"]} == {"high", "review"}
    rise = body["flags"][2]["message"]
    assert "2 to 9" in rise and "p = 0.033" in rise


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


def test_a_non_standard_volume_is_scaled_to_7_5_ml(api, nurse, oncologist, patient):
    draw = _record(patient, oncologist, date(2026, 1, 2), 2, blood_volume_ml=Decimal("10"))
    api.force_authenticate(nurse)

    body = api.get(f"/api/v1/draws/{draw.pk}/").json()

    assert body["rate_per_7_5_ml"] == 1.5
    assert _codes(body["flags"]) == ["non_standard_volume"]


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
    assert _codes(cycle["flags"]) == ["conversion_to_unfavourable", "unfavourable"]


def test_an_upcoming_cycle_without_a_draw_in_its_window_is_flagged_missing(
    api, nurse, oncologist, patient, line
):
    services.plan_cycle(line=line, by=oncologist, number=1, scheduled_date=date(2026, 1, 26))
    _record(patient, oncologist, date(2026, 1, 18), 2)  # 8 days before day 1: outside
    _record(patient, oncologist, date(2026, 1, 20), None, status="failed")
    api.force_authenticate(nurse)

    body = api.get(f"/api/v1/patients/{patient.pk}/assessment/").json()

    assert _codes(body["upcoming_cycles"][0]["flags"]) == [
        "missing_pre_cycle_draw",
        "not_evaluable",
    ]


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
