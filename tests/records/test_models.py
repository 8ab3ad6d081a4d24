"""Database constraints hold even when the services are bypassed (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from patients.models import CTCDraw, ImagingAssessment, Patient, TherapyLine, TreatmentCycle
from tests import builders

pytestmark = pytest.mark.django_db


def _raises_integrity(make) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


# The rows under test are made here with Model.objects.create, bypassing the services
# on purpose (they would refuse these rows before the database could); the valid
# patient or line they hang from comes from the builders.


def _patient(**overrides) -> Patient:
    fields = {
        "mrn": "M1",
        "given_name": "A",
        "family_name": "B",
        "birth_date": date(1970, 1, 1),
        "sex": "female",
        "cancer_type": "breast",
    }
    return Patient.objects.create(**{**fields, **overrides})


def _draw(patient, user, **overrides) -> CTCDraw:
    fields = {
        "patient": patient,
        "drawn_at": datetime(2026, 1, 1, tzinfo=UTC),
        "status": "resulted",
        "ctc_count": 1,
        "entered_by": user,
    }
    return CTCDraw.objects.create(**{**fields, **overrides})


def test_an_mrn_is_unique():
    _patient()
    _raises_integrity(lambda: _patient(given_name="Other"))


@pytest.mark.parametrize(
    "field, value",
    [("sex", "robot"), ("cancer_type", "lung"), ("mrn", "")],
)
def test_a_patient_with_an_unknown_choice_or_blank_mrn_is_refused(field, value):
    _raises_integrity(lambda: _patient(**{field: value}))


def test_a_metastatic_diagnosis_cannot_precede_birth():
    _raises_integrity(lambda: _patient(diagnosed_on=date(1969, 12, 31)))


def test_a_line_number_is_unique_per_patient_but_not_across_patients(oncologist):
    first, second = builders.patient(oncologist), builders.patient(oncologist)
    fields = {"regimen": "X", "start_date": date(2026, 1, 1), "cycle_length_days": 21}
    TherapyLine.objects.create(patient=first, line_number=1, **fields)
    TherapyLine.objects.create(patient=second, line_number=1, **fields)

    _raises_integrity(lambda: TherapyLine.objects.create(patient=first, line_number=1, **fields))


@pytest.mark.parametrize(
    "overrides",
    [
        {"end_date": date(2025, 12, 31)},
        {"cycle_length_days": 0},
        {"cycle_length_days": 366},
        {"line_number": 0},
    ],
)
def test_a_therapy_line_keeps_its_dates_and_lengths_sane(oncologist, overrides):
    patient = builders.patient(oncologist)
    fields = {
        "patient": patient,
        "line_number": 1,
        "regimen": "X",
        "start_date": date(2026, 1, 1),
        "cycle_length_days": 21,
    }
    _raises_integrity(lambda: TherapyLine.objects.create(**{**fields, **overrides}))


def _cycle(line, **overrides) -> TreatmentCycle:
    day1 = overrides.get("scheduled_date", date(2026, 1, 22))
    fields = {"therapy_line": line, "number": 1, "scheduled_date": day1}
    return TreatmentCycle.objects.create(**{**fields, "first_scheduled_date": day1, **overrides})


def test_a_cycle_number_is_unique_per_line_and_a_delay_needs_a_reason(oncologist):
    line = builders.therapy_line(
        builders.patient(oncologist), oncologist, start_date=date(2026, 1, 1)
    )
    _cycle(line, number=1, scheduled_date=date(2026, 1, 1))
    _cycle(line, number=2)  # the rows below differ from this valid one in one field each

    _raises_integrity(lambda: _cycle(line, number=1))
    _raises_integrity(lambda: _cycle(line, number=3, status="delayed"))
    _raises_integrity(lambda: _cycle(line, number=0))


def test_a_cycle_always_has_its_first_planned_day_1(oncologist):
    line = builders.therapy_line(builders.patient(oncologist), oncologist)

    _raises_integrity(lambda: _cycle(line, first_scheduled_date=None))


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "resulted", "ctc_count": None},
        {"status": "rejected", "ctc_count": 0},
        {"status": "unknown", "ctc_count": None},
        {"ctc_count": -1},
        {"blood_volume_ml": Decimal("0")},
        {"blood_volume_ml": Decimal("50.01")},
        {"count_qualifier": "<"},
        {"count_qualifier": ">", "status": "rejected", "ctc_count": None},
        {"count_qualifier": ">", "status": "pending", "ctc_count": None},
    ],
)
def test_a_draw_keeps_count_status_and_volume_consistent(oncologist, overrides):
    patient = builders.patient(oncologist)
    _draw(patient, oncologist)  # the rows refused differ from this valid one as overridden
    _raises_integrity(lambda: _draw(patient, oncologist, **overrides))


def test_a_resulted_count_may_be_a_lower_bound(oncologist):
    draw = _draw(builders.patient(oncologist), oncologist, ctc_count=1000, count_qualifier=">")

    assert CTCDraw.objects.get(pk=draw.pk).count_qualifier == ">"


@pytest.mark.parametrize("volume", ["0.5", "12", "50"])
def test_the_database_keeps_volumes_stored_before_version_2(oncologist, volume):
    # Version 1 accepted 0.01 to 50 mL. Entry is held to 1.0-10.0 mL by the services
    # (tests/records/test_services.py); the database keeps the rows already stored.
    draw = _draw(builders.patient(oncologist), oncologist, blood_volume_ml=Decimal(volume))

    assert CTCDraw.objects.get(pk=draw.pk).blood_volume_ml == Decimal(volume)


def test_an_accession_is_unique_when_given_and_may_be_left_empty(oncologist):
    patient = builders.patient(oncologist)
    _draw(patient, oncologist, accession="")
    _draw(patient, oncologist, accession="")
    _draw(patient, oncologist, accession="A-1")

    _raises_integrity(lambda: _draw(patient, oncologist, accession="A-1"))


def test_imaging_modality_and_response_are_checked(oncologist):
    patient = builders.patient(oncologist)
    fields = {"patient": patient, "performed_on": date(2026, 1, 1), "entered_by": oncologist}

    _raises_integrity(
        lambda: ImagingAssessment.objects.create(modality="xray", response="PD", **fields)
    )
    _raises_integrity(
        lambda: ImagingAssessment.objects.create(modality="ct", response="XX", **fields)
    )


def test_clinical_rows_cannot_be_cascaded_away(oncologist):
    patient = builders.patient(oncologist)
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 1, tzinfo=UTC))

    with pytest.raises(ProtectedError), transaction.atomic():
        patient.delete()
    assert CTCDraw.objects.filter(patient=patient).count() == 1
