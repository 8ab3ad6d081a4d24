"""The services: every clinical write validated, versioned and in the change history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from patients import services
from patients.assessment import series_for
from patients.models import CTCDraw, Patient, TreatmentCycle
from tests import builders

pytestmark = pytest.mark.django_db


def _errors(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.message_dict


def test_registering_a_patient_records_who_did_it(oncologist, patient):
    (record,) = patient.history.all()

    assert record.history_user == oncologist
    assert record.history_type == "+"
    assert record.history_change_reason == "Registered"


def test_an_update_keeps_the_old_value_in_the_history_with_the_reason(oncologist, patient):
    services.update_patient(
        patient=patient,
        by=oncologist,
        changes={"family_name": "Smith"},
        version=1,
        reason="Name changed after marriage",
    )

    newest, oldest = patient.history.all()[:2]
    assert (oldest.family_name, newest.family_name) == ("Doe", "Smith")
    assert newest.history_change_reason == "Name changed after marriage"
    assert Patient.objects.get(pk=patient.pk).version == 2


def test_an_edit_based_on_an_old_version_is_refused_and_changes_nothing(oncologist, patient):
    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"given_name": "Janet"},
    )

    with pytest.raises(services.ConflictError) as info:
        services.update_patient(
            patient=patient, by=oncologist, changes={"given_name": "Joan"}, version=1
        )

    assert info.value.current == 2
    assert Patient.objects.get(pk=patient.pk).given_name == "Janet"


def test_a_conflict_says_what_changed_who_changed_it_when_and_why(oncologist, nurse, patient):
    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"given_name": "Janet"},
        reason="Typo",
    )
    services.update_patient(
        patient=Patient.objects.get(pk=patient.pk),
        version=builders.version_of(Patient.objects.get(pk=patient.pk)),
        by=nurse,
        changes={"family_name": "Doe-Smith", "cancer_type": "prostate"},
        reason="Records merged",
    )

    with pytest.raises(services.ConflictError) as info:
        services.update_patient(
            patient=patient, by=oncologist, changes={"given_name": "Joan"}, version=1
        )

    first, second = info.value.edits  # oldest first, both missed by the editor
    assert (first.by, first.reason) == (oncologist.username, "Typo")
    assert [(c.field, c.old, c.new) for c in first.changes] == [("given name", "Jane", "Janet")]
    assert (second.by, second.reason) == (nurse.username, "Records merged")
    assert sorted((c.field, c.old, c.new) for c in second.changes) == [
        ("cancer type", "Breast", "Prostate"),
        ("family name", "Doe", "Doe-Smith"),
    ]
    assert first.at <= second.at
    described = [services.describe_edit(edit) for edit in info.value.edits]
    assert described[0].startswith(f"{oncologist.username} changed given name: Jane → Janet at ")
    assert described[0].endswith('(reason: "Typo").')


def test_a_conflict_lists_only_the_edits_after_the_editors_version(oncologist, patient):
    for name in ("Janet", "Joan", "Jo"):
        services.update_patient(
            patient=Patient.objects.get(pk=patient.pk),
            version=builders.version_of(Patient.objects.get(pk=patient.pk)),
            by=oncologist,
            changes={"given_name": name},
        )

    with pytest.raises(services.ConflictError) as info:
        services.update_patient(
            patient=patient, by=oncologist, changes={"given_name": "June"}, version=3
        )

    assert [[(c.old, c.new) for c in e.changes] for e in info.value.edits] == [[("Joan", "Jo")]]


def test_a_duplicate_mrn_names_the_field(oncologist, patient):
    errors = _errors(
        lambda: services.register_patient(
            by=oncologist,
            mrn="MRN0001",
            given_name="X",
            family_name="Y",
            birth_date=date(1970, 1, 1),
            sex="male",
            cancer_type="prostate",
        )
    )

    assert errors == {"mrn": ["A patient with this MRN already exists."]}
    assert Patient.objects.count() == 1


def test_the_next_line_number_is_chosen_when_none_is_given(oncologist, patient, line):
    second = services.add_therapy_line(
        patient=patient,
        by=oncologist,
        regimen="Capecitabine",
        start_date=date(2026, 4, 1),
        cycle_length_days=21,
    )

    assert (line.line_number, second.line_number) == (1, 2)


def test_a_cycle_cannot_start_before_its_line(oncologist, line):
    errors = _errors(
        lambda: services.plan_cycle(
            line=line, by=oncologist, number=1, scheduled_date=date(2026, 1, 4)
        )
    )

    assert list(errors) == ["scheduled_date"]


def test_delaying_a_cycle_needs_a_reason_and_records_it(oncologist, cycle):
    errors = _errors(
        lambda: services.update_cycle(
            cycle=cycle,
            version=builders.version_of(cycle),
            by=oncologist,
            changes={"status": "delayed"},
        )
    )
    assert list(errors) == ["status_reason"]

    services.update_cycle(
        cycle=cycle,
        version=builders.version_of(cycle),
        by=oncologist,
        changes={
            "status": "delayed",
            "status_reason": "Neutropenia",
            "scheduled_date": date(2026, 1, 12),
        },
    )
    cycle.refresh_from_db()
    assert (cycle.status, cycle.version) == ("delayed", 2)
    assert cycle.history.first().history_change_reason == "Neutropenia"


def test_a_cycle_with_a_given_date_must_have_been_given(oncologist, line):
    errors = _errors(
        lambda: services.plan_cycle(
            line=line,
            by=oncologist,
            number=1,
            scheduled_date=date(2026, 1, 5),
            given_date=date(2026, 1, 5),
        )
    )

    assert list(errors) == ["given_date"]
    assert not TreatmentCycle.objects.exists()


def test_a_draw_uses_the_standard_volume_unless_told_otherwise(draw):
    assert draw.blood_volume_ml == Decimal("7.5")
    assert draw.entered_by.username == "olivia"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"status": "resulted", "ctc_count": None}, "ctc_count"),
        ({"status": "rejected", "ctc_count": 0}, "ctc_count"),
        ({"status": "failed", "ctc_count": 2}, "ctc_count"),
        ({"ctc_count": -1}, "ctc_count"),
        ({"ctc_count": 2, "blood_volume_ml": Decimal("0")}, "blood_volume_ml"),
        ({"ctc_count": 2, "blood_volume_ml": Decimal("500")}, "blood_volume_ml"),
        ({"ctc_count": 2, "status": "unknown"}, "status"),
    ],
)
def test_a_bad_draw_names_the_field_and_saves_nothing(oncologist, patient, fields, field):
    errors = _errors(
        lambda: services.record_draw(
            patient=patient, by=oncologist, drawn_at=datetime(2026, 1, 2, tzinfo=UTC), **fields
        )
    )

    assert list(errors) == [field]
    assert not CTCDraw.objects.exists()


def test_a_draw_cannot_be_in_the_future_or_before_birth(oncologist, patient):
    now = timezone.now()
    future = _errors(
        lambda: services.record_draw(
            patient=patient,
            by=oncologist,
            drawn_at=now + timedelta(minutes=1),
            ctc_count=1,
            now=now,
        )
    )
    before_birth = _errors(
        lambda: services.record_draw(
            patient=patient, by=oncologist, drawn_at=datetime(1960, 5, 16, tzinfo=UTC), ctc_count=1
        )
    )

    assert future == {"drawn_at": ["The draw time is in the future."]}
    assert before_birth == {"drawn_at": ["The draw time is before the patient's birth date."]}


def test_a_duplicate_accession_is_refused_but_blank_ones_are_not(oncologist, patient, draw):
    def record(accession: str) -> CTCDraw:
        return services.record_draw(
            patient=patient,
            by=oncologist,
            drawn_at=datetime(2026, 1, 3, tzinfo=UTC),
            ctc_count=1,
            accession=accession,
        )

    record("")
    record("  ")

    assert _errors(lambda: record("ACC-1")) == {
        "accession": ["A draw with this accession number already exists."]
    }
    assert CTCDraw.objects.count() == 3


def test_correcting_a_count_keeps_the_old_count_in_the_history(oncologist, draw):
    services.update_draw(
        draw=draw, by=oncologist, changes={"ctc_count": 30}, version=1, reason="Typo: 30 not 3"
    )

    counts = [h.ctc_count for h in draw.history.order_by("history_date")]
    assert counts == [3, 30]
    assert draw.history.first().history_change_reason == "Typo: 30 not 3"


def test_a_birth_date_after_existing_draws_is_refused(oncologist, patient, draw):
    errors = _errors(
        lambda: services.update_patient(
            patient=patient,
            version=builders.version_of(patient),
            by=oncologist,
            changes={"birth_date": date(2026, 2, 1)},
        )
    )

    assert list(errors) == ["birth_date"]


def test_imaging_cannot_be_in_the_future(oncologist, patient):
    errors = _errors(
        lambda: services.record_imaging(
            patient=patient,
            by=oncologist,
            performed_on=date(2026, 3, 2),
            modality="ct",
            response="SD",
            today=date(2026, 3, 1),
        )
    )

    assert list(errors) == ["performed_on"]


def test_a_wrong_draw_is_marked_in_error_kept_and_left_out_of_the_rules(oncologist, patient):
    wrong = builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 2, tzinfo=UTC), ctc_count=40
    )
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 9, tzinfo=UTC), ctc_count=6)

    services.mark_draw_entered_in_error(
        draw=wrong, version=builders.version_of(wrong), by=oncologist, reason="Wrong patient's tube"
    )

    series = series_for(patient)
    assert [d.ctc_count for d in series.draws] == [6]
    assert [d.ctc_count for d in series.voided] == [40]
    # The 6 is the patient's first sample now: a baseline, not "persistent" after the 40.
    assert [f.code for f in series.assessments[0].flags] == ["baseline_unfavourable"]
    wrong.refresh_from_db()
    assert (wrong.entered_in_error, wrong.error_reason) == (True, "Wrong patient's tube")
    assert wrong.history.first().history_change_reason == "Entered in error: Wrong patient's tube"


def test_marking_in_error_needs_a_reason_and_happens_once(oncologist, draw):
    assert _errors(
        lambda: services.mark_draw_entered_in_error(
            draw=draw, version=builders.version_of(draw), by=oncologist, reason=" "
        )
    ) == {"error_reason": ["Say why the draw was entered in error."]}

    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Duplicate"
    )

    assert list(
        _errors(
            lambda: services.mark_draw_entered_in_error(
                draw=draw, version=builders.version_of(draw), by=oncologist, reason="x"
            )
        )
    ) == ["non_field_errors"]
    assert list(
        _errors(
            lambda: services.update_draw(
                draw=draw,
                version=builders.version_of(draw),
                by=oncologist,
                changes={"ctc_count": 1},
            )
        )
    ) == ["non_field_errors"]


def test_delaying_a_cycle_moves_the_later_upcoming_cycles_by_the_same_days(oncologist, line):
    def plan(number: int, day: int, **fields) -> TreatmentCycle:
        return builders.cycle(
            line, oncologist, number=number, scheduled_date=date(2026, 1, day), **fields
        )

    first = plan(1, 5, status="given")  # on its day 1
    second, third = plan(2, 26), plan(3, 27)
    cancelled = plan(4, 28, status="cancelled", status_reason="Patient choice")

    moved = services.delay_cycle_and_following(
        cycle=second,
        version=builders.version_of(second),
        by=oncologist,
        new_date=date(2026, 2, 2),
        reason="Neutropenia",
    )

    assert [c.pk for c in moved] == [second.pk, third.pk]
    days = {
        c.number: (c.scheduled_date, c.status)
        for c in TreatmentCycle.objects.filter(therapy_line=line)
    }
    assert days == {
        1: (date(2026, 1, 5), "given"),
        2: (date(2026, 2, 2), "delayed"),
        3: (date(2026, 2, 3), "planned"),
        4: (date(2026, 1, 28), "cancelled"),
    }
    assert first.pk and cancelled.pk
    assert third.history.first().history_change_reason == "Moved with cycle 2: Neutropenia"


def test_every_change_to_what_the_chart_shows_bumps_the_data_version(oncologist, patient):
    def version() -> int:
        return Patient.objects.get(pk=patient.pk).data_version

    start = version()
    line = services.add_therapy_line(
        patient=patient,
        by=oncologist,
        regimen="X",
        start_date=date(2026, 1, 1),
        cycle_length_days=21,
    )
    cycle = services.plan_cycle(line=line, by=oncologist, number=1, scheduled_date=date(2026, 1, 1))
    services.update_cycle(
        cycle=cycle,
        version=builders.version_of(cycle),
        by=oncologist,
        changes={"status": "given", "given_date": date(2026, 1, 1)},
    )
    draw = services.record_draw(
        patient=patient, by=oncologist, drawn_at=datetime(2026, 1, 2, tzinfo=UTC), ctc_count=1
    )
    services.update_draw(
        draw=draw, version=builders.version_of(draw), by=oncologist, changes={"ctc_count": 2}
    )
    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Duplicate"
    )
    services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 1, 3), modality="ct", response="SD"
    )
    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"cancer_type": "prostate"},
    )

    assert version() == start + 8
