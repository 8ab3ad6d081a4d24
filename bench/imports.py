"""CSV import speed: the app's import, its ORM path, and bare inserts of the same rows.

Used by `bench/run.py` inside a configured Django (PostgreSQL only). Every
measured import runs in a transaction that is rolled back, so each repetition
meets the same tables and the cohort is left as it was.

- app: `parse_csv`, `plan_import` and `services.import_draws` as the upload
  page runs them; on PostgreSQL the draws and their history rows go in by COPY.
- ORM path: the same parsing and planning, then the draws and their history
  rows through `bulk_create_with_history` and the patients' ranks refreshed
  after (what SQLite uses, and what PostgreSQL used before COPY).
- bare: the rows parsed by the csv module and inserted with psycopg2's
  `execute_values` into the draws table itself (same indexes and constraints,
  no validation, no history): the floor the targets are measured against.
- bare, temporary table: the same into a temporary table without indexes or
  WAL, for reference.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from psycopg2.extras import execute_values

from patients import assessment, services
from patients.interop.csv.imports import parse_csv, plan_import
from patients.models import CTCDraw, Patient
from patients.services import bulk

HEADER = "mrn,drawn_at,blood_volume_ml,status,ctc_count,accession,comment"
# Before every synthetic draw, after every synthetic birth: no row clashes with the cohort.
FIRST_DRAW = datetime(2019, 1, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class ImportTimes:
    rows: int
    app: float  # seconds, median
    orm: float
    bare: float
    bare_temp: float
    runs: int
    # Of the app's import, seconds in its rank step (`assessment.rank_with_unwritten`:
    # load the touched patients' rows, assess them with the new draws, store what
    # changed), median; and how many patients and tubes that step assessed.
    app_ranking: float | None = None
    ranked_patients: int | None = None
    ranked_tubes: int | None = None


def make_csv(mrns: Sequence[str], rows: int, seed: int = 7) -> str:
    """`rows` resulted draws spread over the given patients, one minute apart."""
    rng = random.Random(seed)
    lines = [HEADER]
    for k in range(rows):
        when = FIRST_DRAW + timedelta(minutes=k)
        count = rng.randint(0, 40)
        lines.append(f"{mrns[k % len(mrns)]},{when.isoformat()},7.5,resulted,{count},IMP{k:07d},")
    return "\n".join(lines) + "\n"


def make_morning_csv(mrns: Sequence[str], rows: int, *, now: datetime, seed: int = 11) -> str:
    """A lab's morning file: one result for each of `rows` patients spread over the
    cohort, drawn in the last `rows` minutes, after every draw on record (the cohort's
    draws are at most days old). What a clinic imports each day, unlike `make_csv`'s
    history, which comes before every draw and so changes every later assessment."""
    rng = random.Random(seed)
    step = max(1, len(mrns) // rows)
    lines = [HEADER]
    for k, mrn in enumerate(mrns[::step][:rows]):
        when = now - timedelta(minutes=rows - k)
        lines.append(f"{mrn},{when.isoformat()},7.5,resulted,{rng.randint(0, 40)},AM{k:05d},")
    return "\n".join(lines) + "\n"


def measure(text: str, *, runs: int, patient_ids: Mapping[str, int]) -> ImportTimes:
    """Median seconds of each way to import `text`, interleaved run by run."""
    by = services.system_user("csv-import")
    ways: dict[str, Callable[[], None]] = {
        "app": lambda: _app_import(text, by),
        "orm": lambda: _orm_import(text, by),
        "bare": lambda: _bare_insert(text, patient_ids, "patients_ctcdraw"),
        "bare_temp": lambda: _bare_insert(text, patient_ids, "bare_draw"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    ranking = RankStep()
    for _ in range(runs):
        for name, way in ways.items():
            if name == "app":
                with ranking.timed():
                    seconds[name].append(rolled_back(way))
            else:
                seconds[name].append(rolled_back(way))
    rows = text.count("\n") - 1
    return ImportTimes(
        rows=rows,
        runs=runs,
        **{k: _median(v) for k, v in seconds.items()},
        app_ranking=_median(ranking.seconds),
        ranked_patients=len(ranking.patient_ids),
        ranked_tubes=ranking.tubes(),
    )


class RankStep:
    """Times the app import's rank step: `assessment.rank_with_unwritten`, as
    `services.bulk` calls it, wrapped while `timed` is open."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.patient_ids: set[int] = set()
        self.unwritten = 0

    def tubes(self) -> int:
        """The tubes the rank step assessed: those on record (counted outside the
        import, which is rolled back) and the new ones."""
        on_record = CTCDraw.objects.filter(patient__in=self.patient_ids, entered_in_error=False)
        return on_record.count() + self.unwritten

    @contextmanager
    def timed(self) -> Iterator[None]:
        real = assessment.rank_with_unwritten

        def rank(patient_ids: Any, unwritten: Sequence[Any]) -> Any:
            ids = set(patient_ids)
            began = time.perf_counter()
            found = real(ids, unwritten)
            self.seconds.append(time.perf_counter() - began)
            self.patient_ids, self.unwritten = ids, len(unwritten)
            return found

        assessment.rank_with_unwritten = rank
        try:
            yield
        finally:
            assessment.rank_with_unwritten = real


