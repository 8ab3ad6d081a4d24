"""A page finds its patients' acknowledgements without reading the clinic's.

Every page that assesses patients loads the acknowledgements of their cycles and of
their results. Two earlier forms of that query passed every other test and failed in
use: an `OR` across the cycle's and the draw's joins read every cycle of the clinic
for each page (0.3 s a request at 100,000 patients), and `id IN (union of two
subqueries)` ran the union once per acknowledgement where PostgreSQL's statistics said
the tables were empty (a test database, or one just bulk loaded), so that loading one
patient took minutes. The work a query does is measured here as the rows its plan
reads (EXPLAIN ANALYZE: each node's rows times its loops), not as time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, migrations
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from patients import services
from patients.assessment.loader import INSTANCES, VALUES, Loader
from patients.assessment.series import LISTED
from patients.models import (
    ACKNOWLEDGED_ON_ANOTHER_PATIENT,
    Acknowledgement,
    CTCDraw,
    Patient,
    TreatmentCycle,
)
from tests import builders
from tests.plans import Plan

pytestmark = pytest.mark.django_db

TABLES = (
    "patients_patient",
    "patients_therapyline",
    "patients_treatmentcycle",
    "patients_ctcdraw",
    "patients_acknowledgement",
)


def _acknowledge_some_results() -> None:
    """The synthetic cohort acknowledges cycles only; a clinic acknowledges results too."""
    nurse = builders.user_with_role("nurse")
    draws = CTCDraw.objects.filter(ctc_count__gte=5).order_by("id")[::7]
    Acknowledgement.objects.bulk_create(
        Acknowledgement(draw=draw, patient_id=draw.patient_id, acknowledged_by=nurse, note="Seen")
        for draw in draws
    )


def _acknowledged_patients(n: int) -> dict[int, list[int]]:
    """`n` patients, each with a failed tube's result and a cycle acknowledged (in that
    order): patient id -> the acknowledgements' ids."""
    by = builders.user_with_role("oncologist")
    acknowledged = {}
    for _ in range(n):
        patient = builders.patient(by)
        cycle = builders.cycle(builders.therapy_line(patient, by), by, number=1)
        failed = builders.draw(
            patient,
            by,
            drawn_at=builders.local_at(date(2026, 3, 1)),
            status="failed",
            ctc_count=None,
        )
        acknowledged[patient.pk] = [
            services.acknowledge_result(draw=failed, by=by, note="Repeat booked").pk,
            services.acknowledge_cycle(cycle=cycle, by=by, note="Seen").pk,
        ]
    return acknowledged


def test_every_acknowledgement_of_the_patients_and_no_other_oldest_first():
    acknowledged = _acknowledged_patients(3)
    first, _, third = acknowledged
    wanted = [first, third]

    for shape in (INSTANCES, VALUES, LISTED):
        found = Loader(shape).acknowledgements(wanted)
        assert set(found) == set(wanted)
        for pk in wanted:
            assert [a.id for a in found[pk]] == acknowledged[pk]  # result first: older
            assert {a.patient_id for a in found[pk]} == {pk}


@contextmanager
def _one_query() -> Iterator[CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as captured:
        yield captured
    assert len(captured.captured_queries) == 1


def _plan_loading(patient: Patient) -> Plan:
    with _one_query() as captured:
        Loader(VALUES).acknowledgements([patient.pk])
    return Plan(captured.captured_queries[0]["sql"])


def _clinic_rows() -> int:
    return (
        Acknowledgement.objects.count()
        + TreatmentCycle.objects.count()
        + CTCDraw.objects.count()
        + Patient.objects.count()
    )


def _acknowledged_patient() -> Patient:
    """A patient with acknowledgements of both kinds."""
    of_cycles = Acknowledgement.objects.filter(cycle__isnull=False).values_list(
        "cycle__therapy_line__patient", flat=True
    )
    of_results = Acknowledgement.objects.filter(draw__isnull=False).values_list(
        "draw__patient", flat=True
    )
    return Patient.objects.get(pk=min(set(of_cycles) & set(of_results)))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_loading_after_a_bulk_load_reads_no_more_than_the_clinic_once():
    """Statistics taken while the tables were empty, then 300 patients loaded."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(TABLES))
    call_command("generate_cohort", patients=300, allow_without_debug=True, verbosity=0)
    _acknowledge_some_results()
    patient = _acknowledged_patient()

    # The union of subqueries read about 3,000 x 40 rows here (once per acknowledgement).
    plan = _plan_loading(patient)
    assert plan.rows_read <= _clinic_rows(), plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_loading_one_patient_reads_that_patients_rows_not_the_clinics():
    call_command("generate_cohort", patients=300, allow_without_debug=True, verbosity=0)
    _acknowledge_some_results()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(TABLES))
    patient = _acknowledged_patient()
    own = (
        TreatmentCycle.objects.filter(therapy_line__patient=patient).count()
        + patient.draws.count()
        + patient.therapy_lines.count()
    )

    # The OR across the two joins read every cycle of the clinic (3,150 here).
    plan = _plan_loading(patient)
    assert plan.rows_read <= 4 * own, plan


# --- whose acknowledgement it is ---------------------------------------------------------


def test_an_acknowledgement_on_another_patient_than_its_cycles_or_results_is_refused():
    by = builders.user_with_role("oncologist")
    own, other = builders.patient(by), builders.patient(by)
    cycle = builders.cycle(builders.therapy_line(own, by), by, number=1)
    draw = builders.draw(own, by, drawn_at=builders.local_at(date(2026, 3, 1)), ctc_count=9)

    for ack in (
        Acknowledgement(cycle=cycle, patient=other, acknowledged_by=by, note="Seen"),
        Acknowledgement(draw=draw, patient=other, acknowledged_by=by, note="Seen"),
    ):
        with pytest.raises(ValidationError) as refused:
            ack.full_clean()
        assert refused.value.message_dict == {"patient": [ACKNOWLEDGED_ON_ANOTHER_PATIENT]}
    Acknowledgement(cycle=cycle, patient=own, acknowledged_by=by, note="Seen").full_clean()


def test_the_migration_files_every_acknowledgement_and_its_history_on_its_patient():
    acks = _acknowledged_patients(2)
    # As before the column: the rows' patients unknown (here: the wrong one, as the
    # column cannot be empty), the history's empty.
    Acknowledgement.objects.update(patient=min(acks))
    Acknowledgement.history.update(patient=None)

    executor = MigrationExecutor(connection)
    state = executor.loader.project_state(("patients", "0020_acknowledgement_patient"))
    fill = executor.loader.get_migration("patients", "0020_acknowledgement_patient")
    (step,) = [op for op in fill.operations if isinstance(op, migrations.RunPython)]
    step.code(state.apps, None)

    for patient_id, ids in acks.items():
        assert set(
            Acknowledgement.objects.filter(id__in=ids).values_list("patient", flat=True)
        ) == {patient_id}
        history = Acknowledgement.history.filter(id__in=ids)
        assert history.exists()
        assert set(history.values_list("patient", flat=True)) == {patient_id}
