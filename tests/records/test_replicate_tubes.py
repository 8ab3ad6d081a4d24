"""Loading the clinic's tubes for the replicate-variation estimate (assessment/replicates.py).

The values come from one query, whatever the number of patients or tubes; tubes
entered in error are left out, and only the draws given (a user's, through
`patients.access`) are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from patients import access, services
from patients.assessment.replicates import TUBE_FIELDS, replicate_estimate, tubes
from patients.models import CTCDraw, Patient
from patients.replicates import Tube
from tests import builders

pytestmark = pytest.mark.django_db

FIRST = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def sample(patient, by, at: datetime, counts: Sequence[int], **fields) -> list[CTCDraw]:
    """Tubes of one venepuncture: a resulted tube per count, all drawn at `at`."""
    return [builders.draw(patient, by, drawn_at=at, ctc_count=c, **fields) for c in counts]


def duplicates(patient, by, pairs: Sequence[tuple[int, int]], *, first: datetime = FIRST):
    """A duplicate sample per pair, a week apart from `first`."""
    for k, (a, b) in enumerate(pairs):
        sample(patient, by, first + timedelta(days=7 * k), [a, b])


def censor(draw: CTCDraw) -> None:
    # A lower bound (">1000"), set on the row directly: the loader reads the field.
    CTCDraw.objects.filter(pk=draw.pk).update(count_qualifier=">")


def at(days: int) -> datetime:
    return FIRST + timedelta(days=days)


@pytest.fixture
def two_patients(oncologist, patient) -> tuple[Patient, Patient]:
    """Every case of the spec's definition for the first patient, one pair for the second."""
    other = builders.patient(oncologist, mrn="MRN0002", family_name="Other")
    sample(patient, oncologist, at(0), [4, 6])  # a pair
    sample(patient, oncologist, at(7), [10, 20])  # a pair, with a rejected tube beside it
    builders.draw(patient, oncologist, drawn_at=at(7), status="rejected")
    *_, wrong = sample(patient, oncologist, at(14), [3, 5, 7])  # a pair once 7 is left out
    services.mark_draw_entered_in_error(
        draw=wrong, by=oncologist, reason="Other patient's tube", version=builders.version_of(wrong)
    )
    sample(patient, oncologist, at(21), [4])  # unequal volumes: no pair
    builders.draw(patient, oncologist, drawn_at=at(21), ctc_count=6, blood_volume_ml=Decimal("10"))
    sample(patient, oncologist, at(28), [4, 6, 5])  # three tubes: no pair
    bounded, _ = sample(patient, oncologist, at(35), [1000, 900])  # a censored tube: no pair
    censor(bounded)
    sample(other, oncologist, at(0), [9, 1])  # a pair of the other patient
    return patient, other


def test_the_fields_read_are_the_draws_own():
    assert set(TUBE_FIELDS) <= {field.attname for field in CTCDraw._meta.concrete_fields}


def test_it_reads_resulted_tubes_with_their_qualifier_and_not_those_entered_in_error(
    two_patients,
):
    patient, _ = two_patients

    loaded = [t for t in tubes(CTCDraw.objects.all()) if t.patient_id == patient.pk]

    assert Tube(patient.pk, at(35), Decimal("7.50"), "resulted", 1000, ">") in loaded
    assert Tube(patient.pk, at(0), Decimal("7.50"), "resulted", 4, "") in loaded
    assert {t.status for t in loaded} == {"resulted"}
    assert 7 not in {t.ctc_count for t in loaded if t.drawn_at == at(14)}
    assert len(loaded) == 13


def test_the_estimate_pairs_the_samples_the_spec_calls_duplicates(two_patients):
    # (4, 6), (10, 20), (3, 5) and the other patient's (1, 9): four pairs, too few for a cv.
    estimate = replicate_estimate(CTCDraw.objects.all())

    assert (estimate.pairs, estimate.cv, estimate.too_few) == (4, None, True)


def test_it_reads_only_the_draws_the_gate_lets_a_user_see(two_patients, nurse, monkeypatch):
    patient, other = two_patients
    monkeypatch.setattr(access, "_scope", lambda user: Patient.objects.filter(pk=other.pk))

    loaded = tubes(access.draws(nurse))

    assert {t.patient_id for t in loaded} == {other.pk}
    assert replicate_estimate(access.draws(nurse)).pairs == 1


def test_it_runs_one_query_for_2_patients_and_for_20(oncologist, count_queries):
    def build(n: int) -> None:
        for _ in range(n):
            duplicates(builders.patient(oncologist), oncologist, [(4, 6), (10, 12), (0, 1)])

    build(2)
    two = count_queries(lambda: replicate_estimate(CTCDraw.objects.all()))
    build(18)

    twenty = count_queries(lambda: replicate_estimate(CTCDraw.objects.all()))

    assert two == twenty == 1
    assert replicate_estimate(CTCDraw.objects.all()).pairs == 60
