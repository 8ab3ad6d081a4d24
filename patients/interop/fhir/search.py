"""Observation search: the parameters US Core clients send, read and applied.

`parse` turns a request's parameters into an `ObservationQuery` (or raises
`InvalidSearch` naming the parameter); `ObservationQuery.matches` tests one
built Observation (a dict from `resources.observation`), so that a filter
compares exactly what the client receives. No database access: the view
loads the patient's series once, whatever the filters (constant queries).

Supported: `patient`, `subject` (one patient), `code`, `category`, `status`
(tokens; a comma means or), `date` (prefixes eq, ne, gt, lt, ge, le; a year,
month, day, minute, second or fraction; without an offset in the clinic's time
zone), `_sort` (`date`, `-date`), `_count`, `_offset`, `_summary` (`count`,
`false`), and `_format` and `_pretty` (answered by content negotiation).
Anything else is returned in `unsupported`: the view refuses it under
`Prefer: handling=strict`, and otherwise ignores it and says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

STATUSES = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
_IGNORED = frozenset({"_format", "_pretty"})  # answered by the content negotiation
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
_DATE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d{1,6})?)?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
# An id, Patient/{id} or {absolute base}/Patient/{id}, optionally with /_history/{vid}.
_REFERENCE = re.compile(
    r"(?:(?P<base>https?://\S+?/)?(?P<type>[A-Za-z]+)/)?(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


class InvalidSearch(ValueError):
    """A supported parameter with a value that cannot be used: the search is refused."""


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code (`system|`)

    def matches(self, codings: Iterable[dict[str, Any]]) -> bool:
        return any(
            (self.system is None or coding.get("system", "") == self.system)
            and (self.code is None or coding.get("code") == self.code)
            for coding in codings
        )


@dataclass(frozen=True)
class DateTest:
    prefix: str
    low: datetime  # the value's range: [low, high)
    high: datetime

    def matches(self, moment: datetime) -> bool:
        inside = self.low <= moment < self.high
        return {
            "eq": inside,
            "ne": not inside,
            "gt": moment >= self.high,
            "ge": moment >= self.low,
            "lt": moment < self.low,
            "le": moment < self.high,
        }[self.prefix]


@dataclass
class ObservationQuery:
    patient_id: str = ""
    codes: list[list[Token]] = field(default_factory=list)  # and of ors
    categories: list[list[Token]] = field(default_factory=list)
    statuses: list[set[str]] = field(default_factory=list)
    dates: list[list[DateTest]] = field(default_factory=list)
    newest_first: bool = False
    count: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    summary_count: bool = False
    applied: list[tuple[str, str]] = field(default_factory=list)  # for the Bundle's links
    unsupported: list[str] = field(default_factory=list)

    def matches(self, observation: dict[str, Any]) -> bool:
        code = observation["code"].get("coding", [])
        category = [c for concept in observation["category"] for c in concept["coding"]]
        moment = datetime.fromisoformat(observation["effectiveDateTime"])
        return (
            all(any(t.matches(code) for t in ors) for ors in self.codes)
            and all(any(t.matches(category) for t in ors) for ors in self.categories)
            and all(observation["status"] in ors for ors in self.statuses)
            and all(any(t.matches(moment) for t in ors) for ors in self.dates)
        )


def parse(params: Iterable[tuple[str, str]], *, base_url: str, tz: tzinfo) -> ObservationQuery:
    """Read the search's parameters (name, value pairs, in the order given).

    `base_url` is this server's FHIR base (absolute): a reference under any
    other base is another server's Patient, refused. `tz` reads dates given
    without an offset.
    """
    query = ObservationQuery()
    patients: set[str] = set()
    for name, value in params:
        reader = _READERS.get(name)
        if name in _IGNORED:
            continue
        if reader is None:
            query.unsupported.append(name)
            continue
        reader(query, value, base_url=base_url, tz=tz, patients=patients)
    if not patients:
        raise InvalidSearch("Give the patient: Observation?patient={id} (or subject=Patient/{id}).")
    if len(patients) > 1:
        raise InvalidSearch("patient and subject name different patients: give one patient.")
    query.patient_id = patients.pop()
    return query


def _patient(query: ObservationQuery, value: str, **context: Any) -> None:
    _one_patient("patient", value.strip(), context["patients"], base_url=context["base_url"])


def _subject(query: ObservationQuery, value: str, **context: Any) -> None:
    _one_patient("subject", value.strip(), context["patients"], base_url=context["base_url"])


def _subject_patient(query: ObservationQuery, value: str, **context: Any) -> None:
    reference = value.strip()
    if reference and "/" not in reference:
        reference = f"Patient/{reference}"
    _one_patient("subject:Patient", reference, context["patients"], base_url=context["base_url"])


def _one_patient(name: str, reference: str, patients: set[str], *, base_url: str) -> None:
    if not reference:
        raise InvalidSearch(f"{name} is empty: give a patient id or Patient/{{id}}.")
    if "," in reference:
        raise InvalidSearch(f"{name}={reference}: one patient per search.")
    found = _REFERENCE.fullmatch(reference)
    if found is None:
        raise InvalidSearch(f"{name}={reference} is not a Patient reference.")
    if found["type"] not in (None, "Patient"):
        raise InvalidSearch(f"{name}={reference} is not a Patient reference.")
    base = found["base"]
    if base is not None and not _same_base(base, base_url):
        raise InvalidSearch(
            f"{name}={reference} is a Patient on another server: this server reads only "
            f"its own patients ({base_url}Patient/{{id}})."
        )
    patients.add(found["id"])


def _same_base(base: str, ours: str) -> bool:
    # http or https alike: behind a TLS proxy the server may see either.
    return base.split("://", 1)[1].lower() == ours.split("://", 1)[1].lower()


def _tokens(name: str, value: str) -> list[Token]:
    tokens = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            raise InvalidSearch(f"{name} has an empty value: give system|code or code.")
        if "|" in part:
            system, code = part.split("|", 1)
            tokens.append(Token(system, code or None))
        else:
            tokens.append(Token(None, part))
    return tokens


def _code(query: ObservationQuery, value: str, **context: Any) -> None:
    query.codes.append(_tokens("code", value))
    query.applied.append(("code", value))


def _category(query: ObservationQuery, value: str, **context: Any) -> None:
    query.categories.append(_tokens("category", value))
    query.applied.append(("category", value))


def _status(query: ObservationQuery, value: str, **context: Any) -> None:
    wanted = set()
    for token in _tokens("status", value):
        if token.system not in (None, "http://hl7.org/fhir/observation-status"):
            raise InvalidSearch(f"status={value}: the system is not observation-status.")
        if token.code not in STATUSES:
            raise InvalidSearch(
                f"status={value}: give one of {', '.join(sorted(STATUSES))} (comma for or)."
            )
        wanted.add(token.code)
    query.statuses.append(wanted)
    query.applied.append(("status", value))


def _date(query: ObservationQuery, value: str, **context: Any) -> None:
    # An unencoded "+" of an offset arrives as a space.
    value = value.strip().replace(" ", "+")
    query.dates.append([_date_test(part, context["tz"]) for part in value.split(",")])
    query.applied.append(("date", value))


def _date_test(text: str, tz: tzinfo) -> DateTest:
    prefix, rest = (text[:2], text[2:]) if text[:2].isalpha() else ("eq", text)
    if prefix not in _PREFIXES:
        raise InvalidSearch(
            f"date={text}: the prefix {prefix} is not supported; use eq, ne, gt, lt, ge or le."
        )
    found = _DATE.fullmatch(rest)
    if found is None:
        raise InvalidSearch(
            f"date={text} is not a FHIR date: give YYYY, YYYY-MM, YYYY-MM-DD or "
            "YYYY-MM-DDThh:mm[:ss][+hh:mm]."
        )
    try:
        low, high = _date_range(found, tz)
    except ValueError as error:
        raise InvalidSearch(f"date={text}: {error}.") from None
    return DateTest(prefix, low, high)


def _date_range(found: re.Match[str], tz: tzinfo) -> tuple[datetime, datetime]:
    """The range [low, high) a date of this precision stands for."""
    parts = {k: v for k, v in found.groupdict().items() if v}
    year, month, day = int(parts["year"]), int(parts.get("month", 1)), int(parts.get("day", 1))
    offset = parts.get("offset")
    zone = tz if offset is None else datetime.fromisoformat(f"2000-01-01T00:00{offset}").tzinfo
    assert zone is not None
    if "month" not in parts:
        return _local(zone, year, 1, 1), _local(zone, year + 1, 1, 1)
    if "day" not in parts:
        return _local(zone, year, month, 1), _local(zone, year + month // 12, month % 12 + 1, 1)
    if "hour" not in parts:
        start = _local(zone, year, month, day)
        return start, start + timedelta(days=1)
    hour, minute, second = int(parts["hour"]), int(parts["minute"]), int(parts.get("second", 0))
    start = _local(zone, year, month, day, hour, minute, second)
    if "fraction" in parts:
        start += timedelta(microseconds=round(float(parts["fraction"]) * 1_000_000))
        return start, start + timedelta(microseconds=1)
    return start, start + (timedelta(seconds=1) if "second" in parts else timedelta(minutes=1))


def _local(
    zone: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A wall time in `zone`; one skipped or repeated by a clock change is refused."""
    wall = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    if wall.utcoffset() != wall.replace(fold=1).utcoffset():
        raise ValueError(
            f"{wall:%Y-%m-%d %H:%M} does not exist or happens twice in the clinic's time "
            "zone (a clock change): give the offset"
        )
    return wall


