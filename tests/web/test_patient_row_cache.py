"""The patient list keeps each row's markup in the cache (`patients/web/fragments.py`): a
change of what a row shows must show on the very next request, as must the next day
(the next cycle is the next from today) and a change of the cut-offs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from patients import services
from patients.wording import date_text
from tests import builders


@pytest.fixture
def listed(client, nurse, oncologist):
    """A patient with an unfavourable count and cycle 2 planned for today; the nurse has
    opened the patient list once, so the patient's row is in the cache."""
    today = timezone.localdate()
    patient = builders.patient(oncologist, mrn="L001", family_name="Liste", oncologist=oncologist)
    line = builders.therapy_line(patient, oncologist, start_date=today - timedelta(days=21))
    builders.cycle(line, oncologist, number=2, scheduled_date=today)
    builders.draw(patient, oncologist, drawn_at=today - timedelta(days=1), ctc_count=9)
    client.force_login(nurse)
    first = _row(client.get("/patients/"), patient)
    assert "9 CTC/7.5 mL" in first and "category-unfavourable" in first and "C2 on" in first
    return patient, line, first


def _row(response, patient) -> str:
    """The patient's row on the list."""
    assert response.status_code == 200
    found = re.search(
        rf'<tr[^>]*>\s*<td><a href="/patients/{patient.pk}/">.*?</tr>', response.text, re.S
    )
    assert found, f"no row for patient {patient.pk}"
    return found.group(0)


def test_a_second_visit_takes_the_row_from_the_cache(client, listed):
    patient, _line, first = listed

    warm = _queries(client)
    cache.clear()
    cold = _queries(client)

    assert _row(client.get("/patients/"), patient) == first
    # Rendered afresh, a row reads the patient's draws and acknowledgements; from the
    # cache, neither (the header's counts aside).
    for table in ("patients_ctcdraw", "patients_acknowledgement"):
        assert _reads(cold, table) and not _reads(warm, table), table


def _queries(client) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/patients/").status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def _reads(queries: list[str], table: str) -> list[str]:
    """The queries reading rows of `table`, not counting them."""
    return [q for q in queries if f'FROM "{table}"' in q and "COUNT(" not in q]


def test_a_new_draw_shows_at_once(client, oncologist, listed):
    patient, _line, first = listed
    builders.draw(patient, oncologist, drawn_at=timezone.now() - timedelta(hours=2), ctc_count=123)

    row = _row(client.get("/patients/"), patient)

    assert "123 CTC/7.5 mL" in row and "123 CTC" not in first


def test_a_corrected_name_and_a_deactivation_show_at_once(client, oncologist, listed):
    patient, _line, _first = listed
    services.update_patient(
        patient=patient,
        by=oncologist,
        changes={"family_name": "Listing", "active": False},
        version=builders.version_of(patient),
    )

    row = _row(client.get("/patients/"), patient)

    assert "Listing, " in row and '<span class="tag">inactive</span>' in row


def test_a_delayed_cycle_shows_at_once(client, oncologist, listed):
    _patient, line, first = listed
    cycle = line.cycles.get(number=2)
    later = cycle.scheduled_date + timedelta(days=7)
    services.delay_cycle_and_following(
        cycle=cycle,
        by=oncologist,
        new_date=later,
        reason="Low counts",
        version=builders.version_of(cycle),
    )

    row = _row(client.get("/patients/"), line.patient)

    assert f"C2 on {date_text(later)}" in row and f"C2 on {date_text(later)}" not in first


def test_the_next_day_shows_the_next_cycle_from_then(client, listed, monkeypatch):
    patient, _line, first = listed
    today = timezone.localdate()

    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: today + timedelta(days=1))

    row = _row(client.get("/patients/"), patient)
    assert "C2 on" in first and "none planned" in row


def test_a_change_of_the_cut_offs_shows_at_once(client, settings, listed):
    patient, _line, _first = listed

    with override_settings(CTC_CUTOFFS={**settings.CTC_CUTOFFS, "breast": 20}):
        row = _row(client.get("/patients/"), patient)

    assert "category-favourable" in row


def test_the_oncologist_renamed_shows_at_once(
    client, oncologist, listed, django_capture_on_commit_callbacks
):
    patient, _line, first = listed
    oncologist.first_name, oncologist.last_name = "Olga", "Renamed"

    with django_capture_on_commit_callbacks(execute=True):
        oncologist.save()

    row = _row(client.get("/patients/"), patient)
    assert "Olga Renamed" in row and "Olga Renamed" not in first
