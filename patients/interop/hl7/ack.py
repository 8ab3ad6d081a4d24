"""HL7 v2 acknowledgements: the codes, the problems an ACK reports, and the ACK itself.

Pure, like `parse`: the caller passes the time "now", the clinic's time zone and
the ACK's control id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patients.interop.hl7.parse import LabResult

# MLLP block markers (start of block; end of block, followed by a carriage return).
MLLP_START = "\x0b"
MLLP_END = "\x1c"
DEFAULT_VERSION = "2.5.1"
ACK_SENDING_APPLICATION = "CTCTRACK"


class AckCode(StrEnum):
    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


class ErrorCode(IntEnum):
    """HL7 table 0357 (message error condition codes) as used in ERR-3."""

    SEGMENT_SEQUENCE_ERROR = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE_ERROR = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT_CODE = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNKNOWN_KEY_IDENTIFIER = 204
    DUPLICATE_KEY_IDENTIFIER = 205
    APPLICATION_INTERNAL_ERROR = 207

    @property
    def text(self) -> str:
        return _ERROR_TEXTS[self]


_ERROR_TEXTS = {
    ErrorCode.SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE_ERROR: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing ID",
    ErrorCode.UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    ErrorCode.APPLICATION_INTERNAL_ERROR: "Application internal error",
}


@dataclass(frozen=True)
class Problem:
    """Why (part of) a message was not stored: one ERR segment of the ACK.

    `location` is an HL7 ERL without the escaping: segment^sequence^field,
    for example "OBX^2^5" for the count of the message's second OBX.
    """

    location: str
    code: ErrorCode
    text: str


@dataclass(frozen=True)
class Header:
    """What the ACK echoes back: the sender's MSH fields, each already written in ER7
    with our own delimiters (`^` between components, escapes as `escape` writes them).

    `control_id` and `version` are plain text (escaped when the ACK is written).
    """

    control_id: str = ""
    version: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    receiving_facility: str = ""
    processing_id: str = ""  # MSH-11 as received: the ACK carries it back unchanged


def build_ack(
    header: Header,
    code: AckCode,
    text: str,
    problems: Sequence[Problem] = (),
    *,
    control_id: str,
    now: datetime,
    tz: tzinfo,
) -> str:
    """An original-mode ACK (HL7 2.5 style) for one message: MSH, MSA, one ERR per problem.

    Segments end with CR. The sender's own MSH-3/4/6 and MSH-11 are echoed, in our
    delimiters whatever the sender used.
    """
    msh = [
        "MSH",
        "^~\\&",
        ACK_SENDING_APPLICATION,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        format_timestamp(now, tz),
        "",
        "ACK^R01^ACK",
        control_id,
        header.processing_id or "P",
        escape(header.version) or DEFAULT_VERSION,
    ]
    segments = [
        "|".join(msh),
        "|".join(["MSA", code, escape(header.control_id), escape(text)]),
        *(_err(problem) for problem in problems),
    ]
    return "".join(f"{segment}\r" for segment in segments)


def _err(problem: Problem) -> str:
    location = "^".join(escape(part) for part in problem.location.split("^"))
    condition = f"{int(problem.code)}^{escape(problem.code.text)}^HL70357"
    return "|".join(["ERR", "", location, condition, "E", "", "", "", escape(problem.text)])


def escape(text: str) -> str:
    """Text safe inside an ER7 field with the standard encoding characters."""
    replacements = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "~": "\\R\\", "&": "\\T\\"}
    escaped = "".join(replacements.get(c, c) for c in text)
    return escaped.replace("\r\n", "\\.br\\").replace("\n", "\\.br\\").replace("\r", "\\.br\\")


def frame(acks: Sequence[str], *, framed: bool) -> str:
    """The ACKs of a body, one after the other; each in an MLLP block if the request was."""
    if framed:
        return "".join(f"{MLLP_START}{ack}{MLLP_END}\r" for ack in acks)
    return "".join(acks)


# --- problems found when storing -------------------------------------------------------

_FIELD_ERROR_CODES = {
    "mrn": ErrorCode.UNKNOWN_KEY_IDENTIFIER,
    # The patient on record is not the one the message describes (PID-5, -7, -8).
    "birth_date": ErrorCode.UNKNOWN_KEY_IDENTIFIER,
    "family_name": ErrorCode.UNKNOWN_KEY_IDENTIFIER,
    "sex": ErrorCode.UNKNOWN_KEY_IDENTIFIER,
    "accession": ErrorCode.DUPLICATE_KEY_IDENTIFIER,
    "drawn_at": ErrorCode.DATA_TYPE_ERROR,
    "ctc_count": ErrorCode.DATA_TYPE_ERROR,
    "count_qualifier": ErrorCode.DATA_TYPE_ERROR,
    "blood_volume_ml": ErrorCode.DATA_TYPE_ERROR,
    "status": ErrorCode.TABLE_VALUE_NOT_FOUND,
}


def problem_for(result: LabResult, draw_field: str, text: str) -> Problem:
    """A problem found when storing `result`, placed where the lab sent the value."""
    code = _FIELD_ERROR_CODES.get(draw_field, ErrorCode.APPLICATION_INTERNAL_ERROR)
    return Problem(result.location_of(draw_field), code, text)


def format_timestamp(moment: datetime, tz: tzinfo) -> str:
    """An aware datetime as an HL7 TS with seconds and offset, in `tz`."""
    return moment.astimezone(tz).strftime("%Y%m%d%H%M%S%z")
