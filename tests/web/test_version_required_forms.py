"""A form post that edits a record without the version it was based on.

The edit pages carry the version in a hidden field; a post without it (a
hand-made request, an old page) is shown the form again with the message, and
nothing is saved.
"""

from __future__ import annotations

from datetime import date

import pytest
from pytest_django.asserts import assertContains

from patients.messages import VERSION_REQUIRED

pytestmark = pytest.mark.django_db


def _refused(r) -> None:
    assert r.status_code == 400
    assertContains(r, VERSION_REQUIRED, status_code=400)


def test_a_patient_edit_without_a_version_is_refused(client, oncologist, patient):
    client.force_login(oncologist)
    edit = {
        "mrn": "MRN0001",
        "given_name": "Joan",
        "family_name": "Doe",
        "birth_date": "1960-05-17",
        "sex": "female",
        "cancer_type": "breast",
        "active": "on",
    }

    _refused(client.post(f"/patients/{patient.pk}/edit/", edit))

    patient.refresh_from_db()
    assert (patient.given_name, patient.version) == ("Jane", 1)


@pytest.mark.parametrize("move_later", [False, True])
def test_a_cycle_edit_without_a_version_is_refused(client, oncologist, cycle, move_later):
    client.force_login(oncologist)
    delay = {
        "number": 1,
        "scheduled_date": "2026-01-12",
        "status": "delayed",
        "status_reason": "Neutropenia",
        "move_later_cycles": "on" if move_later else "",
    }

    _refused(client.post(f"/cycles/{cycle.pk}/edit/", delay))

    cycle.refresh_from_db()
    assert (cycle.scheduled_date, cycle.version) == (date(2026, 1, 5), 1)


def test_a_draw_edit_without_a_version_is_refused(client, oncologist, draw):
    client.force_login(oncologist)
    edit = {
        "drawn_at": "2026-01-02T09:30",
        "blood_volume_ml": "7.5",
        "status": "resulted",
        "ctc_count": "30",
        "accession": "ACC-1",
        "reason": "Transcription error",
    }

    _refused(client.post(f"/draws/{draw.pk}/edit/", edit))

    draw.refresh_from_db()
    assert (draw.ctc_count, draw.version) == (3, 1)


def test_entered_in_error_without_a_version_is_refused(client, oncologist, draw):
    client.force_login(oncologist)

    _refused(client.post(f"/draws/{draw.pk}/entered-in-error/", {"error-reason": "Duplicate"}))

    draw.refresh_from_db()
    assert (draw.entered_in_error, draw.version) == (False, 1)
