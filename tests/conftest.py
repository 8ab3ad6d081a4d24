"""The cast: one user per role, a patient with a therapy line and a cycle."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from patients import services
from patients.models import CTCDraw, Patient, TherapyLine, TreatmentCycle
from patients.roles import NURSE, ONCOLOGIST


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user_with_role(django_user_model, username: str, role: str | None):
    user = django_user_model.objects.create_user(username, password="correct-horse-42")
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def oncologist(db, django_user_model):
    return _user_with_role(django_user_model, "olivia", ONCOLOGIST)


@pytest.fixture
def nurse(db, django_user_model):
    return _user_with_role(django_user_model, "nina", NURSE)


@pytest.fixture
def outsider(db, django_user_model):
    """Logged in, but holds no role."""
    return _user_with_role(django_user_model, "oscar", None)


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("ada", password="correct-horse-42")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def patient(oncologist) -> Patient:
    return services.register_patient(
        by=oncologist,
        mrn="MRN0001",
        given_name="Jane",
        family_name="Doe",
        birth_date=date(1960, 5, 17),
        sex="female",
        cancer_type="breast",
    )


@pytest.fixture
def line(patient, oncologist) -> TherapyLine:
    return services.add_therapy_line(
        patient=patient,
        by=oncologist,
        regimen="Paclitaxel",
        start_date=date(2026, 1, 5),
        cycle_length_days=21,
    )


@pytest.fixture
def cycle(line, oncologist) -> TreatmentCycle:
    return services.plan_cycle(line=line, by=oncologist, number=1, scheduled_date=date(2026, 1, 5))


@pytest.fixture
def draw(patient, oncologist) -> CTCDraw:
    return services.record_draw(
        patient=patient,
        by=oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=3,
        accession="ACC-1",
    )


@pytest.fixture
def count_queries():
    """How many queries a call runs: compare two data sizes to catch N+1 regressions."""

    def count(call) -> int:
        with CaptureQueriesContext(connection) as captured:
            call()
        return len(captured.captured_queries)

    return count
