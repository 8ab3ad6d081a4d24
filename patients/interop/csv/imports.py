"""CSV import of CTC draws: parse, plan against the record, report every problem.

`parse_csv` is pure (text in, rows and errors out). `plan_import` looks up
the patients and the draws already on record in a fixed number of queries and
sorts each row into "new", "unchanged" (already recorded: same accession, or
same patient, time and result) or an error naming the line and the field.
Nothing is written here: `importer.import_plan` writes a plan with no errors,
all or nothing (`services.import_draws`), and logs the import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from patients.models import (
    MAX_CTC_COUNT,
    MAX_ENTRY_VOLUME_ML,
    MIN_ENTRY_VOLUME_ML,
    STANDARD_VOLUME_ML,
    CountQualifier,
    CTCDraw,
    DrawStatus,
    Patient,
    censored_bound_error,
)
from patients.services.inputs import DrawInput

COLUMNS = [
    "mrn",
    "drawn_at",
    "blood_volume_ml",
    "status",
    "ctc_count",
    "count_qualifier",
    "accession",
    "comment",
]
# A lower bound is written in ctc_count (">1000"); the optional count_qualifier column
# (">" or empty) is read too, so that a file exported from CTC Track imports as it was.
REQUIRED_COLUMNS = [c for c in COLUMNS if c not in ("blood_volume_ml", "count_qualifier")]
LOCAL_FORMATS = ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
MAX_ERRORS_SHOWN = 500
# Look-ups go in batches: SQLite allows at most 32,766 parameters in one query.
LOOKUP_BATCH = 5000
# `DrawStatus.values` builds a new list on every access: once per row was half of parsing.
DRAW_STATUSES = frozenset(DrawStatus.values)

Fail = Callable[[str, str], None]


@dataclass(frozen=True)
class RowError:
    line: int  # the line number in the file, header = line 1
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.message}"


@dataclass(frozen=True)
class CsvRow(DrawInput):
    """A draw to import, and the line of the file it came from."""

    line: int

    def same_result(self, draw: CTCDraw) -> bool:
        return (
            draw.drawn_at == self.drawn_at
            and draw.status == self.status
            and draw.ctc_count == self.ctc_count
            and draw.count_qualifier == self.count_qualifier
            and draw.blood_volume_ml == self.blood_volume_ml
        )


@dataclass
class ImportPlan:
    new: list[CsvRow] = field(default_factory=list)
    unchanged: list[CsvRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    patients: dict[str, Patient] = field(default_factory=dict)  # by MRN

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})


# --- parsing (pure) ----------------------------------------------------------------------


def parse_csv(text: str, *, tz: tzinfo, now: datetime) -> tuple[list[CsvRow], list[RowError]]:
    """Rows and errors from a CSV text. Every bad field of every row is reported."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return [], [RowError(1, "header", f"missing column(s): {', '.join(missing)}")]
    reader.fieldnames = header
    rows: list[CsvRow] = []
    errors: list[RowError] = []
    for line, raw in enumerate(reader, start=2):
        if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
            continue  # a blank line
        row, row_errors = _parse_row(line, raw, tz=tz, now=now)
        errors.extend(row_errors)
        if row is not None:
            rows.append(row)
    return rows, errors


def _parse_row(
    line: int, raw: dict[str, str | None], *, tz: tzinfo, now: datetime
) -> tuple[CsvRow | None, list[RowError]]:
    errors: list[RowError] = []
    if None in raw:
        errors.append(RowError(line, "row", "more values than columns"))

    def value(name: str) -> str:
        return (raw.get(name) or "").strip()

    def fail(name: str, message: str) -> None:
        errors.append(RowError(line, name, message))

    mrn = value("mrn")
    if not mrn:
        fail("mrn", "required")
    drawn_at = _parse_time(value("drawn_at"), tz, now, fail)
    volume = _parse_volume(value("blood_volume_ml"), fail)
    status = _parse_status(value("status"), fail)
    qualifier, count = _parse_count(value("ctc_count"), status, fail)
    qualifier = _parse_qualifier(value("count_qualifier"), qualifier, status, fail)
    accession = value("accession")
    if len(accession) > 64:
        fail("accession", "at most 64 characters")
    comment = value("comment")
    for name, text in (("accession", accession), ("comment", comment), ("mrn", mrn)):
        if "\x00" in text:
            fail(name, "contains a NUL character")
    if errors:
        return None, errors
    assert mrn and drawn_at and volume is not None and status  # checked above
    row = CsvRow(
        mrn=mrn,
        drawn_at=drawn_at,
        blood_volume_ml=volume,
        status=status,
        ctc_count=count,
        count_qualifier=qualifier,
        accession=accession,
        comment=comment,
        line=line,
    )
    return row, []


