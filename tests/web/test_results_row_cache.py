"""The results to review keep each row's markup in the cache (`patients/web/fragments.py`):
a write that changes what a row shows must show on the very next request, as must the
time it has waited, an escalation and who is looking."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from patients import services
from patients.models import CTCDraw
from tests import builders


@pytest.fixture
def waiting(client, nurse, oncologist):
    """A high result from yesterday; the nurse has opened the list once, so its row is in
    the cache."""
    patient = builders.patient(oncologist, family_name="Cachet", oncologist=oncologist)
    draw = builders.high_result(oncologist, patient, timezone.localdate() - timedelta(days=1))
    client.force_login(nurse)
    first = _row(client.get("/results/"), draw)
    return patient, draw, first


def _row(response, draw) -> str:
    """The row of `draw` on the page, its acknowledge form (with the CSRF token) left out;
    "" when the page has no such row."""
    assert response.status_code == 200
    found = re.search(
        rf'<li class="row [^"]*" id="result-{draw.pk}".*?</details>\s*</li>', response.text, re.S
    )
    return re.sub(r'<form method="post".*?</form>', "", found.group(0), flags=re.S) if found else ""


def test_a_second_visit_shows_the_same_row(client, waiting):
    _patient, draw, first = waiting

    assert first and _row(client.get("/results/"), draw) == first


def test_a_corrected_count_shows_at_once(client, oncologist, waiting):
    _patient, draw, first = waiting
    services.update_draw(
        draw=draw,
        by=oncologist,
        changes={"ctc_count": 250},
        version=builders.version_of(draw),
        reason="Transcription error",
    )

    row = _row(client.get("/results/"), draw)

    assert "250 CTC/7.5 mL" in row and "250 CTC" not in first


def test_an_acknowledgement_takes_the_row_off_the_list(client, nurse, waiting):
    _patient, draw, _first = waiting
    services.acknowledge_result(draw=draw, by=nurse, note="Seen")

    assert _row(client.get("/results/"), draw) == ""


def test_an_escalation_shows_at_once(client, waiting):
    _patient, draw, first = waiting
    CTCDraw.objects.filter(pk=draw.pk).update(escalated_at=timezone.now())  # as escalate_flags

    row = _row(client.get("/results/"), draw)

    assert "tag-escalated" in row and "tag-escalated" not in first


def test_the_time_waited_moves_on(client, waiting):
    """Three days on, as if the result had arrived three days earlier (the session would
    not outlive a clock moved on by three days)."""
    _patient, draw, first = waiting
    CTCDraw.objects.filter(pk=draw.pk).update(resulted_at=F("resulted_at") - timedelta(days=3))

    row = _row(client.get("/results/"), draw)

    assert row != first and "days</span>" in row and "days</span>" not in first


def test_a_change_of_the_cut_offs_assesses_the_rows_again(client, settings, waiting):
    _patient, draw, first = waiting
    assert "unfavourable" in first  # 12 cells: above the breast cut-off of 5

    with override_settings(CTC_CUTOFFS={**settings.CTC_CUTOFFS, "breast": 20}):
        row = _row(client.get("/results/"), draw)

    assert "unfavourable" not in row


def test_who_may_acknowledge_is_not_taken_from_the_cache(client, waiting):
    _patient, draw, _first = waiting
    reader = get_user_model().objects.create_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_ctcdraw"))
    client.force_login(reader)

    row = _row(client.get("/results/"), draw)

    assert "Acknowledge<" not in row and "Details<" in row
