"""`manage.py generate_cohort`: the benchmark's synthetic cohort."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from patients.assessment import series_for_many
from patients.management.commands.generate_cohort import plan_patient
from patients.models import CTCDraw, Patient, TreatmentCycle

pytestmark = pytest.mark.django_db


def _generate(patients: int, **options) -> str:
    out = StringIO()
    call_command(
        "generate_cohort",
        patients=patients,
        allow_without_debug=True,
        stdout=out,
        stderr=StringIO(),
        **options,
    )
    return out.getvalue()


def test_it_writes_patients_with_lines_cycles_and_draws_the_rules_can_assess():
    _generate(40)

    patients = list(Patient.objects.all())
    assert len(patients) == 40
    assert all(p.mrn.startswith("SYN-") for p in patients)
    assert TreatmentCycle.objects.count() > 40 * 5
    assert CTCDraw.objects.count() > 40 * 8
    series = series_for_many(patients)
    assert sum(len(s.assessments) for s in series.values()) > 40 * 8


def test_it_puts_a_realistic_share_of_next_cycles_in_the_coming_week():
    _generate(300)
    today = timezone.localdate()

    due = TreatmentCycle.objects.upcoming().filter(
        scheduled_date__gte=today,
        scheduled_date__lt=today + timedelta(days=7),
    )

    assert 0.2 < due.count() / 300 < 0.5


def test_it_tops_the_cohort_up_with_the_same_patients():
    _generate(5)
    first = list(Patient.objects.order_by("mrn").values_list("mrn", "family_name", "birth_date"))

    _generate(12)

    again = Patient.objects.order_by("mrn").values_list("mrn", "family_name", "birth_date")
    assert Patient.objects.count() == 12
    assert list(again[:5]) == first


def test_a_patient_is_planned_the_same_way_every_time():
    today = timezone.localdate()

    assert plan_patient(7, today) == plan_patient(7, today)
    assert plan_patient(7, today) != plan_patient(8, today)


def test_it_refuses_a_database_with_patients_that_are_not_synthetic(patient):
    with pytest.raises(CommandError, match="not synthetic"):
        _generate(10)

    assert Patient.objects.count() == 1


def test_it_refuses_to_run_with_debug_off_unless_told(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("generate_cohort", patients=3, stdout=StringIO(), stderr=StringIO())

    assert not Patient.objects.exists()
