"""Entering a draw under version 2 of the rules (spec section 2), through the services.

A count may be a lower bound (`count_qualifier` ">", ">1000"), which must be at
least the patient's cut-off per 7.5 mL on the tube's own volume; the blood volume
must be from 1.0 to 10.0 mL. Every entry point (page, API, CSV, HL7) reaches these
checks; their own tests show that they do. Rows stored before version 2 keep their
volume and can still be corrected or marked in error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from patients import services
from patients.models import VOLUME_OUT_OF_RANGE, CTCDraw
from tests import builders

pytestmark = pytest.mark.django_db

DRAWN_AT = datetime(2026, 1, 2, 9, tzinfo=UTC)
BELOW_CUTOFF = "A lower bound below the cut-off cannot be classified"


def _errors(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.message_dict


def _record(patient, by, **fields) -> CTCDraw:
    return services.record_draw(patient=patient, by=by, drawn_at=DRAWN_AT, **fields)


# --- the blood volume ------------------------------------------------------------------


@pytest.mark.parametrize("volume", ["1.0", "1", "7.5", "10.0", "10"])
def test_a_volume_from_1_to_10_ml_is_accepted(oncologist, patient, volume):
    draw = _record(patient, oncologist, ctc_count=2, blood_volume_ml=Decimal(volume))

    assert CTCDraw.objects.get(pk=draw.pk).blood_volume_ml == Decimal(volume)


@pytest.mark.parametrize("volume", ["0.99", "0.9", "0.5", "10.01", "10.1", "12", "15"])
def test_a_volume_outside_1_to_10_ml_is_refused_naming_the_field(oncologist, patient, volume):
    errors = _errors(
        lambda: _record(patient, oncologist, ctc_count=2, blood_volume_ml=Decimal(volume))
    )

    assert errors == {"blood_volume_ml": [VOLUME_OUT_OF_RANGE]}
    assert "1.0 to 10.0 mL" in VOLUME_OUT_OF_RANGE
    assert not CTCDraw.objects.exists()


def test_a_correction_cannot_enter_a_volume_outside_the_range(oncologist, draw):
    errors = _errors(
        lambda: services.update_draw(
            draw=draw,
            by=oncologist,
            changes={"blood_volume_ml": Decimal("12")},
            version=builders.version_of(draw),
            reason="Volume",
        )
    )

    assert errors == {"blood_volume_ml": [VOLUME_OUT_OF_RANGE]}
    assert CTCDraw.objects.get(pk=draw.pk).blood_volume_ml == Decimal("7.5")


def _stored_before_version_2(patient, by, volume: str) -> CTCDraw:
    """A draw as version 1 stored it, with a volume entry now refuses.

    Made with `CTCDraw.objects.create`, bypassing the services on purpose: no entry
    point can make such a row any more, but the database keeps those it has.
    """
    return CTCDraw.objects.create(
        patient=patient,
        drawn_at=DRAWN_AT,
        status="resulted",
        ctc_count=1,
        blood_volume_ml=Decimal(volume),
        entered_by=by,
    )


@pytest.mark.parametrize("volume", ["0.5", "15"])
def test_a_row_stored_before_version_2_can_still_be_corrected(oncologist, patient, volume):
    old = _stored_before_version_2(patient, oncologist, volume)

    services.update_draw(
        draw=old,
        by=oncologist,
        changes={"comment": "Reduced volume processed", "blood_volume_ml": Decimal(volume)},
        version=old.version,
        reason="Comment added",
    )

    old.refresh_from_db()
    assert (old.comment, old.blood_volume_ml) == ("Reduced volume processed", Decimal(volume))


def test_a_row_stored_before_version_2_can_be_marked_in_error(oncologist, patient):
    old = _stored_before_version_2(patient, oncologist, "0.5")

    services.mark_draw_entered_in_error(
        draw=old, by=oncologist, reason="Wrong patient", version=old.version
    )

    assert CTCDraw.objects.get(pk=old.pk).entered_in_error


def test_a_row_stored_before_version_2_gets_a_volume_in_range_when_its_volume_changes(
    oncologist, patient
):
    old = _stored_before_version_2(patient, oncologist, "0.5")

    def correct(volume: str) -> None:
        services.update_draw(
            draw=old,
            by=oncologist,
            changes={"blood_volume_ml": Decimal(volume)},
            version=builders.version_of(old),
            reason="Volume checked",
        )

    assert _errors(lambda: correct("0.6")) == {"blood_volume_ml": [VOLUME_OUT_OF_RANGE]}
    correct("1.5")
    assert CTCDraw.objects.get(pk=old.pk).blood_volume_ml == Decimal("1.5")


# --- a count that is a lower bound --------------------------------------------------------


def test_a_lower_bound_is_stored_with_its_qualifier_and_kept_in_the_history(oncologist, patient):
    draw = _record(patient, oncologist, ctc_count=1000, count_qualifier=">")

    stored = CTCDraw.objects.get(pk=draw.pk)
    assert (stored.count_qualifier, stored.ctc_count) == (">", 1000)
    assert draw.history.get().count_qualifier == ">"
    assert str(stored).startswith("> 1000 CTC in 7.50 mL")


def test_an_exact_count_is_the_default(draw):
    assert CTCDraw.objects.get(pk=draw.pk).count_qualifier == ""


def test_a_correction_can_make_a_count_a_lower_bound_and_the_history_keeps_the_exact_one(
    oncologist, patient
):
    draw = _record(patient, oncologist, ctc_count=1000)

    services.update_draw(
        draw=draw,
        by=oncologist,
        changes={"count_qualifier": ">"},
        version=builders.version_of(draw),
        reason="Lab reported >1000",
    )

    newest, oldest = draw.history.all()[:2]
    assert (oldest.count_qualifier, newest.count_qualifier) == ("", ">")


@pytest.mark.parametrize(
    ("cancer_type", "bound", "volume"),
    [
        ("breast", 5, "7.5"),  # exactly the cut-off: unfavourable, inclusive
        ("breast", 4, "6"),  # 4 in 6 mL is 5 per 7.5 mL
        ("breast", 7, "10"),  # 5.25 per 7.5 mL
        ("prostate", 5, "7.5"),
        ("colorectal", 3, "7.5"),
        ("colorectal", 2, "5"),  # 3 per 7.5 mL
        ("breast", 1000, "7.5"),
    ],
)
def test_a_lower_bound_at_or_above_the_cut_off_is_accepted(oncologist, cancer_type, bound, volume):
    patient = builders.patient(oncologist, cancer_type=cancer_type)

    draw = _record(
        patient, oncologist, ctc_count=bound, count_qualifier=">", blood_volume_ml=Decimal(volume)
    )

    assert CTCDraw.objects.get(pk=draw.pk).count_qualifier == ">"


@pytest.mark.parametrize(
    ("cancer_type", "bound", "volume"),
    [
        ("breast", 4, "7.5"),
        ("breast", 4, "6.01"),  # 4.99 per 7.5 mL: the tube's own volume counts
        ("breast", 6, "10"),  # 4.5 per 7.5 mL, though 6 cells are more than 5
        ("prostate", 4, "7.5"),
        ("colorectal", 2, "7.5"),
        ("breast", 0, "7.5"),
    ],
)
def test_a_lower_bound_below_the_cut_off_is_refused_on_the_count(
    oncologist, cancer_type, bound, volume
):
    patient = builders.patient(oncologist, cancer_type=cancer_type)

    errors = _errors(
        lambda: _record(
            patient,
            oncologist,
            ctc_count=bound,
            count_qualifier=">",
            blood_volume_ml=Decimal(volume),
        )
    )

    assert list(errors) == ["ctc_count"]
    assert errors["ctc_count"][0].startswith(BELOW_CUTOFF)
    assert not CTCDraw.objects.exists()


def test_the_refusal_says_the_rate_the_cut_off_and_the_least_bound(oncologist, patient):
    errors = _errors(
        lambda: _record(
            patient, oncologist, ctc_count=6, count_qualifier=">", blood_volume_ml=Decimal("10")
        )
    )

    assert errors["ctc_count"] == [
        f"{BELOW_CUTOFF}: more than 6 cells in 10 mL is more than 4.5 CTC per 7.5 mL, below "
        "the breast cut-off of 5. Enter the exact count, or a bound of at least 7 cells."
    ]


def test_a_lower_bound_for_a_cancer_type_without_a_cut_off_is_kept(oncologist, patient, settings):
    settings.CTC_CUTOFFS = {k: v for k, v in settings.CTC_CUTOFFS.items() if k != "breast"}

    draw = _record(patient, oncologist, ctc_count=1, count_qualifier=">")

    assert CTCDraw.objects.get(pk=draw.pk).count_qualifier == ">"


def test_a_correction_to_a_bound_below_the_cut_off_is_refused(oncologist, patient):
    draw = _record(patient, oncologist, ctc_count=1000, count_qualifier=">")

    errors = _errors(
        lambda: services.update_draw(
            draw=draw,
            by=oncologist,
            changes={"ctc_count": 3},
            version=builders.version_of(draw),
            reason="Typo",
        )
    )

    assert errors["ctc_count"][0].startswith(BELOW_CUTOFF)
    assert CTCDraw.objects.get(pk=draw.pk).ctc_count == 1000


@pytest.mark.parametrize("status", ["rejected", "failed", "pending", "cancelled"])
def test_only_a_resulted_draw_has_a_lower_bound(oncologist, patient, status):
    errors = _errors(lambda: _record(patient, oncologist, status=status, count_qualifier=">"))

    assert list(errors) == ["count_qualifier"]
    assert not CTCDraw.objects.exists()


def test_a_qualifier_other_than_more_than_is_refused(oncologist, patient):
    errors = _errors(lambda: _record(patient, oncologist, ctc_count=2, count_qualifier="<"))

    assert list(errors) == ["count_qualifier"]
    assert not CTCDraw.objects.exists()


# --- results from a lab interface (the service HL7 goes through) -----------------------------


def _lab_result(**fields) -> services.LabResultInput:
    values = {
        "mrn": "MRN0001",
        "drawn_at": DRAWN_AT,
        "blood_volume_ml": Decimal("7.5"),
        "status": "resulted",
        "ctc_count": 1000,
        "count_qualifier": ">",
        "accession": "CS-1",
        "comment": "",
        "corrected": False,
    }
    return services.LabResultInput(**{**values, **fields})


def test_a_lab_result_that_is_a_lower_bound_is_stored_so(oncologist, patient):
    (outcome,) = services.record_lab_results(results=[_lab_result()], by=oncologist, source="t")

    assert (outcome.draw.count_qualifier, outcome.draw.ctc_count) == (">", 1000)


def test_a_lab_result_resent_as_an_exact_count_is_not_the_same_result(oncologist, patient):
    services.record_lab_results(results=[_lab_result()], by=oncologist, source="t")

    with pytest.raises(services.LabResultsRefused) as info:
        services.record_lab_results(
            results=[_lab_result(count_qualifier="")], by=oncologist, source="t"
        )

    assert [e.field for e in info.value.errors] == ["accession"]
    corrected = _lab_result(count_qualifier="", corrected=True)
    (outcome,) = services.record_lab_results(results=[corrected], by=oncologist, source="t")
    assert (outcome.action, outcome.draw.count_qualifier) == (services.LAB_CORRECTED, "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"blood_volume_ml": Decimal("0.5")}, "blood_volume_ml"),
        ({"blood_volume_ml": Decimal("12")}, "blood_volume_ml"),
        ({"ctc_count": 4}, "ctc_count"),
    ],
)
def test_a_lab_result_outside_what_entry_allows_is_refused_and_nothing_stored(
    oncologist, patient, fields, field
):
    with pytest.raises(services.LabResultsRefused) as info:
        services.record_lab_results(results=[_lab_result(**fields)], by=oncologist, source="t")

    assert [e.field for e in info.value.errors] == [field]
    assert not CTCDraw.objects.exists()
