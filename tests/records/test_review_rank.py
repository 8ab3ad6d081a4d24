"""The stored review rank: the worklist's order from SQL is the order the rules give.

`TreatmentCycle.review_rank` lets the database sort and page the worklist. It
is only right if every write the rules read refreshes it, and if the SQL order
equals the order the live assessment gives: both are checked here, the latter
over random small cohorts.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from patients import assessment, rules, services
from patients.models import Patient, TreatmentCycle
from tests import builders
from tests.fuzzing import rolled_back
from tests.paths import DATA

pytestmark = pytest.mark.django_db

HIGH, REVIEW, INFO, NO_FLAGS = 0, 1, 2, 3
DAY1 = date(2026, 3, 3)  # the cycle's day 1: its pre-cycle window is 24 Feb to 3 Mar


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _stored(cycle: TreatmentCycle) -> int:
    return TreatmentCycle.objects.values_list("review_rank", flat=True).get(pk=cycle.pk)


def _live(cycle: TreatmentCycle) -> int:
    cycle = TreatmentCycle.objects.select_related("therapy_line__patient").get(pk=cycle.pk)
    series = assessment.series_for(cycle.therapy_line.patient)
    return rules.review_rank(series.cycle_assessment(cycle))


def _every_stored_rank_is_live() -> None:
    series = assessment.series_for_many(Patient.objects.all())
    wrong = [
        (c.pk, c.review_rank, rules.review_rank(s.cycle_assessment(c)))
        for s in series.values()
        for c in s.cycles
        if c.review_rank != rules.review_rank(s.cycle_assessment(c))
    ]
    assert wrong == [], "(cycle, stored, live)"


@pytest.fixture
def due(line, oncologist) -> TreatmentCycle:
    return builders.cycle(line, oncologist, number=3, scheduled_date=DAY1)


# --- every kind of write refreshes it ------------------------------------------------------


def test_a_planned_cycle_without_a_draw_ranks_as_review_from_the_start(due):
    assert _stored(due) == REVIEW  # missing pre-cycle draw
    assert _live(due) == REVIEW


def test_adding_a_draw_refreshes_the_rank(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=1)

    assert _stored(due) == NO_FLAGS == _live(due)


def test_editing_a_draw_refreshes_the_rank(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    draw = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=2)
    assert _stored(due) == NO_FLAGS

    services.update_draw(
        draw=draw,
        version=builders.version_of(draw),
        by=oncologist,
        changes={"ctc_count": 9},
        reason="Typo",
    )

    assert _stored(due) == HIGH == _live(due)  # converted to unfavourable


def test_marking_a_draw_entered_in_error_refreshes_the_rank(due, patient, oncologist):
    draw = builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=1)
    assert _stored(due) == NO_FLAGS

    services.mark_draw_entered_in_error(
        draw=draw, version=builders.version_of(draw), by=oncologist, reason="Wrong patient"
    )

    assert _stored(due) == REVIEW == _live(due)  # no draw in the window any more


def test_delaying_a_cycle_refreshes_its_rank_and_the_later_ones(due, line, patient, oncologist):
    later = builders.cycle(line, oncologist, number=4, scheduled_date=DAY1 + timedelta(21))
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=DAY1 + timedelta(40), ctc_count=1)
    assert (_stored(due), _stored(later)) == (NO_FLAGS, REVIEW)

    services.delay_cycle_and_following(
        cycle=due,
        version=builders.version_of(due),
        by=oncologist,
        new_date=DAY1 + timedelta(21),
        reason="Neutropenia",
    )

    # Cycle 3 moved away from its draw; cycle 4 moved onto the later one.
    assert (_stored(due), _stored(later)) == (REVIEW, NO_FLAGS)
    assert (_live(due), _live(later)) == (REVIEW, NO_FLAGS)


def test_giving_a_cycle_takes_it_out_of_the_ranking(due, oncologist):
    services.update_cycle(
        cycle=due,
        version=builders.version_of(due),
        by=oncologist,
        changes={"status": "given", "given_date": DAY1},
    )

    assert _stored(due) == NO_FLAGS == _live(due)  # only upcoming cycles carry flags


def test_an_acknowledgement_never_lowers_the_rank(due, patient, oncologist, nurse):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=9)

    services.acknowledge_cycle(cycle=due, by=nurse, note="Oncologist informed")

    assert _stored(due) == HIGH == _live(due)  # acknowledged flags are still flags


def test_changing_the_cancer_type_refreshes_the_rank(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=4)
    assert _stored(due) == NO_FLAGS  # 4 is below the breast cut-off of 5

    services.update_patient(
        patient=patient,
        version=builders.version_of(patient),
        by=oncologist,
        changes={"cancer_type": "colorectal"},
        reason="Typo",
    )

    assert _stored(due) == REVIEW == _live(due)  # and at or above the colorectal one of 3


def test_a_csv_import_refreshes_the_rank(due, patient, oncologist, tmp_path):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    assert _stored(due) == REVIEW
    path = tmp_path / "lab.csv"
    path.write_text(
        "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"
        "MRN0001,2026-02-28 09:00,7.5,resulted,12,CS-9,\n"
    )

    call_command("import_ctc", str(path), stdout=StringIO(), stderr=StringIO())

    assert _stored(due) == HIGH == _live(due)


def test_an_hl7_result_refreshes_the_rank(api, due, patient, oncologist):
    # The message's draw: 1 Mar 2026 07:30 UTC, 7 CTC in 7.5 mL, accession CS-26-0101.
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(6), ctc_count=1)
    assert _stored(due) == NO_FLAGS
    api.force_authenticate(oncologist)
    body = DATA / "hl7" / "oru_r01_final.hl7"

    r = api.generic("POST", "/api/v1/hl7/oru/", data=body.read_bytes(), content_type="text/plain")

    assert r.status_code == 200 and b"|AA|" in r.content
    assert _stored(due) == HIGH == _live(due)  # converted to unfavourable


# --- the settings the rules read -------------------------------------------------------------


def test_after_a_cut_off_change_the_command_recomputes_and_the_worklist_warns_until_then(
    due, patient, oncologist, settings, caplog
):
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=4)
    assert _stored(due) == NO_FLAGS
    settings.CTC_CUTOFFS = {**settings.CTC_CUTOFFS, "breast": 3}

    with caplog.at_level(logging.ERROR, logger="patients.assessment"):
        assessment.worklist(DAY1, 1)
    assert f"differs from the rules for cycles {due.pk}" in caplog.text

    out = StringIO()
    call_command("refresh_review_ranks", stdout=out)

    assert "1 cycle(s)" in out.getvalue()
    assert _stored(due) == REVIEW == _live(due)


def test_the_migration_ranks_the_cycles_already_on_record(due, patient, oncologist):
    builders.draw(patient, oncologist, drawn_at=date(2026, 2, 1), ctc_count=1)
    builders.draw(patient, oncologist, drawn_at=DAY1 - timedelta(3), ctc_count=9)
    TreatmentCycle.objects.update(review_rank=NO_FLAGS)  # as the column's default would not be
    migration = MigrationExecutor(connection).loader.get_migration(
        "patients", "0007_treatmentcycle_review_rank"
    )
    (fill,) = [op for op in migration.operations if op.__class__.__name__ == "RunPython"]
    state = MigrationExecutor(connection).loader.project_state(
        ("patients", "0007_treatmentcycle_review_rank")
    )

    fill.code(state.apps, None)

    assert _stored(due) == HIGH
    _every_stored_rank_is_live()


def test_generate_cohort_ranks_the_cycles_it_writes():
    call_command(
        "generate_cohort",
        patients=12,
        allow_without_debug=True,
        stdout=StringIO(),
        stderr=StringIO(),
    )

    assert TreatmentCycle.objects.exists()
    _every_stored_rank_is_live()


# --- the order from SQL is the rules' order --------------------------------------------------

FAMILY_NAMES = ["Adams", "adams", "O'Neil", "Oneill", "Zhu", "Ávila", "de Vries"]
START = date(2026, 3, 2)

draw_plans = st.lists(
    st.tuples(
        st.integers(min_value=-30, max_value=6),  # day relative to START
        st.sampled_from(["resulted"] * 4 + ["rejected", "failed", "pending"]),
        st.sampled_from([0, 1, 2, 4, 5, 9, 30]),
        st.sampled_from(["7.5", "7.5", "4"]),
    ),
    max_size=4,
)
patient_plans = st.lists(
    st.fixed_dictionaries(
        {
            "family": st.sampled_from(FAMILY_NAMES),
            "given": st.sampled_from(["Ann", "ann", "Bo"]),
            "cancer": st.sampled_from(["breast", "prostate", "colorectal"]),
            "cycles": st.lists(
                st.tuples(st.integers(min_value=-1, max_value=7), st.booleans()),
                min_size=1,
                max_size=2,
            ),
            "draws": draw_plans,
            "doxorubicin": st.booleans(),
        }
    ),
    min_size=1,
    max_size=6,
)


def _make_cohort(plans: list[dict], by) -> None:
    for i, plan in enumerate(plans):
        patient = builders.patient(
            by,
            mrn=f"H-{i}",
            given_name=plan["given"],
            family_name=plan["family"],
            cancer_type=plan["cancer"],
        )
        line = builders.therapy_line(
            patient,
            by,
            regimen="FEC" if plan["doxorubicin"] else "Docetaxel",
            start_date=START - timedelta(days=60),
            contains_doxorubicin=plan["doxorubicin"],
        )
        builders.cycle(
            line, by, number=1, scheduled_date=START - timedelta(days=12), status="given"
        )
        for number, (offset, delayed) in enumerate(plan["cycles"], start=2):
            builders.cycle(
                line,
                by,
                number=number,
                scheduled_date=START + timedelta(days=offset),
                status="delayed" if delayed else "planned",
            )
        for k, (offset, status, count, volume) in enumerate(plan["draws"]):
            builders.draw(
                patient,
                by,
                drawn_at=_at(START + timedelta(days=offset), hour=8 + k),
                status=status,
                ctc_count=count if status == "resulted" else None,
                blood_volume_ml=Decimal(volume),
            )


@examples(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plans=patient_plans, flagged=st.booleans(), page_size=st.integers(1, 4))
def test_the_sql_order_is_the_order_the_rules_give(oncologist, plans, flagged, page_size):
    with rolled_back():
        _make_cohort(plans, oncologist)

        due = assessment.due_cycles(START, 7, flagged=flagged)
        from_sql = list(due)
        paged = [c for k in range(0, due.count(), page_size) for c in due[k : k + page_size]]
        items = assessment.worklist_items(assessment.due_cycles(START, 7))
        by_rules = sorted(items, key=assessment.worklist_order)
        if flagged:
            by_rules = [i for i in by_rules if i.assessment.flags]

        assert [c.pk for c in from_sql] == [i.cycle.pk for i in by_rules]
        assert [c.pk for c in paged] == [c.pk for c in from_sql]  # pages: same rows, same order
        assert due[due.count() : due.count() + page_size] == []
        _every_stored_rank_is_live()
