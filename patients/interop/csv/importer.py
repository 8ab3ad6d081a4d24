"""The CSV import of draws as one use case: read the file, plan it, write it, log it.

The upload page (`views.confirm`) and `manage.py import_ctc` both import
through here, so a file is read against the record the same way and every
import leaves one access-log event. Parsing and planning are
`patients.interop.csv.imports`; writing is `services.import_draws`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from patients import access, audit, services, wording
from patients.interop.csv.imports import UTF8, ImportPlan, Limits, decode, plan_import, read_csv
from patients.models import AccessAction


def read_file(data: bytes) -> tuple[str, str]:
    """A file's text and the encoding it was read in (`imports.CsvFileError` if none fits)."""
    return decode(data)


def plan_csv(text: str, *, by: services.Actor, encoding: str = UTF8) -> ImportPlan:
    """A CSV text read and planned against the record as it is now, as `by` sees it
    (their care teams' patients).

    Times without an offset are clinic time; a time after now is refused. The
    site's settings say how else `drawn_at` may be written
    (`CTCTRACK_CSV_DATE_FORMAT`) and when checking stops
    (`CTCTRACK_CSV_MAX_ROWS`, `CTCTRACK_CSV_MAX_SECONDS`).
    """
    limits = Limits(
        max_rows=settings.CTCTRACK_CSV_MAX_ROWS,
        max_seconds=settings.CTCTRACK_CSV_MAX_SECONDS,
    )
    parsed = read_csv(
        text,
        tz=timezone.get_current_timezone(),
        now=timezone.now(),
        date_format=settings.CTCTRACK_CSV_DATE_FORMAT,
        limits=limits,
    )
    plan = plan_import(parsed.rows, parsed.errors, limits, among=access.patients(by))
    plan.encoding, plan.delimiter = encoding, parsed.delimiter
    plan.stopped = parsed.stopped or plan.stopped
    return plan


class ImportTooLong(Exception):
    """Saving ran past the time limit the plan was checked within: nothing was imported."""


def import_plan(
    plan: ImportPlan,
    *,
    by: services.Actor,
    source: str,
    channel: str,
    request: Any = None,
    progress: Callable[[int], None] | None = None,
    limits: Limits | None = None,
) -> int:
    """Write the new draws of a plan without errors, all or none, and log the import.

    `source` (the file's name) goes into each draw's history; `channel` says in
    the access log how the file came in. `request`: the page's request, if any.
    `limits`: a time limit for checking and saving together (the plan's, whose
    clock started when checking did): past it, saving stops between two batches
    and its transaction is rolled back (`ImportTooLong`), so a web worker is never
    killed mid-import by its timeout. Returns how many draws were added.
    """
    if not plan.ok:
        raise ValueError("A plan with errors imports nothing: show them instead.")

    def saved(count: int) -> None:
        if progress:
            progress(count)
        if limits is not None and limits.overtime():
            raise ImportTooLong(limits.overtime_saving())  # rolls back import_draws

    services.import_draws(
        rows=plan.new, patients=plan.patients, by=by, source=source, progress=saved
    )
    audit.record_read(
        request,
        AccessAction.IMPORT,
        patient_ids=[plan.patients[row.mrn].pk for row in plan.new],
        what=f"{channel}: {wording.how_many(len(plan.new), 'draw')} added",
        user=by,
    )
    return len(plan.new)


def import_csv(
    text: str,
    *,
    by: services.Actor,
    source: str,
    channel: str,
    request: Any = None,
    encoding: str = UTF8,
) -> ImportPlan:
    """Plan a CSV text and import its new draws if every row is good; returns the plan.

    Nothing is written when a row has an error or no row is new: the plan says why.
    """
    plan = plan_csv(text, by=by, encoding=encoding)
    if plan.ok and plan.new:
        import_plan(plan, by=by, source=source, channel=channel, request=request)
    return plan
