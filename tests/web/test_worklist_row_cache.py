"""The worklist keeps each row's markup in the cache (`patients/web/fragments.py`): a write
that changes what a row shows must show on the very next request, as must the next day,
a change of the cut-offs, and who is looking."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.utils import timezone

from patients import services
from patients.web import fragments
from tests import builders


@pytest.fixture
def due(client, nurse, oncologist):
    """A patient with an unfavourable count before cycle 3, due in two days; the nurse has
    opened the worklist once, so its row is in the cache."""
    today = timezone.localdate()
    patient = builders.patient(oncologist, mrn="C001", family_name="Cachet", oncologist=oncologist)
    line = builders.therapy_line(patient, oncologist, start_date=today - timedelta(days=40))
    cycle = builders.cycle(line, oncologist, number=3, scheduled_date=today + timedelta(days=2))
    builders.draw(patient, oncologist, drawn_at=today - timedelta(days=1), ctc_count=9)
    client.force_login(nurse)
    first = _row(client.get("/"), cycle)
    assert "Acknowledge" in first  # flagged, and nobody has acknowledged it
    return patient, cycle, first


def _row(response, cycle) -> str:
    """The row of `cycle` on the page, its acknowledge form (with the CSRF token) left out."""
    assert response.status_code == 200
    found = re.search(
        rf'<li class="row [^"]*" id="cycle-{cycle.pk}".*?</details>\s*</li>', response.text, re.S
    )
    assert found, f"no row for cycle {cycle.pk}"
    return re.sub(r'<form method="post".*?</form>', "", found.group(0), flags=re.S)


def test_a_second_visit_shows_the_same_row(client, due):
    _patient, cycle, first = due

    assert _row(client.get("/"), cycle) == first


def test_a_new_draw_shows_at_once(client, oncologist, due):
    patient, cycle, first = due
    builders.draw(patient, oncologist, drawn_at=timezone.now() - timedelta(hours=2), ctc_count=123)

    row = _row(client.get("/"), cycle)

    assert row != first
    assert "123 CTC/7.5 mL" in row


def test_an_acknowledgement_shows_at_once(client, nurse, due):
    _patient, cycle, first = due
    services.acknowledge_cycle(cycle=cycle, by=nurse, note="Spoke to the oncologist")

    row = _row(client.get("/"), cycle)

    assert "is-acknowledged" in row and "is-acknowledged" not in first
    assert "Spoke to the oncologist" in row


def test_a_corrected_name_shows_at_once(client, oncologist, due):
    patient, cycle, _first = due
    services.update_patient(
        patient=patient,
        by=oncologist,
        changes={"family_name": "Cachette"},
        version=builders.version_of(patient),
    )

    assert "Cachette, " in _row(client.get("/"), cycle)


def test_a_delayed_cycle_shows_at_once(client, oncologist, due):
    _patient, cycle, first = due
    services.delay_cycle_and_following(
        cycle=cycle,
        by=oncologist,
        new_date=cycle.scheduled_date + timedelta(days=1),
        reason="Low counts",
        version=builders.version_of(cycle),
    )

    row = _row(client.get("/"), cycle)

    assert '<span class="tag">delayed</span>' in row and "delayed</span>" not in first


def test_the_next_day_assesses_the_rows_again(client, oncologist, nurse, monkeypatch):
    """The state of a cycle changes with the date: a cycle whose draw window opens
    tomorrow is "not yet due" today, and due tomorrow."""
    today = timezone.localdate()
    patient = builders.patient(oncologist, mrn="C002", family_name="Demain", oncologist=oncologist)
    line = builders.therapy_line(patient, oncologist, start_date=today - timedelta(days=40))
    cycle = builders.cycle(line, oncologist, number=3, scheduled_date=today + timedelta(days=8))
    client.force_login(nurse)
    assert "not yet due" in _row(client.get("/", {"days": 14}), cycle)

    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: today + timedelta(days=1))

    assert "not yet due" not in _row(client.get("/", {"days": 14}), cycle)


def test_a_change_of_the_cut_offs_assesses_the_rows_again(client, settings, due):
    _patient, cycle, first = due
    assert "unfavourable" in first  # 9 cells: above the breast cut-off of 5

    with override_settings(CTC_CUTOFFS={**settings.CTC_CUTOFFS, "breast": 20}):
        row = _row(client.get("/"), cycle)

    assert "unfavourable" not in row


def test_who_may_acknowledge_is_not_taken_from_the_cache(client, due):
    """A user who may read the worklist but not acknowledge, after a nurse's visit."""
    _patient, cycle, _first = due
    reader = get_user_model().objects.create_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_treatmentcycle"))
    client.force_login(reader)

    row = _row(client.get("/"), cycle)

    assert "Acknowledge<" not in row and "Details<" in row


def test_a_row_just_acknowledged_is_highlighted_though_it_was_cached(client, due):
    _patient, cycle, _first = due

    client.post(f"/cycles/{cycle.pk}/acknowledge/", {"note": "Seen", "next": "/"})
    row = _row(client.get("/"), cycle)

    assert "just-done" in row and '<details class="cell c-more" open>' in row
    assert "just-done" not in _row(client.get("/"), cycle)  # once


def test_a_second_acknowledgement_shows_at_once(client, nurse, oncologist, due):
    """The row shows the latest acknowledgement; a second one changes neither the
    patient's record nor the cycle's rank."""
    _patient, cycle, _first = due
    services.acknowledge_cycle(cycle=cycle, by=nurse, note="Booked a repeat draw")
    assert "Booked a repeat draw" in _row(client.get("/"), cycle)
    services.acknowledge_cycle(cycle=cycle, by=oncologist, note="Reviewed with imaging")

    assert '<span class="ack-note">Reviewed with imaging</span>' in _row(client.get("/"), cycle)


def test_an_account_renamed_shows_its_new_name_at_once(
    client, nurse, due, django_capture_on_commit_callbacks
):
    """A row names who acknowledged its cycle; renaming the account (admin's change form
    saves the whole user) renders the rows naming anyone again."""
    _patient, cycle, _first = due
    services.acknowledge_cycle(cycle=cycle, by=nurse, note="Seen")
    assert "Acknowledged by nina," in _row(client.get("/"), cycle)  # now in the cache
    nurse.first_name, nurse.last_name = "Nina", "Okafor"

    with django_capture_on_commit_callbacks(execute=True):
        nurse.save()

    assert "Acknowledged by Nina Okafor," in _row(client.get("/"), cycle)


def test_a_sign_in_keeps_the_rows(client, nurse, due, django_capture_on_commit_callbacks):
    """Signing in writes the user's `last_login` alone: no name changed, and the rows
    stay in the cache (a clinic's morning of sign-ins would otherwise empty it)."""
    generation = fragments.names_generation()

    with django_capture_on_commit_callbacks(execute=True):
        client.force_login(nurse)

    assert fragments.names_generation() == generation