def _parse_time(text: str, tz: tzinfo, now: datetime, fail: Fail) -> datetime | None:  # noqa: ANN001
    if not text:
        fail("drawn_at", "required")
        return None
    parsed = _iso_or_local(text, tz)
    if parsed is None:
        fail("drawn_at", f"'{text}' is not a date and time (use 2026-03-01 08:30)")
        return None
    if parsed > now:
        fail("drawn_at", "is in the future")
        return None
    return parsed


def _iso_or_local(text: str, tz: tzinfo) -> datetime | None:
    """ISO 8601 (with or without offset), or "YYYY-MM-DD HH:MM"; no offset = clinic time."""
    try:
        parsed = parse_datetime(text)
    except ValueError:
        parsed = None
    if parsed is None:
        for fmt in LOCAL_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)  # noqa: DTZ007 - made aware just below
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _parse_volume(text: str, fail: Fail) -> Decimal | None:  # noqa: ANN001
    if not text:
        return STANDARD_VOLUME_ML
    try:
        volume = Decimal(text)
    except InvalidOperation:
        fail("blood_volume_ml", f"'{text}' is not a number")
        return None
    if not volume.is_finite() or not MIN_ENTRY_VOLUME_ML <= volume <= MAX_ENTRY_VOLUME_ML:
        fail(
            "blood_volume_ml",
            f"must be from {MIN_ENTRY_VOLUME_ML} to {MAX_ENTRY_VOLUME_ML} mL "
            "(a CellSave tube holds 10 mL)",
        )
        return None
    if volume.as_tuple().exponent < -2:  # type: ignore[operator]
        fail("blood_volume_ml", "use at most 2 decimal places")
        return None
    return volume


def _parse_status(text: str, fail: Fail) -> str | None:  # noqa: ANN001
    status = text.lower()
    if status not in DRAW_STATUSES:
        shown = f"'{text}'" if text else "empty"
        fail("status", f"{shown} is not one of: {', '.join(DrawStatus.values)}")
        return None
    return status


def _parse_count(text: str, status: str | None, fail: Fail) -> tuple[str, int | None]:  # noqa: ANN001
    """The qualifier and the number: "12" is exactly 12; ">1000" or "> 1000" is more than 1000."""
    if status is not None and status != DrawStatus.RESULTED:
        if text:
            fail("ctc_count", f"a {status} draw has no count; leave it empty")
        return CountQualifier.EXACT, None
    if not text:
        fail("ctc_count", "a resulted draw needs a count (0 or more)")
        return CountQualifier.EXACT, None
    qualifier = CountQualifier.EXACT
    number = text
    if text.startswith(">"):
        qualifier, number = CountQualifier.MORE_THAN, text[1:].strip()
    if not (number.isascii() and number.isdigit()):  # "²" is a digit to isdigit(), not to int()
        fail(
            "ctc_count",
            f"'{text}' is not a whole number of cells (0 or more), nor a lower bound such as >1000",
        )
        return CountQualifier.EXACT, None
    count = int(number)
    if count > MAX_CTC_COUNT:
        fail("ctc_count", "above 1,000,000 cells is not plausible")
        return CountQualifier.EXACT, None
    return qualifier, count


def _parse_qualifier(text: str, typed: str, status: str | None, fail: Fail) -> str:  # noqa: ANN001
    """The count_qualifier column: ">" (the count is a lower bound) or empty (as typed)."""
    if text not in ("", CountQualifier.MORE_THAN):
        fail("count_qualifier", f"'{text}' is not '>' (a lower bound) or empty (an exact count)")
    elif text and status is not None and status != DrawStatus.RESULTED:
        fail("count_qualifier", f"a {status} draw has no count to bound; leave it empty")
    return CountQualifier.MORE_THAN if text else typed


