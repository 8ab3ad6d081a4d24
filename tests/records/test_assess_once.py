"""A write assesses the patient once: the page shows the flags the save itself computed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from patients import rules
from patients.models import Acknowledgement, CTCDraw
from tests import builders

pytestmark = pytest.mark.django_db


@pytest.fixture
def rules_calls(monkeypatch) -> list[int]:
    """How many times the rules assessed a patient's draws (their entry point for a series)."""
    calls: list[int] = []
    assess_draws = rules.assess_draws

    def counted(*args, **kwargs):
        calls.append(1)
        return assess_draws(*args, **kwargs)

    monkeypatch.setattr(rules, "assess_draws", counted)
    return calls


def test_saving_a_draw_through_the_form_asks_the_rules_once(
    client, oncologist, patient, cycle, rules_calls
):
    client.force_login(oncologist)

    r = client.post(
        f"/patients/{patient.pk}/draws/new/",
        {
            "drawn_at": "2026-01-02T09:00",
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "8",
        },
    )

    assert r.status_code == 302
    assert CTCDraw.objects.count() == 1
    assert len(rules_calls) == 1  # the save's assessment ranks the cycle and names the flags


def test_correcting_a_draw_through_the_form_asks_the_rules_once(
    client, oncologist, patient, cycle, draw, rules_calls
):
    client.force_login(oncologist)

    r = client.post(
        f"/draws/{draw.pk}/edit/",
        {
            "drawn_at": "2026-01-02T09:30",
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "9",
            "accession": "ACC-1",
            "version": "1",
            "reason": "Transcription error",
        },
    )

    assert r.status_code == 302
    assert CTCDraw.objects.get(pk=draw.pk).ctc_count == 9
    assert len(rules_calls) == 1


def test_the_one_assessment_also_ranks_the_cycle_and_names_the_flags(
    client, oncologist, patient, cycle
):
    client.force_login(oncologist)

    r = client.post(
        f"/patients/{patient.pk}/draws/new/",
        {
            "drawn_at": "2026-01-02T09:00",
            "blood_volume_ml": "7.5",
            "status": "resulted",
            "ctc_count": "8",
        },
        follow=True,
    )

    assert "Draw saved. Flags: Unfavourable at baseline: 8 CTC/7.5 mL" in r.content.decode()
    cycle.refresh_from_db()
    draw = CTCDraw.objects.get()
    review = rules.SEVERITY_ORDER[rules.Severity.REVIEW]
    # The draw lies in the cycle's window: the cycle shows its flag in every phase.
    assert (cycle.rank_before_window, cycle.rank_in_window, cycle.rank_after_day_1) == (
        review,
        review,
        review,
    )
    assert (draw.review_rank, draw.review_acknowledged) == (review, False)


def test_recording_a_draw_through_the_api_asks_the_rules_once(
    api, oncologist, patient, cycle, rules_calls
):
    api.force_authenticate(oncologist)

    r = api.post(
        f"/api/v1/patients/{patient.pk}/draws/",
        {"drawn_at": "2026-01-02T09:00:00Z", "status": "resulted", "ctc_count": 8},
        format="json",
    )

    assert r.status_code == 201
    assert [f["code"] for f in r.json()["flags"]] == ["baseline_unfavourable"]
    assert len(rules_calls) == 1


def test_correcting_a_draw_through_the_api_asks_the_rules_once(
    api, oncologist, patient, cycle, draw, rules_calls
):
    api.force_authenticate(oncologist)

    r = api.patch(
        f"/api/v1/draws/{draw.pk}/",
        {"ctc_count": 9, "version": 1, "reason": "Transcription error"},
        format="json",
    )

    assert r.status_code == 200
    assert r.json()["ctc_count"] == 9
    assert [f["code"] for f in r.json()["flags"]] == ["baseline_unfavourable"]
    assert len(rules_calls) == 1


@pytest.fixture
def high(patient, oncologist, cycle) -> CTCDraw:
    """A high result in the window of `cycle` (5 Jan): a conversion after a favourable one."""
    builders.draw(patient, oncologist, drawn_at=datetime(2025, 12, 1, 9, tzinfo=UTC), ctc_count=1)
    return builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC), ctc_count=40
    )


@pytest.mark.parametrize(
    ("url", "via"),
    [
        ("/cycles/{cycle}/acknowledge/", "page"),
        ("/draws/{draw}/acknowledge/", "page"),
        ("/api/v1/cycles/{cycle}/acknowledgements/", "api"),
        ("/api/v1/draws/{draw}/acknowledgements/", "api"),
    ],
)
def test_acknowledging_asks_the_rules_once(client, api, nurse, cycle, high, rules_calls, url, via):
    rules_calls.clear()  # the draws' own saves
    target = url.format(cycle=cycle.pk, draw=high.pk)

    if via == "page":
        client.force_login(nurse)
        r = client.post(target, {"note": "Oncologist informed"})
        assert r.status_code == 302
    else:
        api.force_authenticate(nurse)
        r = api.post(target, {"note": "Oncologist informed"}, format="json")
        assert r.status_code == 201

    assert Acknowledgement.objects.count() == 1
    assert len(rules_calls) == 1  # the acknowledgement's assessment also stores the ranks
