"""Bulk imports of draws: all rows or none, by COPY on PostgreSQL, else by the ORM.

The CSV import (`patients.interop.csv`) plans and validates the rows first;
this writes them, each draw with its history row as a save would write it,
stores the patients' review ranks (COPY ranks the draws before writing them,
each with its rank; the ORM path refreshes the ranks after) and bumps the
patients' data versions.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from patients import assessment
from patients.models import CTCDraw, DrawStatus, Patient
from patients.services.inputs import DrawInput
from patients.services.records import CHANGE_REASON_MAX_LENGTH, Actor, acting_account

IMPORT_BATCH = 2000


@transaction.atomic
def import_draws(
    *,
    rows: Sequence[DrawInput],
    patients: Mapping[str, Patient],
    by: Actor,
    source: str,
    progress: Callable[[int], None] | None = None,
) -> list[int]:
    """Write planned, validated CSV rows as new draws: all of them or none.

    Each draw gets its history row as a save would (type "+", who imported it,
    "Imported from <source>"). Bulk writes, not row-by-row saves (which would
    take minutes for 100,000 rows): COPY on PostgreSQL, `bulk_create_with_history`
    elsewhere; the patients' review ranks (the lists' order) are stored in the same
    transaction. The caller plans the rows first (the CSV import's `plan_import`),
    which validates every field against the same rules as `record_draw`; the
    database constraints back that up, and any violation rolls back the lot.
    Returns the new draws' ids.
    """
    reason = f"Imported from {source}"[:CHANGE_REASON_MAX_LENGTH]
    write = _draw_writer()
    created = write(rows, patients=patients, by=by, reason=reason, progress=progress)
    touched = {patients[row.mrn].pk for row in rows}
    Patient.objects.filter(pk__in=touched).update(data_version=F("data_version") + 1)
    return created


# --- writing imported draws: COPY or the ORM, and their ranks ------------------------


DrawWriter = Callable[..., list[int]]


def _draw_writer() -> DrawWriter:
    """COPY where the database has it (PostgreSQL): about 3x the ORM path's rows per second."""
    return _copy_ranked if connection.vendor == "postgresql" else _create_then_rank


def _create_then_rank(
    rows: Sequence[DrawInput],
    *,
    patients: Mapping[str, Patient],
    by: Actor,
    reason: str,
    progress: Callable[[int], None] | None = None,
) -> list[int]:
    """The draws by `bulk_create_with_history`, then their patients' ranks refreshed."""
    created: list[int] = []
    for _, batch in _batches(rows, progress):
        created.extend(_bulk_create_draws(batch, patients=patients, by=by, reason=reason))
    assessment.refresh_review_ranks({patients[row.mrn].pk for row in rows})
    return created


def _copy_ranked(
    rows: Sequence[DrawInput],
    *,
    patients: Mapping[str, Patient],
    by: Actor,
    reason: str,
    progress: Callable[[int], None] | None = None,
) -> list[int]:
    """COPY the draws with their review ranks, ranked before they are written.

    The draws' ids are taken from the sequence first, so the patients' rows and
    the new draws are assessed together (`assessment.rank_with_unwritten`, which
    stores the ranks of what is on record where they changed); each draw then
    goes in with its own rank, instead of in empty and updated after (an
    `UPDATE` of every new row).
    """
    ids = _next_draw_ids(len(rows))
    unwritten = [
        assessment.DrawRow(
            id=pk,
            patient_id=patients[row.mrn].pk,
            drawn_at=row.drawn_at,
            blood_volume_ml=row.blood_volume_ml,
            status=row.status,
            ctc_count=row.ctc_count,
            count_qualifier=row.count_qualifier,
            entered_in_error=False,
            review_rank=None,
            review_acknowledged=False,
        )
        for pk, row in zip(ids, rows, strict=True)
    ]
    _, ranks = assessment.rank_with_unwritten({r.patient_id for r in unwritten}, unwritten)
    for start, batch in _batches(rows, progress):
        batch_ids = ids[start : start + len(batch)]
        _copy_draws(batch, ids=batch_ids, ranks=ranks, patients=patients, by=by, reason=reason)
    return ids


def _batches(
    rows: Sequence[DrawInput], progress: Callable[[int], None] | None
) -> Iterator[tuple[int, Sequence[DrawInput]]]:
    """The rows `IMPORT_BATCH` at a time, each with where it starts; `progress` is told
    how many once each batch is written."""
    for start in range(0, len(rows), IMPORT_BATCH):
        batch = rows[start : start + IMPORT_BATCH]
        yield start, batch
        if progress:
            progress(len(batch))


def _bulk_create_draws(
    rows: Sequence[DrawInput], *, patients: Mapping[str, Patient], by: Actor, reason: str
) -> list[int]:
    entered_by = acting_account(by)
    now = timezone.now()
    draws = [
        CTCDraw(
            patient=patients[row.mrn],
            drawn_at=row.drawn_at,
            blood_volume_ml=row.blood_volume_ml,
            status=row.status,
            ctc_count=row.ctc_count,
            count_qualifier=row.count_qualifier,
            accession=row.accession,
            comment=row.comment,
            entered_by=entered_by,
            resulted_at=now if row.status == DrawStatus.RESULTED else None,
        )
        for row in rows
    ]
    created = bulk_create_with_history(
        draws, CTCDraw, batch_size=IMPORT_BATCH, default_user=by, default_change_reason=reason
    )
    return [draw.pk for draw in created]


# The columns COPY writes, in order: every column of the draws table, and of its
# history table but the history row's own id. `_check_copy_columns` refuses to
# import when the models have columns these lists lack (a field added later).
COPY_DRAW_COLUMNS = (
    "id",
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
    "entered_at",
    "entered_in_error",
    "error_reason",
    "resulted_at",
)
# Derived columns the history does not keep: the review rank, as ranked before writing.
COPY_DRAW_ONLY_COLUMNS = ("review_rank", "review_acknowledged", "escalated_at")
COPY_HISTORY_COLUMNS = (
    *COPY_DRAW_COLUMNS,
    "history_date",
    "history_change_reason",
    "history_type",
    "history_user_id",
)


def _copy_draws(
    rows: Sequence[DrawInput],
    *,
    ids: Sequence[int],
    ranks: Mapping[int, tuple[int | None, bool]],
    patients: Mapping[str, Patient],
    by: Actor,
    reason: str,
) -> None:
    """The draws and their history rows, as `_bulk_create_draws` writes them, by COPY.

    Ids come from the table's own sequence (`_next_draw_ids`), and each draw's
    review rank from `ranks` (draw id -> rank, acknowledged). Values go in COPY's
    text format, so a draw costs no model instance and no parameter binding; the
    table's constraints still check every row, in the caller's transaction.
    """
    _check_copy_columns()
    now = timezone.now().isoformat()
    history_tail = f"\t{now}\t{_copy_text(reason)}\t+\t{by.pk}\n"
    draws, history = io.StringIO(), io.StringIO()
    for pk, row in zip(ids, rows, strict=True):
        count = r"\N" if row.ctc_count is None else str(row.ctc_count)
        resulted = now if row.status == DrawStatus.RESULTED else r"\N"
        line = (
            f"{pk}\t1\t{patients[row.mrn].pk}\t{row.drawn_at.isoformat()}\t"
            f"{row.blood_volume_ml}\t{row.status}\t{count}\t{row.count_qualifier}\t"
            f"{_copy_text(row.accession)}\t{_copy_text(row.comment)}\t{by.pk}\t{now}\tf\t\t{resulted}"
        )
        rank, acknowledged = ranks[pk]
        shown = r"\N" if rank is None else str(rank)
        draws.write(f"{line}\t{shown}\t{'t' if acknowledged else 'f'}\t\\N\n")
        history.write(line + history_tail)
    _copy(CTCDraw._meta.db_table, (*COPY_DRAW_COLUMNS, *COPY_DRAW_ONLY_COLUMNS), draws)
    _copy(CTCDraw.history.model._meta.db_table, COPY_HISTORY_COLUMNS, history)


def _check_copy_columns() -> None:
    history_model = CTCDraw.history.model
    expected = {
        CTCDraw: {*COPY_DRAW_COLUMNS, *COPY_DRAW_ONLY_COLUMNS},
        history_model: set(COPY_HISTORY_COLUMNS) | {history_model._meta.pk.column},
    }
    for model, columns in expected.items():
        actual = {f.column for f in model._meta.concrete_fields}
        if actual != columns:
            raise RuntimeError(
                f"The COPY import does not write {sorted(actual - columns)} of "
                f"{model._meta.db_table}: add them to services.bulk.COPY_DRAW_COLUMNS."
            )


def _next_draw_ids(count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [CTCDraw._meta.db_table, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and return escaped.

    The parser has refused NUL characters, which PostgreSQL's text cannot hold.
    """
    if not any(c in value for c in "\\\t\n\r"):
        return value
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy(table: str, columns: Sequence[str], data: io.StringIO) -> None:
    data.seek(0)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        # psycopg2's COPY FROM STDIN; the wrapper turns its errors into Django's.
        cursor.cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", data)
