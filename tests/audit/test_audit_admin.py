"""Django admin: the access log is read-only there, and reading the record there is logged."""

from __future__ import annotations

import pytest
from pytest_django.asserts import assertContains, assertNotContains

from patients import audit
from patients.models import AccessEvent

pytestmark = pytest.mark.django_db

LOG = "/admin/patients/accessevent/"


def test_staff_read_the_access_log_in_admin(client, admin_user, nurse):
    event = audit.record(None, "view", user=nurse, target="patient page")
    client.force_login(admin_user)

    listing = client.get(LOG)
    detail = client.get(f"{LOG}{event.pk}/change/")

    assertContains(listing, "patient page")
    assertContains(detail, event.hash)
    assertNotContains(detail, 'name="_save"')  # nothing to save
    assertNotContains(listing, 'name="action"')  # no bulk actions, no "delete selected"


def test_admin_can_neither_add_change_nor_delete_an_event(client, admin_user, nurse):
    event = audit.record(None, "view", user=nurse, target="patient page")
    client.force_login(admin_user)

    add = client.post(f"{LOG}add/", {"action": "view", "target": "made up"})
    change = client.post(f"{LOG}{event.pk}/change/", {"target": "edited"})
    delete = client.post(f"{LOG}{event.pk}/delete/", {"post": "yes"})

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert AccessEvent.objects.get(pk=event.pk).target == "patient page"
    assert not AccessEvent.objects.filter(target="made up").exists()


def test_reading_a_patient_in_admin_is_recorded(client, admin_user, patient):
    client.force_login(admin_user)

    client.get(f"/admin/patients/patient/{patient.pk}/change/")
    client.get(f"/admin/patients/patient/{patient.pk}/history/")

    reads = AccessEvent.objects.filter(action="view").order_by("id")
    assert [(e.user, e.patient, e.target) for e in reads] == [
        (admin_user, patient, f"admin patient #{patient.pk}"),
        (admin_user, patient, f"admin patient #{patient.pk} history"),
    ]


def test_reading_a_draw_in_admin_is_recorded_against_its_patient(client, admin_user, draw):
    client.force_login(admin_user)

    client.get(f"/admin/patients/ctcdraw/{draw.pk}/change/")

    assert AccessEvent.objects.get(action="view").patient == draw.patient
