"""Keep patient data out of the logs.

The code never logs names, MRNs, counts or form data on purpose; this filter
is the safety net for what libraries log. Django logs request paths, which
carry only record ids, but two things can carry patient data:

- an exception's message: a database error quotes the failing SQL with its
  values, a validation error may quote the input. The traceback (files, lines,
  code) is kept; the message is replaced by the exception's type.
- a query string (`/patients/?q=Doe` in the development server's request line).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterator

WITHHELD = "(message withheld: it may contain patient data)"
_QUERY = re.compile(r"(/[\w\-./%~]*)\?[^\s\"']+")


def strip_query_strings(text: str) -> str:
    """`GET /patients/?q=Doe HTTP/1.1` -> `GET /patients/?[withheld] HTTP/1.1`."""
    return _QUERY.sub(r"\1?[withheld]", text)


def redacted_traceback(exc: BaseException) -> str:
    """The traceback of `exc` and of the exceptions it came from, without their messages."""
    parts = []
    for link in reversed(list(_chain(exc))):
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(link.__traceback__))
        parts.append(f"{type(link).__module__}.{type(link).__qualname__}: {WITHHELD}\n")
    return "".join(parts).rstrip("\n")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )


class RedactPHIFilter(logging.Filter):
    """A handler filter: rewrites each record as described in the module docstring."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redacted_traceback(record.exc_info[1])
            record.exc_info = None
        if isinstance(record.msg, str):
            record.msg = strip_query_strings(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                strip_query_strings(a) if isinstance(a, str) else a for a in record.args
            )
        return True


class StderrHandler(logging.StreamHandler):
    """The console log: writes to whatever `sys.stderr` is when a record is logged.

    A plain StreamHandler keeps the stream it was configured with. Whoever replaces
    `sys.stderr` later (the test runner captures it per test and closes its capture;
    a process manager may redirect it) would leave a thread that logs afterwards (the
    MLLP listener's workers, a mail server) writing to a closed stream: "--- Logging
    error --- I/O operation on closed file" in place of the message. The standard
    library's own last-resort handler does the same.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        """Ignored: the stream is always the current stderr."""
