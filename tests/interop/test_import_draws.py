"""`services.import_draws`: COPY on PostgreSQL, `bulk_create_with_history` elsewhere.

Both paths must write the same draws and the same history rows, in one
transaction: a failure anywhere leaves nothing of the import behind.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from patients import services
from patients.interop.csv.imports import ImportPlan, parse_csv, plan_import
from patients.models import CTCDraw, Patient
from patients.services import bulk

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="COPY is PostgreSQL's; SQLite has the ORM path"
)

HEADER = "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment\n"
# Values COPY's text format must escape (tab, newline, return, backslash), quotes,
# accents, a count of 0, no count, a lower bound, no accession, an offset, volumes
# other than 7.5.
AWKWARD = HEADER + (
    'MRN0001,2026-01-02 09:30,,resulted,0,AW-1,"tab\there"\n'
    'MRN0001,2026-01-03T10:00:00+02:00,10,resulted,>12,AW-2,"two\nlines, \\N and C:\\tmp"\n'
    'MRN0001,2026-01-04 08:00,7.25,rejected,,,"back\\slash \\\\ and ""quotes"""\n'
    'MRN0001,2026-01-05 08:00,7.5,resulted,1000000,AW\\4,"Bénédicte ✓ \r\n return"\n'
    "MRN0001,2026-01-06 08:00,7.5,pending,,AW-5,\n"
)
DRAW_FIELDS = [
    "version",
    "patient_id",
    "drawn_at",
    "blood_volume_ml",
    "status",
    "ctc_count",
    "count_qualifier",
    "accession",
    "comment",
    "entered_by_id",
    "entered_in_error",
    "error_reason",
]
HISTORY_FIELDS = [*DRAW_FIELDS, "history_type", "history_change_reason", "history_user_id"]


def _plan(text: str) -> ImportPlan:
    rows, errors = parse_csv(text, tz=timezone.get_current_timezone(), now=timezone.now())
    plan = plan_import(rows, errors, among=Patient.objects.all())
    assert plan.ok and len(plan.new) == len(rows), plan.errors
    return plan


def _written_by(writer, plan: ImportPlan, by) -> tuple[list[dict], list[dict], list[int]]:
    """The rows one writer puts in the draws and history tables, rolled back afterwards."""
    with transaction.atomic():
        ids = writer(plan.new, patients=plan.patients, by=by, reason="Imported from awkward.csv")
        written = CTCDraw.objects.filter(pk__in=ids).order_by("drawn_at")
        # The review ranks too: COPY writes them as ranked before, the ORM path after.
        draws = list(written.values(*DRAW_FIELDS, "review_rank", "review_acknowledged"))
        history = CTCDraw.history.filter(id__in=ids).order_by("drawn_at")
        rows = list(history.values(*HISTORY_FIELDS))
        history_ids = list(history.values_list("id", flat=True))
        transaction.set_rollback(True)
    assert sorted(history_ids) == sorted(ids)  # one history row per draw, by the draw's id
    return draws, rows, ids


def test_postgresql_imports_by_copy_and_sqlite_by_the_orm():
    expected = {"postgresql": bulk._copy_ranked, "sqlite": bulk._create_then_rank}

    assert bulk._draw_writer() is expected[connection.vendor]


@postgresql_only
def test_copy_writes_exactly_the_rows_the_orm_path_writes(patient, oncologist):
    plan = _plan(AWKWARD)

    copied, copied_history, copied_ids = _written_by(bulk._copy_ranked, plan, oncologist)
    created, created_history, _ = _written_by(bulk._create_then_rank, plan, oncologist)

    assert len(copied) == len(copied_history) == len(copied_ids) == 5
    assert copied == created
    assert copied_history == created_history
    assert {h["history_type"] for h in copied_history} == {"+"}


@postgresql_only
def test_copy_keeps_awkward_text_exactly(patient, oncologist):
    plan = _plan(AWKWARD)

    services.import_draws(rows=plan.new, patients=plan.patients, by=oncologist, source="a.csv")

    draws = list(CTCDraw.objects.order_by("drawn_at"))
    assert [d.comment for d in draws] == [
        "tab\there",
        "two\nlines, \\N and C:\\tmp",
        'back\\slash \\\\ and "quotes"',
        "Bénédicte ✓ \r\n return",
        "",
    ]
    assert [d.accession for d in draws] == ["AW-1", "AW-2", "", "AW\\4", "AW-5"]
    assert [d.ctc_count for d in draws] == [0, 12, None, 1_000_000, None]
    assert [d.count_qualifier for d in draws] == ["", ">", "", "", ""]
    assert [d.blood_volume_ml for d in draws] == [
        Decimal(v) for v in ["7.5", "10", "7.25", "7.5", "7.5"]
    ]
    assert draws[1].drawn_at == datetime(2026, 1, 3, 8, tzinfo=UTC)
    (record,) = draws[0].history.all()
    assert (record.history_user, record.history_change_reason) == (
        oncologist,
        "Imported from a.csv",
    )


def test_an_import_bumps_each_patient_data_version_once(patient, oncologist):
    before = Patient.objects.get(pk=patient.pk).data_version
    plan = _plan(AWKWARD)

    ids = services.import_draws(rows=plan.new, patients=plan.patients, by=oncologist, source="a")

    assert len(ids) == 5
    assert Patient.objects.get(pk=patient.pk).data_version == before + 1
    assert CTCDraw.history.filter(id__in=ids).count() == 5


def test_a_failure_in_a_later_batch_leaves_nothing_of_the_import(patient, oncologist):
    rows = 2 * bulk.IMPORT_BATCH + 10  # three batches; the clash is in the last
    start = datetime(2020, 1, 1, 8, tzinfo=UTC)
    text = HEADER + "".join(
        f"MRN0001,{(start + timedelta(minutes=k)).isoformat()},7.5,resulted,{k % 40},B-{k},\n"
        for k in range(rows)
    )
    plan = _plan(text)
    # Recorded after the plan was made (a lab interface, say): the import's last
    # batch now clashes with it on the accession.
    services.record_draw(
        patient=patient,
        by=oncologist,
        drawn_at=datetime(2026, 1, 2, 9, tzinfo=UTC),
        ctc_count=3,
        accession=f"B-{rows - 1}",
    )
    version = Patient.objects.get(pk=patient.pk).data_version

    with pytest.raises(IntegrityError):
        services.import_draws(rows=plan.new, patients=plan.patients, by=oncologist, source="b")

    assert CTCDraw.objects.count() == 1
    assert CTCDraw.history.count() == 1
    assert Patient.objects.get(pk=patient.pk).data_version == version