def _sort(query: ObservationQuery, value: str, **context: Any) -> None:
    if value.strip() not in ("date", "-date"):
        query.unsupported.append(f"_sort={value}")
        return
    query.newest_first = value.strip() == "-date"
    query.applied.append(("_sort", value.strip()))


def _summary(query: ObservationQuery, value: str, **context: Any) -> None:
    if value.strip() not in ("count", "false"):
        query.unsupported.append(f"_summary={value}")
        return
    query.summary_count = value.strip() == "count"
    if query.summary_count:
        query.applied.append(("_summary", "count"))


def _count(query: ObservationQuery, value: str, **context: Any) -> None:
    if value.strip():  # empty: the default
        query.count = min(_whole_number("_count", value), MAX_PAGE_SIZE)


def _offset(query: ObservationQuery, value: str, **context: Any) -> None:
    if value.strip():
        query.offset = _whole_number("_offset", value)


def _whole_number(name: str, value: str) -> int:
    text = value.strip()
    if not text.isdigit():
        raise InvalidSearch(f"{name} must be a whole number, 0 or more (got '{text}').")
    return int(text)


_READERS: dict[str, Callable[..., None]] = {
    "patient": _patient,
    "patient:Patient": _patient,
    "subject": _subject,
    "subject:Patient": _subject_patient,
    "code": _code,
    "category": _category,
    "status": _status,
    "date": _date,
    "_sort": _sort,
    "_summary": _summary,
    "_count": _count,
    "_offset": _offset,
}
