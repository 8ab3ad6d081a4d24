"""HL7 v2 field values of a CTC result: the count, the volume named by the units, a timestamp."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation

from patients.interop.hl7.ack import ErrorCode, Problem

_TIMESTAMP = re.compile(
    r"^(?P<date>\d{8})(?P<hm>\d{4})(?P<s>\d{2})?(?:\.\d{1,4})?(?:(?P<sign>[+-])(?P<oh>\d{2})(?P<om>\d{2}))?$"
)
_UNITS = re.compile(
    r"^\s*(?:\{?(?:cells?|ctcs?|#)\}?)?\s*/\s*\[?\s*(?P<volume>\d+(?:[.,]\d+)?)\s*\.?\s*ml\]?\s*$",
    re.IGNORECASE,
)
# A whole number as laboratory systems write one: `7`, `+7`, `7.0` (never `7.5`).
_WHOLE_NUMBER = re.compile(r"^\+?(?P<digits>\d+)(?:\.0*)?$")
# A TS with a date and no time (`20260301`, `202603`, `2026`, with or without an offset).
_PARTIAL_DATE = re.compile(r"^(?P<year>\d{4})(?P<month>\d{2})?(?P<day>\d{2})?$")
_DATE_ONLY = re.compile(r"^\d{4}(?:\d{2}){0,2}(?:[+-]\d{4})?$")
# The qualifier of a count that is a lower bound (SN `>^1000`), as the services take it.
MORE_THAN = ">"


def parse_count(text: str, where: str) -> tuple[int | None, Problem | None]:
    """A CTC count: a whole number of cells, 0 or more (`+7` and `7.0` are 7)."""
    text = text.strip()
    if not text:
        return None, Problem(
            where,
            ErrorCode.REQUIRED_FIELD_MISSING,
            "OBX-5 (the count) is empty on a final result; send the count, or OBX-11 X "
            "if the result could not be obtained.",
        )
    match = _WHOLE_NUMBER.match(text)
    if not match:
        hint = "; a lower bound is sent as SN >^<bound>" if text.startswith(MORE_THAN) else ""
        return None, Problem(
            where,
            ErrorCode.DATA_TYPE_ERROR,
            f"OBX-5 must be a whole number of cells, 0 or more (got '{text}'){hint}.",
        )
    return int(match["digits"]), None


def parse_structured_count(
    *, comparator: str, number: str, rest: str, sent: str, where: str
) -> tuple[str, int | None, Problem | None]:
    """An SN (structured numeric) count as (qualifier, count).

    `^12` or `=^12` is exactly 12 (qualifier ""); `>^1000` is more than 1000
    (qualifier ">", a censored count whose bound is 1000). Any other comparator
    (`<`, `<=`, `>=`, `<>`) or a range (`^1^-^5`) says nothing a CTC count can hold.
    `sent` is OBX-5 as sent, quoted in the problem.
    """
    comparator = comparator.strip()
    if comparator in ("", "=", MORE_THAN) and not rest.strip():
        count, problem = parse_count(number, where)
        qualifier = MORE_THAN if comparator == MORE_THAN and problem is None else ""
        return qualifier, count, problem
    return (
        "",
        None,
        Problem(
            where,
            ErrorCode.DATA_TYPE_ERROR,
            f"OBX-5 '{sent}' cannot be stored as a CTC count: send an exact count (NM 12, "
            "or SN ^12) or a lower bound (SN >^1000, more than 1000 cells); a comparator "
            "such as < or <= and a range are not accepted.",
        ),
    )


def volume_from_units(units: str) -> Decimal | None:
    """The blood volume that OBX-6 units such as 'cells/7.5 mL' name; None if they name none."""
    match = _UNITS.match(units)
    if not match:
        return None
    try:
        return Decimal(match["volume"].replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits digits only
        return None


def parse_timestamp(value: str, tz: tzinfo) -> datetime:
    """An HL7 TS `YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]` as an aware datetime.

    Without an offset the time is read in `tz` (the clinic's time zone). A
    date without a time is refused: the draw time decides the pre-cycle window.
    """
    text = value.split("^")[0].strip()
    match = _TIMESTAMP.match(text)
    if not match:
        raise ValueError(
            f"'{text}' is not a date and time: use YYYYMMDDHHMM[SS][+/-ZZZZ], "
            "for example 20260301083000+0100."
        )
    digits = match["date"] + match["hm"] + (match["s"] or "00")
    try:
        local = datetime.strptime(digits, "%Y%m%d%H%M%S")  # noqa: DTZ007 - zone set below
    except ValueError:
        raise ValueError(f"'{text}' is not a valid date and time.") from None
    if not match["sign"]:
        return _local_time(local, tz, text)
    hours, minutes = int(match["oh"]), int(match["om"])
    if hours > 14 or minutes > 59:
        raise ValueError(f"'{text}' is not a date and time: its time-zone offset is impossible.")
    offset = timedelta(hours=hours, minutes=minutes)
    return local.replace(tzinfo=timezone(offset if match["sign"] == "+" else -offset))


def is_date_only(value: str) -> bool:
    """Whether an HL7 TS gives a date without a time (`20260301`): another field may have it."""
    return bool(_DATE_ONLY.match(value.split("^")[0].strip()))


def _local_time(local: datetime, tz: tzinfo, text: str) -> datetime:
    """A wall-clock time in `tz`, refused when the clocks skip it or pass it twice."""
    aware = local.replace(tzinfo=tz)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local:
        raise ValueError(
            f"'{text}' does not exist in the time zone {tz} (the clocks were put forward "
            "then): send the time with its offset (+/-ZZZZ)."
        )
    if aware.utcoffset() != local.replace(tzinfo=tz, fold=1).utcoffset():
        raise ValueError(
            f"'{text}' happened twice in the time zone {tz} (the clocks were put back "
            "then): send the time with its offset (+/-ZZZZ) to say which."
        )
    return aware


def is_partial_date(text: str) -> bool:
    """Whether `text` is a real date to the year, month or day: YYYY, YYYYMM or YYYYMMDD."""
    match = _PARTIAL_DATE.match(text)
    if not match:
        return False
    try:
        date(int(match["year"]), int(match["month"] or 1), int(match["day"] or 1))
    except ValueError:
        return False
    return True