# --- planning against the record -----------------------------------------------------------


def plan_import(rows: Sequence[CsvRow], errors: Iterable[RowError] = ()) -> ImportPlan:
    """Sort parsed rows into new, unchanged and errors; batched look-ups, no query per row."""
    plan = ImportPlan(errors=list(errors))
    plan.patients = {
        p.mrn: p for p in _batched(Patient.objects.all(), "mrn", {r.mrn for r in rows})
    }
    by_accession = {
        d.accession: d
        for d in _batched(
            CTCDraw.objects.select_related("patient"),
            "accession",
            {r.accession for r in rows if r.accession},
        )
    }
    existing = _existing_results(list(plan.patients.values()), rows)
    seen: dict[tuple, int] = {}
    # Looked up once: `timezone.localdate` per row was a fifth of planning.
    tz = timezone.get_current_timezone()
    for row in rows:
        _plan_row(row, plan, by_accession, existing, seen, tz)
    plan.errors.sort(key=lambda e: (e.line, e.field))
    return plan


def _batched(queryset: QuerySet, field_name: str, values: set) -> list:
    ordered = sorted(values)
    found: list = []
    for start in range(0, len(ordered), LOOKUP_BATCH):
        chunk = ordered[start : start + LOOKUP_BATCH]
        found.extend(queryset.filter(**{f"{field_name}__in": chunk}))
    return found


def _existing_results(patients: list[Patient], rows: Sequence[CsvRow]) -> set[tuple]:
    """(MRN, time, status, count, qualifier) of the draws on record in the file's time span."""
    if not rows or not patients:
        return set()
    first, last = min(r.drawn_at for r in rows), max(r.drawn_at for r in rows)
    mrn_of = {p.pk: p.mrn for p in patients}
    drawn = _batched(
        CTCDraw.objects.valid()
        .filter(drawn_at__range=(first, last))
        .only("patient_id", "drawn_at", "status", "ctc_count", "count_qualifier"),
        "patient_id",
        set(mrn_of),
    )
    return {
        (mrn_of[d.patient_id], d.drawn_at, d.status, d.ctc_count, d.count_qualifier) for d in drawn
    }


def _plan_row(
    row: CsvRow,
    plan: ImportPlan,
    by_accession: dict[str, CTCDraw],
    existing: set[tuple],
    seen: dict[tuple, int],
    tz: tzinfo,
) -> None:
    patient = plan.patients.get(row.mrn)
    if patient is None:
        plan.errors.append(RowError(row.line, "mrn", f"no patient with MRN '{row.mrn}'"))
        return
    if row.drawn_at.astimezone(tz).date() < patient.birth_date:  # the clinic's date
        plan.errors.append(RowError(row.line, "drawn_at", "is before the patient's birth date"))
        return
    if row.count_qualifier == CountQualifier.MORE_THAN and row.ctc_count is not None:
        bound_error = censored_bound_error(row.ctc_count, row.blood_volume_ml, patient.cancer_type)
        if bound_error:
            plan.errors.append(RowError(row.line, "ctc_count", bound_error))
            return
    key = (row.mrn, row.drawn_at, row.status, row.ctc_count, row.count_qualifier)
    dup_key = ("acc", row.accession) if row.accession else key
    if dup_key in seen:
        plan.errors.append(RowError(row.line, "row", f"repeats line {seen[dup_key]}"))
        return
    seen[dup_key] = row.line
    recorded = by_accession.get(row.accession) if row.accession else None
    if recorded is not None:
        if recorded.patient.mrn == row.mrn and row.same_result(recorded):
            plan.unchanged.append(row)
        else:
            plan.errors.append(
                RowError(
                    row.line,
                    "accession",
                    f"'{row.accession}' is already recorded with a different result; "
                    "correct that draw in CTC Track instead",
                )
            )
        return
    (plan.unchanged if key in existing else plan.new).append(row)
