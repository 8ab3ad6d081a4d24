"""HL7 v2 field values of a CTC result: the count, the volume named by the units, a timestamp."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation

from patients.interop.hl7.ack import ErrorCode, Problem

_TIMESTAMP = re.compile(
    r"^(?P<date>\d{8})(?P<hm>\d{4})(?P<s>\d{2})?(?:\.\d{1,4})?(?:(?P<sign>[+-])(?P<oh>\d{2})(?P<om>\d{2}))?$"
)
_UNITS = re.compile(
    r"^\s*(?:\{?(?:cells?|ctcs?|#)\}?)?\s*/\s*\[?\s*(?P<volume>\d+(?:[.,]\d+)?)\s*\.?\s*ml\]?\s*$",
    re.IGNORECASE,
)
_WHOLE_NUMBER = re.compile(r"^\d+$")


def parse_count(text: str, where: str) -> tuple[int | None, Problem | None]:
    """A CTC count: a whole number of cells, 0 or more."""
    text = text.strip()
    if not text:
        return None, Problem(
            where,
            ErrorCode.REQUIRED_FIELD_MISSING,
            "OBX-5 (the count) is empty on a final result; send the count, or OBX-11 X "
            "if the result could not be obtained.",
        )
    if not _WHOLE_NUMBER.match(text):
        return None, Problem(
            where,
            ErrorCode.DATA_TYPE_ERROR,
            f"OBX-5 must be a whole number of cells, 0 or more (got '{text}').",
        )
    return int(text), None


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
        return local.replace(tzinfo=tz)
    hours, minutes = int(match["oh"]), int(match["om"])
    if hours > 14 or minutes > 59:
        raise ValueError(f"'{text}' is not a date and time: its time-zone offset is impossible.")
    offset = timedelta(hours=hours, minutes=minutes)
    return local.replace(tzinfo=timezone(offset if match["sign"] == "+" else -offset))
