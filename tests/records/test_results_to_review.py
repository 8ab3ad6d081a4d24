"""Results to review as `assessment` lists them: which results, in which order, and a stale rank.

Every result with a high or review flag, and every lone failed or rejected tube,
is listed until someone acknowledges it, whether or not a cycle is due: most
severe first, then the oldest result first (spec section 5).
"""

from __future__ import annotations

import logging
from datetime import date

import pytest

from patients import assessment, services
from patients.assessment.results import waiting
from patients.models import CTCDraw
from tests import builders

pytestmark = pytest.mark.django_db


def _listed() -> list[int]:
    return [d.pk for d in waiting(CTCDraw.objects.all())]


def test_a_result_with_no_cycle_entered_is_listed(oncologist):
    patient = builders.patient(oncologist)  # no therapy line, no cycle
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    high = builders.draw(patient, oncologist, drawn_at=date(2026, 3, 1), ctc_count=40)

    assert _listed() == [high.pk]


def test_the_most_severe_first_then_the_oldest_reported_a_lone_tube_by_when_it_was_entered(
    oncologist,
):
    rejected, review, high = (builders.patient(oncologist) for _ in range(3))
    lone = builders.draw(
        rejected, oncologist, drawn_at=date(2026, 1, 10), status="rejected", ctc_count=None
    )  # not evaluable: review, never resulted, and entered first: first of the reviews
    first_review = builders.draw(review, oncologist, drawn_at=date(2026, 2, 1), ctc_count=9)
    builders.draw(high, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    conversion = builders.draw(high, oncologist, drawn_at=date(2026, 3, 1), ctc_count=40)
    later_review = builders.draw(
        builders.patient(oncologist), oncologist, drawn_at=date(2026, 1, 1), ctc_count=8
    )  # drawn earliest, but resulted last of the reviews

    assert _listed() == [conversion.pk, lone.pk, first_review.pk, later_review.pk]


def test_a_sample_is_listed_once_by_its_first_tube(patient, oncologist):
    first = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=4)
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=6)  # 5 per 7.5 mL

    (item,) = assessment.result_items(waiting(CTCDraw.objects.all()))

    assert item.draw.pk == first.pk
    assert [t.ctc_count for t in item.tubes] == [4, 6]
    assert [f.code for f in item.flags] == ["baseline_unfavourable"]  # two 7.5 mL: standard


def test_a_failed_tube_beside_a_sample_is_not_a_result_of_its_own(patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), status="failed", ctc_count=None)

    assert _listed() == []


def test_an_acknowledged_result_leaves_the_list_and_its_flags_stay(patient, oncologist, nurse):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    high = builders.draw(patient, oncologist, drawn_at=date(2026, 3, 1), ctc_count=40)

    services.acknowledge_result(draw=high, by=nurse, note="Oncologist informed")

    assert _listed() == []
    found = assessment.series_for(patient).by_draw_id[high.pk]
    assert found.needs_review and "conversion_to_unfavourable" in {f.code for f in found.flags}


def test_a_stale_rank_is_logged_and_a_result_no_longer_to_review_is_left_out(
    patient, oncologist, settings, caplog
):
    draw = builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=9)
    settings.CTC_CUTOFFS = {**settings.CTC_CUTOFFS, "breast": 20}  # 9 is favourable now

    with caplog.at_level(logging.ERROR, logger="patients.assessment"):
        items = assessment.result_items(waiting(CTCDraw.objects.all()))

    assert items == []
    assert f"differs from the rules for results {draw.pk}" in caplog.text
    assert "refresh_review_ranks" in caplog.text


def test_a_stale_severity_is_logged_and_the_result_still_shown(
    patient, oncologist, settings, caplog
):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    high = builders.draw(patient, oncologist, drawn_at=date(2026, 3, 1), ctc_count=9)
    settings.CTC_CLEAR_PROBABILITY = 0.99  # 9 CTC: about 95%, near the cut-off now: review

    with caplog.at_level(logging.ERROR, logger="patients.assessment"):
        (item,) = assessment.result_items(waiting(CTCDraw.objects.all()))

    assert item.draw.pk == high.pk and item.severity == "review"
    assert f"differs from the rules for results {high.pk}" in caplog.text
