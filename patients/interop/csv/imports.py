"""CSV import of CTC draws: decode, parse, plan against the record, report every problem.

`decode` turns a file's bytes into text (UTF-8, UTF-16 with a byte-order mark
as Excel's "Unicode Text" saves it, Windows-1252 as Excel's "CSV (Comma
delimited)" saves it on Windows, or Mac Roman as Excel for Mac's "CSV
(Macintosh)" saves it, lines ending with CR alone) and says which it read. `parse_csv` is pure
(text in, rows and errors out): it finds the delimiter from the header (comma,
semicolon or tab), refuses unknown columns, and stops with a clear message on a
file it cannot read on, too many rows, too many errors or too much time.
`plan_import` looks up the patients and the draws already on record in a fixed
number of queries and sorts each row into "new", "unchanged" (already
recorded: same accession, or, for a row without one, same patient, time and
result) or an error naming the line and the field; it warns of draws on the
same day as another draw of the patient. Nothing is written here:
`importer.import_plan` writes a plan with no errors, all or nothing
(`services.import_draws`), and logs the import.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from patients.interop.csv.exports import HEADER as export_header
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
from patients.wording import noun_for, time_text, volume_text

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
REQUIRED_COLUMNS = ["mrn", "drawn_at", "status", "ctc_count"]
OPTIONAL_COLUMNS = [c for c in COLUMNS if c not in REQUIRED_COLUMNS]
# The other columns of CTC Track's own export, so that an export imports as it was: what
# the rules computed (read and ignored: computed again), and whether a draw was entered
# in error (such a row is refused: it is not imported as a valid draw).
EXPORT_COLUMNS = [c for c in export_header if c not in COLUMNS]
# The delimiters a spreadsheet writes: comma; semicolon where the comma is the decimal
# separator (European Excel); tab in Excel's "Unicode Text".
DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}
# How `drawn_at` may be written besides ISO 8601 (settings.CTCTRACK_CSV_DATE_FORMAT).
ISO_ONLY, DAY_FIRST, MONTH_FIRST = "iso", "day-first", "month-first"
DATE_FORMATS = (ISO_ONLY, DAY_FIRST, MONTH_FIRST)
# Errors listed on the preview and by the command; checking stops after MAX_ERRORS.
ERRORS_LISTED = 200
MAX_ERRORS = 1000
WARNINGS_LISTED = 200
# Look-ups go in batches: SQLite allows at most 32,766 parameters in one query.
LOOKUP_BATCH = 5000
T = TypeVar("T")
# `DrawStatus.values` builds a new list on every access: once per row was half of parsing.
DRAW_STATUSES = frozenset(DrawStatus.values)

FORMAT_HINT = (
    "format the drawn_at column as yyyy-mm-dd hh:mm (in Excel: Format Cells, Custom, "
    "yyyy-mm-dd hh:mm) so that it reads like 2026-12-03 08:30"
)
_ISO_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?"
)
_DATE_ONLY = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2}(\d{2})?")
_SLASHED = re.compile(
    r"(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<year>\d{2}|\d{4})"
    r"[ T]+(?P<hour>\d{1,2}):(?P<minute>\d{2})(:(?P<second>\d{2}))?\s*(?P<half>[AaPp][Mm])?"
)
_SERIAL = re.compile(r"\d{5}(\.\d+)?")  # a spreadsheet's day number, e.g. 46359.35417
_SCIENTIFIC = re.compile(r"[+-]?\d+([.,]\d+)?[Ee][+-]?\d+")  # 2.09231E+11
_DECIMAL_COMMA = re.compile(r"\d+,\d+")

Fail = Callable[[str, str], None]


class CsvFileError(ValueError):
    """The file cannot be read as text at all: what to do instead."""


@dataclass(frozen=True)
class RowError:
    line: int  # the line number in the file, header = line 1
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.message}"


RowWarning = RowError  # the same shape: a line, a field and what to check


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
class Limits:
    """When checking a file stops: rows, errors, seconds from `started` (None: no limit)."""

    max_rows: int | None = None
    max_errors: int = MAX_ERRORS
    max_seconds: float | None = None
    started: float = field(default_factory=time.monotonic)

    def overtime(self) -> bool:
        return self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds

    def overtime_saving(self) -> str:
        return (
            f"Importing took more than {self.max_seconds:g} s, checking and saving together: "
            "nothing was imported. Split the file into smaller ones, or import it with "
            "the command (manage.py import_ctc)."
        )

    def overtime_error(self, line: int) -> RowError:
        return RowError(
            line,
            "file",
            f"checking took more than {self.max_seconds:g} s: split the file into smaller ones",
        )


@dataclass
class ParsedCsv:
    rows: list[CsvRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    delimiter: str = ","
    stopped: str = ""  # why checking stopped before the end of the file, if it did


@dataclass
class ImportPlan:
    new: list[CsvRow] = field(default_factory=list)
    unchanged: list[CsvRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    patients: dict[str, Patient] = field(default_factory=dict)  # by MRN
    encoding: str = "UTF-8"  # how the file's bytes were read
    delimiter: str = ","
    stopped: str = ""  # why checking stopped before the end of the file, if it did
    limits: Limits | None = None  # what it was checked within; its clock runs on

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    @property
    def errors_listed(self) -> list[RowError]:
        return self.errors[:ERRORS_LISTED]

    @property
    def errors_not_listed(self) -> int:
        return max(len(self.errors) - ERRORS_LISTED, 0)

    @property
    def warnings_listed(self) -> list[RowWarning]:
        return self.warnings[:WARNINGS_LISTED]

    @property
    def warnings_not_listed(self) -> int:
        return max(len(self.warnings) - WARNINGS_LISTED, 0)

    @property
    def read_as(self) -> str:
        """How the file was read, in words: "UTF-8 text, separated by commas"."""
        return f"{self.encoding} text, values separated by {DELIMITERS.get(self.delimiter, '?')}"


# --- decoding (pure) -----------------------------------------------------------------------

UTF8, UTF16, WINDOWS_1252, MAC_ROMAN = "UTF-8", "UTF-16", "Windows-1252", "Mac Roman"
SAVE_AS_UTF8 = 'in Excel, save it as "CSV UTF-8 (Comma delimited) (*.csv)"'


def decode(data: bytes) -> tuple[str, str]:
    """The text of a file and the encoding it was read in; CsvFileError if none fits.

    A byte-order mark decides (UTF-8, or UTF-16 as Excel's "Unicode Text"
    writes it); otherwise UTF-8, and for a file that is not valid UTF-8, Mac
    Roman when its lines end with CR alone (Excel for Mac's "CSV (Macintosh)":
    no Windows program writes such lines), else Windows-1252 (Excel's "CSV
    (Comma delimited)" on Windows). Mac Roman is never guessed otherwise: it
    reads any bytes at all, and its accented letters are Windows-1252's
    punctuation, so a guess would change a comment's words without a word said.
    """
    try:
        if data.startswith(codecs.BOM_UTF8):
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), UTF8
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16"), UTF16
        if _looks_utf16(data, 1):
            return data.decode("utf-16-le"), UTF16
        if _looks_utf16(data, 0):
            return data.decode("utf-16-be"), UTF16
    except UnicodeDecodeError as exc:
        raise CsvFileError(
            f"The file starts like {_name_of(data)} text but is not valid {_name_of(data)} "
            f"(byte {exc.start + 1}); {SAVE_AS_UTF8}."
        ) from exc
    try:
        return data.decode("utf-8"), UTF8
    except UnicodeDecodeError:
        pass
    if b"\r" in data and b"\n" not in data:
        return data.decode("mac_roman"), MAC_ROMAN
    try:
        return data.decode("cp1252"), WINDOWS_1252
    except UnicodeDecodeError as exc:
        raise CsvFileError(
            f"The file is neither UTF-8 nor Windows-1252 text (byte {exc.start + 1}); "
            f"{SAVE_AS_UTF8}."
        ) from exc


def _looks_utf16(data: bytes, zero_at: int) -> bool:
    """UTF-16 without a byte-order mark: every other byte of the ASCII header is 0."""
    head = data[:64]
    return len(head) >= 8 and not any(head[zero_at::2]) and all(head[1 - zero_at :: 2])


def _name_of(data: bytes) -> str:
    return UTF8 if data.startswith(codecs.BOM_UTF8) else UTF16


# --- parsing (pure) ----------------------------------------------------------------------


def parse_csv(
    text: str,
    *,
    tz: tzinfo,
    now: datetime,
    date_format: str = ISO_ONLY,
    limits: Limits | None = None,
) -> tuple[list[CsvRow], list[RowError]]:
    """Rows and errors from a CSV text. Every bad field of every row is reported."""
    parsed = read_csv(text, tz=tz, now=now, date_format=date_format, limits=limits)
    return parsed.rows, parsed.errors


def read_csv(
    text: str,
    *,
    tz: tzinfo,
    now: datetime,
    date_format: str = ISO_ONLY,
    limits: Limits | None = None,
) -> ParsedCsv:
    """Rows, errors, the delimiter found, and why checking stopped early, if it did."""
    limits = limits or Limits()
    text = text.removeprefix("\ufeff")
    parsed = ParsedCsv(delimiter=_delimiter(text))
    records = _records(text, parsed.delimiter)
    try:
        first = next(records)
    except StopIteration:
        parsed.errors.append(RowError(1, "header", "the file is empty"))
        return parsed
    if isinstance(first, RowError):
        parsed.errors.append(first)
        return parsed
    _, names = first
    header = [h.strip().lower() for h in names]
    header_errors = _header_errors(names, header)
    if header_errors:
        parsed.errors.extend(RowError(1, "header", message) for message in header_errors)
        return parsed
    row_count = 0
    for record in records:
        if isinstance(record, RowError):
            parsed.errors.append(record)
            parsed.stopped = f"Checking stopped at line {record.line}: the file cannot be read on."
            break
        line, values = record
        if not any(v.strip() for v in values):
            continue  # a blank line
        row_count += 1
        if limits.max_rows is not None and row_count > limits.max_rows:
            parsed.errors.append(
                RowError(
                    line,
                    "file",
                    f"more than {limits.max_rows:,} rows: split the file into smaller ones",
                )
            )
            parsed.stopped = f"Checking stopped at line {line}: too many rows."
            break
        if limits.overtime():
            parsed.errors.append(limits.overtime_error(line))
            parsed.stopped = f"Checking stopped at line {line}: it took too long."
            break
        row, row_errors = _parse_row(
            line,
            header,
            values,
            tz=tz,
            now=now,
            date_format=date_format,
            delimiter=parsed.delimiter,
        )
        parsed.errors.extend(row_errors)
        if row is not None:
            parsed.rows.append(row)
        if len(parsed.errors) >= limits.max_errors:
            parsed.stopped = (
                f"Checking stopped at line {line} after {len(parsed.errors):,} problems: "
                "correct these and upload the file again."
            )
            break
    return parsed


def _delimiter(text: str) -> str:
    """The delimiter that splits the header into the most known column names (comma if none)."""
    first_line = re.split(r"\r\n?|\n", text, maxsplit=1)[0]  # CR alone: a Mac's lines

    def known(delimiter: str) -> int:
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        return sum(c.strip().lower() in COLUMNS for c in cells)

    best = max(DELIMITERS, key=known)  # ties go to the first: the comma
    return best if known(best) else ","


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]] | RowError]:
    """(line, values) per record, header first; a RowError where the csv module gives up.

    Lines are counted as records, as a spreadsheet numbers its rows (a value with a line
    break inside its quotes does not shift the numbering).
    """
    csv_field_limit = csv.field_size_limit()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    line = 0
    while True:
        line += 1
        try:
            yield line, next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = str(exc)
            if "field limit" in reason:
                message = (
                    f"a value is longer than {csv_field_limit:,} characters "
                    "(often a quote that is never closed)"
                )
            elif "unexpected end of data" in reason:
                message = 'a quote (") opened here is never closed'
            elif "expected after" in reason:
                message = (
                    'a quoted value must end with a quote (") followed by the delimiter; '
                    'write a quote inside a quoted value as two ("")'
                )
            else:
                message = f"the file cannot be read as CSV here ({reason})"
            yield RowError(line, "row", f"{message}; nothing after this line was checked")
            return


def _header_errors(names: list[str], header: list[str]) -> list[str]:
    errors = []
    known = (*COLUMNS, *EXPORT_COLUMNS)
    unknown = [n.strip() for n, h in zip(names, header, strict=True) if h and h not in known]
    if unknown:
        errors.append(
            f"unknown {noun_for(len(unknown), 'column')} "
            f"{', '.join(repr(u) for u in unknown)}: the columns are "
            f"{', '.join(REQUIRED_COLUMNS)} (required) and {', '.join(OPTIONAL_COLUMNS)} "
            "(optional), besides those of CTC Track's own export; rename or remove the others"
        )
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        errors.append(f"{noun_for(len(twice), 'column')} named more than once: {', '.join(twice)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        errors.append(f"missing {noun_for(len(missing), 'column')}: {', '.join(missing)}")
    return errors


def _parse_row(
    line: int,
    header: list[str],
    values: list[str],
    *,
    tz: tzinfo,
    now: datetime,
    date_format: str = ISO_ONLY,
    delimiter: str = ",",
) -> tuple[CsvRow | None, list[RowError]]:
    errors: list[RowError] = []
    raw = dict(zip(header, values, strict=False))
    if any(v.strip() for v in values[len(header) :]):
        errors.append(RowError(line, "row", "more values than columns"))
    if any(v.strip() for h, v in zip(header, values, strict=False) if not h):
        errors.append(RowError(line, "row", "a value in a column with no name in the header"))

    def value(name: str) -> str:
        return (raw.get(name) or "").strip()

    def fail(name: str, message: str) -> None:
        errors.append(RowError(line, name, message))

    mrn = value("mrn")
    if not mrn:
        fail("mrn", "required")
    drawn_at = _parse_time(value("drawn_at"), tz, now, fail, date_format)
    volume = _parse_volume(value("blood_volume_ml"), fail, decimal_comma=delimiter != ",")
    status = _parse_status(value("status"), fail)
    qualifier, count = _parse_count(value("ctc_count"), status, fail)
    qualifier = _parse_qualifier(value("count_qualifier"), qualifier, status, fail)
    if value("entered_in_error").lower() not in ("", "no"):
        fail("entered_in_error", "this draw was entered in error: remove the row")
    accession = value("accession")
    if len(accession) > 64:
        fail("accession", "at most 64 characters")
    comment = value("comment")
    for name, text in (("accession", accession), ("comment", comment), ("mrn", mrn)):
        if "\x00" in text:
            fail(name, "contains a NUL character")
    for name, text in (("accession", accession), ("mrn", mrn)):
        if _SCIENTIFIC.fullmatch(text):
            fail(
                name,
                f"'{text}' is a number the spreadsheet shortened to scientific notation "
                "(its last digits are lost): format the column as Text and enter the "
                "values again, or take them from the lab's original file",
            )
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


def _parse_time(
    text: str, tz: tzinfo, now: datetime, fail: Fail, date_format: str = ISO_ONLY
) -> datetime | None:
    if not text:
        fail("drawn_at", "required")
        return None
    parsed, problem = _read_time(text, date_format)
    if parsed is None:
        fail("drawn_at", problem)
        return None
    if parsed.tzinfo is None:
        problem = clinic_time_problem(parsed, tz)
        if problem:
            fail("drawn_at", problem)
            return None
        parsed = parsed.replace(tzinfo=tz)
    if parsed > now:
        fail("drawn_at", "is in the future")
        return None
    return parsed


def _read_time(text: str, date_format: str) -> tuple[datetime | None, str]:
    """A date and time, naive if the text has no offset; or None and what is wrong."""
    if _ISO_DATE_TIME.fullmatch(text):
        try:
            parsed = parse_datetime(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed, ""
        return None, f"'{text}' is not a date and time that exists"
    if _DATE_ONLY.fullmatch(text):
        return None, (
            f"'{text}' has a date but no time: a draw needs its time of day; {FORMAT_HINT}"
        )
    slashed = _SLASHED.fullmatch(text)
    if slashed:
        return _read_slashed(text, slashed, date_format)
    if _SERIAL.fullmatch(text):
        return None, f"'{text}' is a spreadsheet's number for a date, not a date: {FORMAT_HINT}"
    return None, f"'{text}' is not a date and time (use 2026-12-03 08:30)"


def _read_slashed(text: str, match: re.Match[str], date_format: str) -> tuple[datetime | None, str]:
    if date_format == ISO_ONLY:
        return None, (
            f"'{text}' could be read day first or month first (03/12 is 3 December or "
            f"12 March): {FORMAT_HINT}"
        )
    if len(match["year"]) != 4:
        return None, f"'{text}' has a two-digit year: {FORMAT_HINT}"
    a, b = int(match["a"]), int(match["b"])
    day, month = (a, b) if date_format == DAY_FIRST else (b, a)
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    half = (match["half"] or "").lower()
    if half:
        if not 1 <= hour <= 12:
            return None, f"'{text}': {hour} is not an hour of a 12-hour clock"
        hour = hour % 12 + (12 if half == "pm" else 0)
    order = "day/month/year" if date_format == DAY_FIRST else "month/day/year"
    try:
        return datetime(int(match["year"]), month, day, hour, minute, second), ""  # noqa: DTZ001
    except ValueError:
        return None, f"'{text}' is not a date and time that exists (read as {order})"


def clinic_time_problem(naive: datetime, tz: tzinfo) -> str:
    """Why a wall-clock time cannot be placed in the clinic's time zone, or "".

    The check the web form makes (Django's forms refuse ambiguous or
    non-existent times): a time skipped when the clocks go forward, or met twice
    when they go back, needs its UTC offset.
    """
    shown = f"{naive:%Y-%m-%d %H:%M}"
    earlier, later = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    offsets = earlier.utcoffset(), later.utcoffset()
    if offsets[0] == offsets[1]:
        return ""
    round_trip = earlier.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:
        return (
            f"{shown} does not exist in the clinic's time zone ({tz}): the clocks went "
            "forward then; check the time the tube was drawn"
        )
    return (
        f"{shown} happened twice in the clinic's time zone ({tz}): the clocks went back "
        f"then; write it with its UTC offset ({_with_offset(naive, offsets[0])} or "
        f"{_with_offset(naive, offsets[1])})"
    )


def _with_offset(naive: datetime, offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"{naive:%Y-%m-%dT%H:%M}{sign}{hours:02d}:{rest:02d}"


def _parse_volume(text: str, fail: Fail, *, decimal_comma: bool = False) -> Decimal | None:
    """Empty is the standard 7.5 mL; "7,5" is 7.5 in a file separated by semicolons or tabs."""
    if not text:
        return STANDARD_VOLUME_ML
    if decimal_comma and _DECIMAL_COMMA.fullmatch(text):
        text = text.replace(",", ".")
    try:
        volume = Decimal(text)
    except InvalidOperation:
        hint = " (write the decimals after a point: 7.5)" if "," in text else ""
        fail("blood_volume_ml", f"'{text}' is not a number{hint}")
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


@dataclass(frozen=True)
class _OnRecord:
    """A valid draw on record, as much of it as planning needs."""

    mrn: str
    drawn_at: datetime
    status: str
    ctc_count: int | None
    count_qualifier: str
    blood_volume_ml: Decimal
    accession: str

    def result_key(self) -> tuple:
        return (
            self.mrn,
            self.drawn_at,
            self.status,
            self.ctc_count,
            self.count_qualifier,
            self.blood_volume_ml,
        )


def plan_import(
    rows: Sequence[CsvRow],
    errors: Iterable[RowError] = (),
    limits: Limits | None = None,
    *,
    among: QuerySet[Patient],
) -> ImportPlan:
    """Sort parsed rows into new, unchanged and errors; batched look-ups, no query per row.

    New rows on the same clinic day as another draw of the patient (on record or
    earlier in the file) are listed in `warnings`: they are imported when the
    user confirms, but the user sees them first.
    """
    plan = ImportPlan(errors=list(errors), limits=limits)
    # `among`: the importing user's patients (`access.patients`): another care team's
    # patient is "no patient with MRN ...", exactly as an unknown one.
    plan.patients = {
        p.mrn: p for p in _batched(lambda mrns: among.filter(mrn__in=mrns), {r.mrn for r in rows})
    }
    by_accession = {
        d.accession: d
        for d in _batched(
            lambda accessions: (
                CTCDraw.objects.with_accessions(accessions).select_related("patient").order_by()
            ),
            {r.accession for r in rows if r.accession},
        )
    }
    # Looked up once: `timezone.localdate` per row was a fifth of planning.
    tz = timezone.get_current_timezone()
    on_record = _on_record(list(plan.patients.values()), rows, tz)
    existing = {d.result_key() for d in on_record}
    same_day: dict[tuple[str, date], _Day] = {}
    for d in on_record:
        same_day.setdefault((d.mrn, d.drawn_at.astimezone(tz).date()), _Day()).add_recorded(d)
    seen: dict[tuple, int] = {}
    for row in rows:
        if limits is not None and limits.overtime():
            plan.errors.append(limits.overtime_error(row.line))
            plan.stopped = f"Checking stopped at line {row.line}: it took too long."
            break
        _plan_row(row, plan, by_accession, existing, seen, tz, same_day)
    plan.errors.sort(key=lambda e: (e.line, e.field))
    return plan


def _batched(find: Callable[[list], Iterable[T]], values: set) -> list[T]:
    """What `find` returns for the values, `LOOKUP_BATCH` values a query."""
    ordered = sorted(values)
    found: list[T] = []
    for start in range(0, len(ordered), LOOKUP_BATCH):
        found.extend(find(ordered[start : start + LOOKUP_BATCH]))
    return found


def _on_record(patients: list[Patient], rows: Sequence[CsvRow], tz: tzinfo) -> list[_OnRecord]:
    """The valid draws of these patients on the clinic days the file covers."""
    if not rows or not patients:
        return []
    first = min(r.drawn_at for r in rows).astimezone(tz).date()
    last = max(r.drawn_at for r in rows).astimezone(tz).date()
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    mrn_of = {p.pk: p.mrn for p in patients}
    on_those_days = (
        CTCDraw.objects.valid()
        .filter(drawn_at__gte=start, drawn_at__lt=end)
        .only(
            "patient_id",
            "drawn_at",
            "status",
            "ctc_count",
            "count_qualifier",
            "blood_volume_ml",
            "accession",
        )
        .order_by("drawn_at", "id")  # a day's first draw on record is the one warned of
    )
    drawn = _batched(lambda ids: on_those_days.filter(patient_id__in=ids), set(mrn_of))
    return [
        _OnRecord(
            mrn_of[d.patient_id],
            d.drawn_at,
            d.status,
            d.ctc_count,
            d.count_qualifier,
            d.blood_volume_ml,
            d.accession or "",
        )
        for d in drawn
    ]


def _plan_row(
    row: CsvRow,
    plan: ImportPlan,
    by_accession: dict[str, CTCDraw],
    existing: set[tuple],
    seen: dict[tuple, int],
    tz: tzinfo,
    same_day: dict[tuple[str, date], _Day],
) -> None:
    patient = plan.patients.get(row.mrn)
    if patient is None:
        hint = (
            " (if the MRN starts with 0, the spreadsheet may have dropped it: format the "
            "column as Text)"
            if row.mrn.isdigit()
            else ""
        )
        plan.errors.append(RowError(row.line, "mrn", f"no patient with MRN '{row.mrn}'{hint}"))
        return
    day = row.drawn_at.astimezone(tz).date()  # the clinic's date
    if day < patient.birth_date:
        plan.errors.append(RowError(row.line, "drawn_at", "is before the patient's birth date"))
        return
    if row.count_qualifier == CountQualifier.MORE_THAN and row.ctc_count is not None:
        bound_error = censored_bound_error(row.ctc_count, row.blood_volume_ml, patient.cancer_type)
        if bound_error:
            plan.errors.append(RowError(row.line, "ctc_count", bound_error))
            return
    key = (
        row.mrn,
        row.drawn_at,
        row.status,
        row.ctc_count,
        row.count_qualifier,
        row.blood_volume_ml,
    )
    dup_key = ("acc", row.accession) if row.accession else key
    if dup_key in seen:
        hint = (
            ""
            if row.accession
            else " (same patient, time and result; if it is another tube of that draw, "
            "give each tube its accession)"
        )
        plan.errors.append(RowError(row.line, "row", f"repeats line {seen[dup_key]}{hint}"))
        return
    seen[dup_key] = row.line
    if row.accession:
        # A row with an accession is recognised by its accession only: a new one is a
        # tube of its own, even beside a draw with the same time and count (the rules
        # pool tubes of one time into one sample).
        recorded = by_accession.get(row.accession)
        if recorded is not None:
            if recorded.patient.mrn != row.mrn:
                # Never filed on this patient, and nothing said of the other one (who may
                # be another care team's): the lab's MRN or accession is wrong.
                message = (
                    f"'{row.accession}' is on record for another patient: check the MRN "
                    "and the accession with the lab"
                )
            elif row.same_result(recorded):
                plan.unchanged.append(row)
                return
            else:
                message = (
                    f"'{row.accession}' is already recorded for this patient as {recorded}; "
                    "correct that draw in CTC Track instead"
                )
            plan.errors.append(RowError(row.line, "accession", message))
            return
    elif key in existing:
        plan.unchanged.append(row)
        return
    _warn_same_day(row, plan, same_day.setdefault((row.mrn, day), _Day()), tz)
    plan.new.append(row)


@dataclass
class _Day:
    """One patient's draws on one clinic day: on record, and new rows of the file so far.

    Enough of them to word a warning in constant time per row (a file may hold
    thousands of rows of one patient and day).
    """

    first_recorded: _OnRecord | None = None
    recorded_at: dict[datetime, _OnRecord] = field(default_factory=dict)
    first_row: CsvRow | None = None
    row_at_another_time: CsvRow | None = None  # the first at a time other than first_row's

    def add_recorded(self, draw: _OnRecord) -> None:
        self.first_recorded = self.first_recorded or draw
        self.recorded_at.setdefault(draw.drawn_at, draw)

    def add_row(self, row: CsvRow) -> None:
        if self.first_row is None:
            self.first_row = row
        elif self.row_at_another_time is None and row.drawn_at != self.first_row.drawn_at:
            self.row_at_another_time = row

    def row_at_other_time(self, moment: datetime) -> CsvRow | None:
        if self.first_row is not None and self.first_row.drawn_at != moment:
            return self.first_row
        return self.row_at_another_time


def _warn_same_day(row: CsvRow, plan: ImportPlan, day: _Day, tz: tzinfo) -> None:
    """Warn of a new row on the same clinic day as another draw of the patient; remember it."""
    at_same_time = day.recorded_at.get(row.drawn_at)
    in_file = day.row_at_other_time(row.drawn_at)
    if at_same_time is not None:
        plan.warnings.append(
            RowWarning(
                row.line,
                "drawn_at",
                f"{row.mrn} already has a tube drawn at {_when(row.drawn_at, tz)} "
                f"({_described(at_same_time)}): this row adds another tube to that "
                "sample, pooled with it; if it is the same tube, remove the row",
            )
        )
    elif day.first_recorded is not None:
        plan.warnings.append(
            RowWarning(
                row.line,
                "drawn_at",
                f"{row.mrn} already has a draw that day, at "
                f"{_when(day.first_recorded.drawn_at, tz)} ({_described(day.first_recorded)}): "
                "check that this is not the same draw twice",
            )
        )
    elif in_file is not None:
        plan.warnings.append(
            RowWarning(
                row.line,
                "drawn_at",
                f"line {in_file.line} is a draw of {row.mrn} the same day at "
                f"{_when(in_file.drawn_at, tz)}: check that this is not the same draw twice",
            )
        )
    day.add_row(row)


def _when(moment: datetime, tz: tzinfo) -> str:
    return time_text(moment.astimezone(tz))


def _described(draw: _OnRecord) -> str:
    if draw.status != DrawStatus.RESULTED:
        what = draw.status
    else:
        bound = ">" if draw.count_qualifier == CountQualifier.MORE_THAN else ""
        what = f"{bound}{draw.ctc_count} CTC in {volume_text(draw.blood_volume_ml)} mL"
    return f"{what}, accession {draw.accession}" if draw.accession else f"{what}, no accession"
