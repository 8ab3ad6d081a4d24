"""The change history on the patient page: staff see who changed what, old -> new, and why."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pytest_django.asserts import assertContains, assertNotContains

from patients import services
from patients.audit.history import change_history
from tests import builders

pytestmark = pytest.mark.django_db


def _url(patient) -> str:
    return f"/patients/{patient.pk}/"


def _rename(patient, by, name: str, reason: str):
    return services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=by,
        changes={"family_name": name},
        reason=reason,
    )


def test_staff_see_old_and_new_values_with_who_and_why(client, admin_user, oncologist, patient):
    _rename(patient, oncologist, "Doe-Smith", "Married name, confirmed by the patient")
    client.force_login(admin_user)

    r = client.get(_url(patient))

    assertContains(r, '<h2 id="history-heading">Change history</h2>', html=True)
    assertContains(r, "<strong>Family name</strong>: Doe → Doe-Smith", html=True)
    assertContains(r, "Married name, confirmed by the patient")
    entry = r.context["history"][0]
    assert (entry.by, entry.what, entry.kind) == ("olivia", "Patient details", "changed")


def test_clinicians_who_are_not_staff_do_not_see_it(client, nurse, oncologist, patient):
    _rename(patient, oncologist, "Doe-Smith", "Married name")
    client.force_login(nurse)

    r = client.get(_url(patient))

    assertNotContains(r, "Change history")
    assertNotContains(r, "Married name")
    assert r.context["history"] is None


def test_it_covers_lines_cycles_draws_imaging_and_acknowledgements_newest_first(
    oncologist, nurse, patient, cycle, draw
):
    services.update_draw(
        draw=draw,
        version=builders.version_of(draw),
        by=oncologist,
        changes={"ctc_count": 5},
        reason="Transcription error",
    )
    services.update_cycle(
        cycle=cycle,
        version=builders.version_of(cycle),
        by=oncologist,
        changes={"status": "delayed", "status_reason": "Neutropenia"},
    )
    services.record_imaging(
        patient=patient, by=oncologist, performed_on=date(2026, 1, 3), modality="ct", response="SD"
    )
    services.acknowledge_cycle(cycle=cycle, by=nurse, note="Seen")

    history = change_history(patient)

    whats = [entry.what for entry in history]
    assert whats[0] == "Acknowledgement of cycle 1"
    assert whats[1] == "Imaging of Sat 3 Jan 2026"
    assert "Cycle 1 of line 1" in whats and "Therapy line 1" in whats
    assert "CTC draw of 2 Jan 2026 09:30" in whats and whats[-1] == "Patient details"
    assert [e.at for e in history] == sorted((e.at for e in history), reverse=True)
    (draw_edit,) = [e for e in history if e.what.startswith("CTC draw") and e.kind == "changed"]
    assert [(c.field, c.old, c.new) for c in draw_edit.changes] == [
        ("CTC count (cells in the sample)", "3", "5")
    ]
    assert draw_edit.reason == "Transcription error"
    (cycle_edit,) = [e for e in history if e.what.startswith("Cycle") and e.kind == "changed"]
    assert ("status", "Planned", "Delayed") in [(c.field, c.old, c.new) for c in cycle_edit.changes]


def test_it_covers_the_acknowledgements_of_results_too(oncologist, nurse, patient, line):
    high = services.record_draw(
        patient=patient,
        by=oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=9,
    )
    services.acknowledge_result(draw=high, by=nurse, note="Oncologist informed")
    other = builders.patient(oncologist, mrn="OTHER-1")
    services.acknowledge_result(
        draw=builders.draw(other, oncologist, drawn_at=date(2026, 1, 3), ctc_count=40),
        by=nurse,
        note="Not this patient's",
    )

    history = change_history(patient)

    latest = history[0]
    assert (latest.what, latest.by, latest.kind) == (
        "Acknowledgement of the result drawn 2 Jan 2026 09:30",
        "nina",
        "created",
    )
    assert latest.reason == "Flags acknowledged"
    assert sum(e.what.startswith("Acknowledgement") for e in history) == 1


def test_a_changed_oncologist_shows_usernames(oncologist, patient, django_user_model):
    other = django_user_model.objects.create_user("otto", password="correct-horse-42")

    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"oncologist": other},
    )

    (change,) = change_history(patient)[0].changes
    assert (change.old, change.new) == ("—", "otto")


def test_the_page_runs_the_same_queries_for_a_short_or_long_history(
    client, admin_user, oncologist, patient, line, count_queries
):
    services.record_draw(
        patient=patient, by=oncologist, drawn_at=datetime(2026, 1, 2, tzinfo=UTC), ctc_count=1
    )
    _rename(patient, oncologist, "Doe-1", "one")
    client.force_login(admin_user)
    client.get(_url(patient))
    short = count_queries(lambda: client.get(_url(patient)))
    for i in range(2, 15):
        _rename(patient, oncologist, f"Doe-{i}", "again")
        draw = services.record_draw(
            patient=patient,
            by=oncologist,
            drawn_at=datetime(2026, 1, i, tzinfo=UTC),
            ctc_count=40 + i,
        )
        services.update_draw(
            draw=draw,
            version=builders.version_of(draw),
            by=oncologist,
            changes={"ctc_count": 41 + i},
            reason="fix",
        )
        services.plan_cycle(line=line, by=oncologist, number=i, scheduled_date=date(2026, 2, i))
        services.acknowledge_result(draw=draw, by=oncologist, note="Seen")

    long = count_queries(lambda: client.get(_url(patient)))

    assert short == long