def rolled_back(work: Callable[[], Any]) -> float:
    """Seconds `work` takes inside a transaction that is then rolled back."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Foreign keys are checked at commit, which never comes here: check them as
            # each row goes in instead, so the work measured is a committed import's.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        began = time.perf_counter()
        work()
        elapsed = time.perf_counter() - began
        transaction.set_rollback(True)
    return elapsed


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _plan(text: str) -> Any:
    rows, errors = parse_csv(text, tz=timezone.get_current_timezone(), now=timezone.now())
    plan = plan_import(rows, errors, among=Patient.objects.all())
    if not plan.ok or len(plan.new) != len(rows):
        raise RuntimeError(f"The benchmark file does not import cleanly: {plan.errors[:3]}")
    return plan


def _app_import(text: str, by: Any) -> None:
    plan = _plan(text)
    services.import_draws(rows=plan.new, patients=plan.patients, by=by, source="bench.csv")


def _orm_import(text: str, by: Any) -> None:
    """`services.import_draws` as it writes on SQLite: `bulk_create_with_history`."""
    plan = _plan(text)
    reason = "Imported from bench.csv"
    bulk._create_then_rank(plan.new, patients=plan.patients, by=by, reason=reason)
    touched = {plan.patients[row.mrn].pk for row in plan.new}
    Patient.objects.filter(pk__in=touched).update(data_version=F("data_version") + 1)


# --- the floor ---------------------------------------------------------------------------


def _bare_insert(text: str, patient_ids: Mapping[str, int], table: str) -> None:
    with connection.cursor() as cursor:
        if table == "bare_draw":
            cursor.execute(
                "CREATE TEMP TABLE bare_draw (LIKE patients_ctcdraw "
                "INCLUDING DEFAULTS INCLUDING IDENTITY) ON COMMIT DROP"
            )
        values = [
            (
                patient_ids[r["mrn"]],
                r["drawn_at"],
                r["blood_volume_ml"],
                r["status"],
                int(r["ctc_count"]),
                r["accession"],
                r["comment"],
            )
            for r in csv.DictReader(io.StringIO(text))
        ]
        execute_values(
            cursor.cursor,
            f"INSERT INTO {table} (version, patient_id, drawn_at, blood_volume_ml, status, "
            "ctc_count, accession, comment, entered_by_id, entered_at, entered_in_error, "
            "error_reason, count_qualifier, resulted_at, review_acknowledged) "
            "SELECT 1, v.*, (SELECT min(id) FROM auth_user), now(), false, '', '', "
            "CASE WHEN v.status = 'resulted' THEN now() END, false "
            "FROM (VALUES %s) AS v(patient_id, drawn_at, blood_volume_ml, status, ctc_count, "
            "accession, comment)",
            values,
            template="(%s, %s::timestamptz, %s::numeric, %s, %s, %s, %s)",
            page_size=2000,
        )


# --- equivalence -------------------------------------------------------------------------


def orm_matches_app(text: str) -> bool:
    """Whether the ORM path writes the same draws and history rows as the app (ids aside)."""
    by = services.system_user("csv-import")

    def written(import_: Callable[[str, Any], None]) -> list[tuple]:
        with transaction.atomic():
            import_(text, by)
            rows = _written_rows()
            transaction.set_rollback(True)
        return rows

    return written(_app_import) == written(_orm_import)


def _written_rows() -> list[tuple]:
    # Times of the import itself differ between two imports: whether they are set is compared.
    moments = ("entered_at", "resulted_at")
    compared = [c for c in bulk.COPY_DRAW_COLUMNS if c not in ("id", *moments)]
    columns = ", ".join(
        [f"d.{c}" for c in compared]
        + [f"h.{c}" for c in compared]
        + [f"d.{c} IS NOT NULL AND h.{c} = d.{c}" for c in moments if c in bulk.COPY_DRAW_COLUMNS]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}, h.history_type, h.history_change_reason, h.history_user_id "
            "FROM patients_ctcdraw d JOIN patients_historicalctcdraw h ON h.id = d.id "
            "WHERE d.accession LIKE 'IMP%%' ORDER BY d.accession"
        )
        return cursor.fetchall()
