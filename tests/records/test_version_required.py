"""Every edit of a versioned record must say which version it was based on.

Without one, an edit would silently overwrite a change saved since the editor
read the record; the services refuse it, and nothing is saved.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from patients import services
from patients.messages import VERSION_REQUIRED

pytestmark = pytest.mark.django_db


def test_a_patient_edit_without_a_version_is_refused(patient, oncologist):
    with pytest.raises(services.VersionRequired, match=re.escape(VERSION_REQUIRED)):
        services.update_patient(patient=patient, by=oncologist, changes={"given_name": "Joan"})

    patient.refresh_from_db()
    assert (patient.given_name, patient.version) == ("Jane", 1)


def test_a_cycle_edit_or_delay_without_a_version_is_refused(cycle, oncologist):
    with pytest.raises(services.VersionRequired):
        services.update_cycle(cycle=cycle, by=oncologist, changes={"number": 2})
    with pytest.raises(services.VersionRequired):
        services.delay_cycle_and_following(
            cycle=cycle, by=oncologist, new_date=date(2026, 1, 12), reason="Neutropenia"
        )

    cycle.refresh_from_db()
    assert (cycle.number, cycle.scheduled_date, cycle.version) == (1, date(2026, 1, 5), 1)


def test_a_draw_correction_without_a_version_is_refused(draw, oncologist):
    with pytest.raises(services.VersionRequired):
        services.update_draw(draw=draw, by=oncologist, changes={"ctc_count": 30}, reason="Typo")

    draw.refresh_from_db()
    assert (draw.ctc_count, draw.version) == (3, 1)


def test_entered_in_error_without_a_version_is_refused(draw, oncologist):
    with pytest.raises(services.VersionRequired):
        services.mark_draw_entered_in_error(draw=draw, by=oncologist, reason="Duplicate")

    draw.refresh_from_db()
    assert (draw.entered_in_error, draw.version) == (False, 1)


def test_an_edit_with_the_current_version_is_saved(patient, oncologist):
    services.update_patient(
        patient=patient, by=oncologist, changes={"given_name": "Joan"}, version=1
    )

    patient.refresh_from_db()
    assert (patient.given_name, patient.version) == ("Joan", 2)
