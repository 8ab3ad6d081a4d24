"""CSV in and out under version 2 of the rules: a count that is a lower bound (">1000" in
`ctc_count`, or the `count_qualifier` column an export writes), and the 1.0-10.0 mL volume."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from pytest_django.asserts import assertContains

from patients import services
from patients.interop.csv.imports import parse_csv, plan_import
from patients.models import CTCDraw, Patient
from tests import builders

pytestmark = pytest.mark.django_db

HEADER = "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"
BELOW_CUTOFF = "A lower bound below the cut-off cannot be classified"


def _plan(text: str):
    rows, errors = parse_csv(text, tz=timezone.get_current_timezone(), now=timezone.now())
    return plan_import(rows, errors, among=Patient.objects.all())


def _import(text: str, by) -> list[CTCDraw]:
    plan = _plan(text)
    assert plan.ok, plan.errors
    ids = services.import_draws(rows=plan.new, patients=plan.patients, by=by, source="t.csv")
    return list(CTCDraw.objects.filter(pk__in=ids).order_by("drawn_at"))


@pytest.mark.parametrize("count", [">1000", "> 1000", " >1000"])
def test_a_lower_bound_in_ctc_count_is_imported_with_its_qualifier(patient, oncologist, count):
    (draw,) = _import(HEADER + f'MRN0001,2026-01-02 09:30,,resulted,"{count}",,\n', oncologist)

    assert (draw.count_qualifier, draw.ctc_count) == (">", 1000)
    assert draw.history.get().count_qualifier == ">"


def test_an_exact_count_is_imported_as_exact(patient, oncologist):
    (draw,) = _import(HEADER + "MRN0001,2026-01-02 09:30,,resulted,1000,,\n", oncologist)

    assert (draw.count_qualifier, draw.ctc_count) == ("", 1000)


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (">", "'>' is not a whole number of cells (0 or more), nor a lower bound such as >1000"),
        (">x", "is not a whole number of cells"),
        ("<5", "'<5' is not a whole number of cells"),
        (">=5", "is not a whole number of cells"),
        (">2000000", "not plausible"),
        ("²", "'²' is not a whole number of cells"),  # a digit to str.isdigit(), not to int()
    ],
)
def test_a_count_that_is_neither_a_number_nor_a_lower_bound_is_named(patient, count, message):
    plan = _plan(HEADER + f"MRN0001,2026-01-02 09:30,,resulted,{count},,\n")

    assert [(e.line, e.field) for e in plan.errors] == [(2, "ctc_count")]
    assert message in plan.errors[0].message


def test_a_lower_bound_on_a_draw_without_a_count_is_named(patient):
    plan = _plan(HEADER + "MRN0001,2026-01-02 09:30,,rejected,>1000,,\n")

    assert [str(e) for e in plan.errors] == [
        "line 2, ctc_count: a rejected draw has no count; leave it empty"
    ]


@pytest.mark.parametrize(
    ("cancer_type", "row_tail", "refused"),
    [
        ("breast", ",resulted,>4,,", True),
        ("breast", ",resulted,>5,,", False),
        ("breast", "10,resulted,>6,,", True),  # 4.5 per 7.5 mL on the tube's 10 mL
        ("breast", "6,resulted,>4,,", False),  # 5 per 7.5 mL
        ("colorectal", ",resulted,>2,,", True),
        ("colorectal", ",resulted,>3,,", False),
    ],
)
def test_a_lower_bound_below_the_patients_cut_off_is_refused(
    oncologist, cancer_type, row_tail, refused
):
    builders.patient(oncologist, mrn="CSV1", cancer_type=cancer_type)

    plan = _plan(HEADER + f"CSV1,2026-01-02 09:30,{row_tail}\n")

    errors = [(e.field, e.message.split(":")[0]) for e in plan.errors]
    assert errors == ([("ctc_count", BELOW_CUTOFF)] if refused else [])


@pytest.mark.parametrize("volume", ["0.9", "0.99", "10.01", "10.1", "0.5", "12"])
def test_a_volume_outside_1_to_10_ml_is_named_and_nothing_imported(patient, oncologist, volume):
    plan = _plan(HEADER + f"MRN0001,2026-01-02 09:30,{volume},resulted,3,,\n")

    assert [str(e) for e in plan.errors] == [
        "line 2, blood_volume_ml: must be from 1.0 to 10.0 mL (a CellSave tube holds 10 mL)"
    ]
    assert plan.new == []


@pytest.mark.parametrize("volume", ["1.0", "1", "10.0", "10"])
def test_a_volume_at_either_end_of_the_range_is_imported(patient, oncologist, volume):
    (draw,) = _import(HEADER + f"MRN0001,2026-01-02 09:30,{volume},resulted,3,,\n", oncologist)

    assert draw.blood_volume_ml == Decimal(volume)


def test_a_lower_bound_already_recorded_is_recognised_and_an_exact_count_is_not(
    patient, oncologist
):
    builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
        ctc_count=1000,
        count_qualifier=">",
        accession="CS-1",
    )

    again = _plan(HEADER + "MRN0001,2026-01-02 09:30,,resulted,>1000,CS-1,\n")
    exact = _plan(HEADER + "MRN0001,2026-01-02 09:30,,resulted,1000,CS-1,\n")

    assert (len(again.unchanged), again.errors) == (1, [])
    assert [e.field for e in exact.errors] == ["accession"]


# --- the export, and importing it back ---------------------------------------------------


def _export_rows(client, patient) -> list[dict[str, str]]:
    response = client.get(f"/patients/{patient.pk}/draws.csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_has_a_count_qualifier_column(client, oncologist, patient):
    builders.draw(patient, oncologist, drawn_at=datetime(2026, 1, 2, tzinfo=UTC), ctc_count=3)
    builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 9, tzinfo=UTC),
        ctc_count=1000,
        count_qualifier=">",
    )
    client.force_login(oncologist)

    rows = _export_rows(client, patient)

    assert list(rows[0])[4:6] == ["ctc_count", "count_qualifier"]
    assert [(r["ctc_count"], r["count_qualifier"]) for r in rows] == [("3", ""), ("1000", ">")]


def test_an_exported_lower_bound_imports_as_a_lower_bound(client, oncologist, patient):
    builders.draw(
        patient,
        oncologist,
        drawn_at=datetime(2026, 1, 9, tzinfo=UTC),
        ctc_count=1000,
        count_qualifier=">",
    )
    client.force_login(oncologist)
    exported = _export_rows(client, patient)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(exported[0]))
    writer.writeheader()
    writer.writerows(exported)

    (row,), errors = parse_csv(
        out.getvalue(), tz=timezone.get_current_timezone(), now=timezone.now()
    )

    assert errors == []
    assert (row.count_qualifier, row.ctc_count) == (">", 1000)
    assert plan_import([row], among=Patient.objects.all()).unchanged == [
        row
    ]  # the draw it came from


@pytest.mark.parametrize(
    ("qualifier", "status", "count", "message"),
    [
        ("<", "resulted", "3", "count_qualifier: '<' is not '>' (a lower bound) or empty"),
        (">", "failed", "", "count_qualifier: a failed draw has no count to bound"),
    ],
)
def test_a_bad_count_qualifier_column_is_named(patient, qualifier, status, count, message):
    header = "mrn,drawn_at,status,ctc_count,count_qualifier,accession,comment\n"

    plan = _plan(header + f"MRN0001,2026-01-02 09:30,{status},{count},{qualifier},,\n")

    (error,) = plan.errors
    assert str(error).startswith(f"line 2, {message}")


def test_the_upload_page_refuses_a_bad_volume_and_saves_nothing(client, oncologist, patient):
    client.force_login(oncologist)
    body = HEADER + "MRN0001,2026-01-02 09:30,12,resulted,3,,\n"

    r = client.post(
        "/imports/csv/", {"file": SimpleUploadedFile("v.csv", body.encode(), "text/csv")}
    )

    assertContains(r, "must be from 1.0 to 10.0 mL", status_code=r.status_code)
    assert not CTCDraw.objects.exists()
