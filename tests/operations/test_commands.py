"""Management commands: adduser and seed_demo."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from patients.models import CTCDraw, ImagingAssessment, Patient, TherapyLine, TreatmentCycle

pytestmark = pytest.mark.django_db


def _seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", allow_without_debug=True, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_adduser_creates_a_nurse_with_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("CTCTRACK_PASSWORD", "a-long-enough-secret-9")

    call_command("adduser", "newnurse", role="nurse", stdout=StringIO())

    user = get_user_model().objects.get(username="newnurse")
    assert user.check_password("a-long-enough-secret-9")
    assert list(user.groups.values_list("name", flat=True)) == ["nurse"]
    assert user.has_perm("patients.view_ctcdraw")
    assert not user.has_perm("patients.add_ctcdraw")
    assert not user.is_staff


def test_adduser_makes_admins_staff(monkeypatch):
    monkeypatch.setenv("CTCTRACK_PASSWORD", "a-long-enough-secret-9")

    call_command("adduser", "boss", role="admin", stdout=StringIO())

    assert get_user_model().objects.get(username="boss").is_staff


def test_adduser_refuses_a_weak_password_and_creates_nobody(monkeypatch):
    monkeypatch.setenv("CTCTRACK_PASSWORD", "password")

    with pytest.raises(CommandError, match="Password refused"):
        call_command("adduser", "weak", role="oncologist", stdout=StringIO())

    assert not get_user_model().objects.filter(username="weak").exists()


def test_adduser_refuses_an_existing_name(monkeypatch, nurse):
    monkeypatch.setenv("CTCTRACK_PASSWORD", "a-long-enough-secret-9")

    with pytest.raises(CommandError, match="already exists"):
        call_command("adduser", "nina", role="oncologist", stdout=StringIO())


def test_seed_demo_creates_a_realistic_cohort_and_the_demo_users():
    out = _seed()

    patients = Patient.objects.all()
    assert patients.count() >= 30
    assert set(patients.values_list("cancer_type", flat=True)) == {
        "breast",
        "prostate",
        "colorectal",
    }
    assert set(TherapyLine.objects.values_list("cycle_length_days", flat=True)) == {14, 21, 28}
    statuses = Counter(CTCDraw.objects.values_list("status", flat=True))
    assert statuses["rejected"] > 0 and statuses["failed"] > 0
    assert CTCDraw.objects.filter(ctc_count__gte=100).exists()
    assert ImagingAssessment.objects.count() >= patients.count()
    assert "oncologist / ctctrack-demo" in out
    oncologist = get_user_model().objects.get(username="oncologist")
    assert oncologist.check_password("ctctrack-demo")
    assert oncologist.has_perm("patients.add_ctcdraw")


def test_seed_demo_leaves_upcoming_cycles_for_the_coming_week():
    _seed()
    today = timezone.localdate()

    upcoming = TreatmentCycle.objects.upcoming().filter(
        scheduled_date__gte=today,
        scheduled_date__lt=today + timedelta(days=7),
    )

    assert upcoming.count() >= 10


def test_seed_demo_puts_most_draws_three_to_seven_days_before_a_cycle():
    _seed()
    day1s = set(TreatmentCycle.objects.values_list("scheduled_date", "therapy_line__patient"))

    draws = list(CTCDraw.objects.values_list("drawn_at", "patient"))
    before_a_cycle = [
        (drawn_at, patient)
        for drawn_at, patient in draws
        if any(
            (timezone.localdate(drawn_at) + timedelta(days=d), patient) in day1s
            for d in range(3, 8)
        )
    ]

    assert len(before_a_cycle) / len(draws) > 0.9


def test_seed_demo_is_idempotent():
    _seed()
    counts = (Patient.objects.count(), CTCDraw.objects.count())

    out = _seed()

    assert (Patient.objects.count(), CTCDraw.objects.count()) == counts
    assert "already present" in out


def test_seed_demo_refuses_a_database_with_real_patients(patient):
    with pytest.raises(CommandError, match="not demo patients"):
        _seed()

    assert Patient.objects.count() == 1


def test_seed_demo_refuses_to_run_without_debug_unless_told(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo", stdout=StringIO())

    assert not Patient.objects.exists()
