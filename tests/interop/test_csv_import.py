"""CSV import of CTC draws: `import_ctc` and the rules behind it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from patients.interop.csv.imports import parse_csv, plan_import
from patients.models import CTCDraw, Patient
from tests import builders
from tests.paths import DATA as SAMPLES
from tests.plans import Plan

pytestmark = pytest.mark.django_db

DATA = SAMPLES / "csv"
HEADER = "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"


@pytest.fixture
def second_patient(oncologist) -> Patient:
    return builders.patient(
        oncologist, mrn="MRN0002", given_name="John", family_name="Roe", cancer_type="prostate"
    )


def _import(path: Path, **options) -> str:
    out = StringIO()
    call_command("import_ctc", str(path), stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def _plan(text: str):
    rows, errors = parse_csv(text, tz=timezone.get_current_timezone(), now=timezone.now())
    return plan_import(rows, errors, among=Patient.objects.all())


def test_it_imports_every_row_of_a_good_file(patient, second_patient):
    out = _import(DATA / "good.csv")

    assert "4 to add, 0 already recorded, 0 bad rows" in out
    draws = list(CTCDraw.objects.order_by("drawn_at"))
    assert [(d.patient.mrn, d.status, d.ctc_count) for d in draws] == [
        ("MRN0001", "resulted", 3),
        ("MRN0002", "resulted", 4),
        ("MRN0001", "resulted", 9),
        ("MRN0002", "rejected", None),
    ]
    assert draws[0].drawn_at == datetime(2026, 1, 2, 9, 30, tzinfo=UTC)  # clinic time (UTC here)
    assert draws[0].blood_volume_ml == Decimal("7.5")  # the default
    assert draws[1].blood_volume_ml == Decimal("10")
    assert draws[2].comment == "Drawn before C2, tube 1 of 1"
    assert draws[0].entered_by.username == "csv-import"
    assert not draws[0].entered_by.is_active  # the import account cannot sign in


def test_imported_rows_have_history_naming_the_file(patient, second_patient):
    _import(DATA / "good.csv")

    draw = CTCDraw.objects.get(accession="CS-0001")
    (record,) = draw.history.all()
    assert record.history_change_reason == "Imported from good.csv"
    assert record.history_user.username == "csv-import"


def test_importing_the_same_file_again_changes_nothing(patient, second_patient):
    _import(DATA / "good.csv")
    versions = Patient.objects.order_by("pk").values_list("data_version", flat=True)
    before = list(versions)

    out = _import(DATA / "good.csv")

    assert "0 to add, 4 already recorded" in out
    assert "Nothing new to import." in out
    assert CTCDraw.objects.count() == 4
    assert list(versions) == before


def test_one_bad_row_rejects_the_file_and_every_bad_row_is_named(patient, second_patient):
    with pytest.raises(CommandError) as info:
        _import(DATA / "bad.csv")

    message = str(info.value)
    assert "Nothing imported" in message
    for expected in [
        "line 3, mrn: no patient with MRN 'NOPE-9'",
        "line 4, drawn_at: 'yesterday' is not a date and time",
        "line 4, ctc_count: '-1' is not a whole number",
        "line 5, blood_volume_ml: must be from 1.0 to 10.0 mL (a CellSave tube holds 10 mL)",
        "line 5, status: 'negative' is not one of",
        "line 6, drawn_at: is in the future",
        "line 6, ctc_count: a rejected draw has no count",
    ]:
        assert expected in message
    assert "line 2" not in message  # the good row is fine
    assert not CTCDraw.objects.exists()  # ...but nothing was saved


def test_a_dry_run_reports_and_saves_nothing(patient, second_patient):
    out = _import(DATA / "good.csv", dry_run=True)

    assert "4 to add" in out and "Dry run: nothing saved." in out
    assert not CTCDraw.objects.exists()


def test_a_missing_column_is_reported_on_the_header(patient):
    with pytest.raises(CommandError, match="line 1, header: missing column: drawn_at"):
        _import(DATA / "missing-column.csv")


def test_optional_columns_may_be_left_out(patient):
    out = _import(DATA / "optional-columns-left-out.csv")  # no volume, accession, comment

    assert "1 to add" in out
    draw = CTCDraw.objects.get()
    assert (draw.ctc_count, draw.blood_volume_ml, draw.accession) == (3, Decimal("7.5"), "")


@pytest.mark.parametrize(
    "row, message",
    [
        ("MRN0001,2026-01-02 09:30,,resulted,,,", "ctc_count: a resulted draw needs a count"),
        ("MRN0001,2026-01-02 09:30,,resulted,2.5,,", "'2.5' is not a whole number"),
        ("MRN0001,2026-01-02 09:30,7.555,resulted,2,,", "use at most 2 decimal places"),
        ("MRN0001,2026-01-02 09:30,abc,resulted,2,,", "'abc' is not a number"),
        ("MRN0001,1950-01-02 09:30,,resulted,2,,", "before the patient's birth date"),
        ("MRN0001,2026-01-02 09:30,,,2,,", "status: empty is not one of"),
        (",2026-01-02 09:30,,resulted,2,,", "mrn: required"),
        ("MRN0001,2026-01-02 09:30,,resulted,2000000,,", "not plausible"),
    ],
)
def test_each_bad_value_is_named(patient, row, message):
    plan = _plan(HEADER + row + "\n")

    assert not plan.ok
    assert any(message in str(e) for e in plan.errors), plan.errors
    assert all(e.line == 2 for e in plan.errors)


def test_the_birth_date_is_compared_with_the_clinic_date_of_the_draw(patient, settings):
    settings.TIME_ZONE = "America/New_York"  # the patient was born on 1960-05-17
    evening_before = "MRN0001,1960-05-17T03:00:00+00:00,,resulted,2,,\n"  # 23:00 on the 16th
    first_hour = "MRN0001,1960-05-17T05:00:00+00:00,,resulted,2,,\n"  # 01:00 on the 17th

    plan = _plan(HEADER + evening_before + first_hour)

    assert [str(e) for e in plan.errors] == ["line 2, drawn_at: is before the patient's birth date"]
    assert [r.line for r in plan.new] == [3]


def test_an_accession_already_used_for_another_result_is_refused_not_overwritten(
    patient, oncologist
):
    builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=3,
        accession="CS-0001",
    )

    plan = _plan(HEADER + "MRN0001,2026-01-02 09:30,,resulted,30,CS-0001,\n")

    assert [str(e) for e in plan.errors] == [
        "line 2, accession: 'CS-0001' is already recorded for this patient as "
        "3 CTC in 7.50 mL on 2026-01-02 09:30; correct that draw in CTC Track instead"
    ]


def test_an_accession_on_record_for_another_patient_is_refused_without_naming_them(
    patient, second_patient, oncologist
):
    """A lab's row whose accession is another patient's is never filed on either, and
    the message names neither that patient nor the result (they may be another
    care team's)."""
    builders.draw(
        second_patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=3,
        accession="CS-0001",
    )

    plan = _plan(HEADER + "MRN0001,2026-01-02 09:30,,resulted,3,CS-0001,\n")

    assert [str(e) for e in plan.errors] == [
        "line 2, accession: 'CS-0001' is on record for another patient: check the MRN and "
        "the accession with the lab"
    ]
    assert plan.new == [] and plan.unchanged == []


def _many_accessions(taken: str) -> str:
    """A file of 300 rows, each with its own accession; the last row's is `taken`."""
    rows = [
        f"MRN0001,2026-02-{1 + i % 28:02d} {i % 24:02d}:00,,resulted,{i},A-{i:03d},\n"
        for i in range(299)
    ]
    return HEADER + "".join(rows) + f"MRN0001,2026-01-02 09:30,,resulted,30,{taken},\n"


def test_an_accession_already_used_is_found_among_hundreds_in_the_file(patient, oncologist):
    builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC), accession="CS-9"
    )

    plan = _plan(_many_accessions("CS-9"))

    assert [str(e) for e in plan.errors] == [
        "line 301, accession: 'CS-9' is already recorded for this patient as "
        "3 CTC in 7.50 mL on 2026-01-02 09:30; correct that draw in CTC Track instead"
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a plan of PostgreSQL's")
def test_on_postgresql_a_files_accessions_are_looked_up_by_their_index(patient, oncologist):
    """The unique index on accessions is partial (accession given), and PostgreSQL
    sees that an IN list implies that condition only up to 100 values: a file of
    more read every draw on record for each batch of accessions (0.75 s for 20,000
    accessions at 100,000 patients; 0.1 s by the index). A test's tables are too
    small for the planner to prefer any index, so the look is taken, in the test's
    transaction (rolled back after it), with the draws' indexes on the patient
    dropped and with sequential and plain index scans off: a bitmap scan of the
    accessions' index is then the one plan left that is not turned off, and only if
    the query implies the index's condition."""
    builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC), accession="CS-9"
    )
    parsed, errors = parse_csv(
        _many_accessions("CS-10"), tz=timezone.get_current_timezone(), now=timezone.now()
    )
    with CaptureQueriesContext(connection) as captured:
        plan_import(parsed, errors, among=Patient.objects.all())
    (lookup,) = [q["sql"] for q in captured.captured_queries if "'A-000'" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX patients_ctcdraw_patient_id_550e8679, draw_patient_drawn_at")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
    found = Plan(lookup)

    (draws,) = [n for n in found.nodes() if n.get("Relation Name") == "patients_ctcdraw"]
    assert [(n["Node Type"], n.get("Index Name")) for n in found.nodes(draws)] == [
        ("Bitmap Heap Scan", None),
        ("Bitmap Index Scan", "draw_accession_unique_when_given"),
    ], found


def test_a_draw_already_recorded_by_hand_is_recognised_without_an_accession(patient, oncologist):
    builders.draw(
        patient, oncologist, drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC), ctc_count=3
    )

    plan = _plan(HEADER + "MRN0001,2026-01-02T09:30:00Z,7.5,resulted,3,,\n")

    assert plan.ok
    assert (len(plan.new), len(plan.unchanged)) == (0, 1)


def test_a_row_repeated_in_the_file_is_an_error(patient):
    row = "MRN0001,2026-01-02 09:30,,resulted,3,CS-1,\n"

    plan = _plan(HEADER + row + row)

    assert [str(e) for e in plan.errors] == ["line 3, row: repeats line 2"]


def test_the_import_looks_up_the_record_in_a_fixed_number_of_queries(
    patient, second_patient, django_assert_num_queries
):
    rows = "".join(
        f"MRN000{1 + i % 2},2026-01-{1 + i % 28:02d} {i % 24:02d}:00,,resulted,{i},A-{i},\n"
        for i in range(300)
    )
    parsed, errors = parse_csv(
        HEADER + rows, tz=timezone.get_current_timezone(), now=timezone.now()
    )

    with django_assert_num_queries(3):
        plan = plan_import(parsed, errors, among=Patient.objects.all())

    assert plan.ok and len(plan.new) == 300
