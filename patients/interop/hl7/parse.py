"""HL7 v2 lab results in: ORU^R01 messages to plain data, and the ACKs that answer them.

Pure: no database, no settings, no clock. The caller passes the CTC LOINC
codes, the clinic's time zone (for times sent without an offset), the time
"now" and the control id of each ACK. Storing is `services.record_lab_results`;
`receive.receive_hl7` ties the two together for the endpoint and the command; the
ACKs and the problems they report are in `ack`, field values in `values`.

What becomes a draw (docs/interoperability.md says the same for lab staff):

- each OBX whose OBX-3 (or its alternate identifier) is a CTC LOINC code;
- OBX-11 `F` final and `C` corrected carry a count in OBX-5: NM, a whole number
  (0 or more), or SN, `^12` exactly 12 or `>^1000` more than 1000 (a censored
  count; any other comparator or a range is refused); `X` (could not be
  obtained) is a *failed* draw, never a zero;
  an SPM-21 reject reason in the order makes it a *rejected* draw;
- the draw time is OBX-14, else OBR-7; the accession OBR-3, else ORC-3;
  the volume 7.5 mL unless OBX-6 says `cells/<v> mL`; the NTE notes of the
  order and the result (and the reject reason) become the comment;
- the patient is PID-3: the repetition of type `MR`, else the first.

Answers: `AR` when the message cannot be read or is not a production ORU^R01
(nothing in it is looked at), `AE` when it can be read but its content cannot
be stored (a missing count, a bad time, an unknown MRN...), `AA` when stored.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal

import hl7
from hl7.exceptions import HL7Exception

from patients.interop.hl7.ack import MLLP_END, MLLP_START, AckCode, ErrorCode, Header, Problem
from patients.interop.hl7.values import (
    parse_count,
    parse_structured_count,
    parse_timestamp,
    volume_from_units,
)
from patients.rules import STANDARD_VOLUME_ML, DrawStatus

# Envelope segments of batch files: not part of any message.
_ENVELOPE = frozenset({"FHS", "FTS", "BHS", "BTS"})
# OBX-11 values that are stored; everything else (P preliminary, I pending, ...) is not.
_STORED_RESULT_STATUSES = frozenset({"F", "C", "X"})
# OBX-11 values that retract a result: never applied silently (see _retraction_problem).
_RETRACTIONS = {"W": "posted as wrong", "D": "deleted"}
# `\H\` and `\N\` (highlighting on/off) carry no text.
_NO_HIGHLIGHT = {"H": "", "N": ""}


@dataclass(frozen=True)
class LabResult:
    """One CTC result of a message, ready for `services.record_lab_results`.

    `locations` says where each value came from (draw field -> HL7 ERL), so a
    problem found later, when storing, can name the field the lab must fix.
    """

    mrn: str
    accession: str
    drawn_at: datetime
    status: str  # a DrawStatus value: resulted, failed or rejected
    corrected: bool
    ctc_count: int | None
    count_qualifier: str  # "" exact, ">" the count is a lower bound (SN `>^1000`)
    blood_volume_ml: Decimal
    comment: str
    loinc_code: str
    locations: Mapping[str, str] = field(default_factory=dict)

    def location_of(self, draw_field: str) -> str:
        return self.locations.get(draw_field) or self.locations["result"]


@dataclass(frozen=True)
class ParsedMessage:
    header: Header
    results: tuple[LabResult, ...] = ()
    problems: tuple[Problem, ...] = ()
    rejected: bool = False  # unreadable or unsupported: AR, nothing in it looked at
    ignored_results: int = 0  # OBX that are not CTC counts
    not_final: int = 0  # CTC OBX neither final, corrected nor failed (P, I, ...)

    @property
    def ack_code(self) -> AckCode:
        if self.rejected:
            return AckCode.REJECT
        return AckCode.ERROR if self.problems else AckCode.ACCEPT


@dataclass(frozen=True)
class Body:
    """A request body or file split into messages (ER7 text, segments joined by CR)."""

    messages: tuple[str, ...]
    framed: bool  # MLLP framing was used: the ACKs are framed the same way


# --- splitting a body into messages -------------------------------------------------


def split_body(body: bytes | str) -> Body:
    """Messages in a body: MLLP framing stripped, CR, LF and CRLF all end a segment.

    A new message starts at every MSH. Batch envelopes (FHS/BHS/BTS/FTS) are
    dropped. Segments before the first MSH form a message of their own, which
    `parse_message` rejects: nothing sent is silently skipped.
    """
    text = _decode(body)
    framed = MLLP_START in text or MLLP_END in text
    text = text.replace(MLLP_START, "").replace(MLLP_END, "\r")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    messages: list[list[str]] = []
    for segment in (s.strip() for s in text.split("\r")):
        if not segment or segment[:3] in _ENVELOPE:
            continue
        if segment.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(segment)
    return Body(messages=tuple("\r".join(m) for m in messages), framed=framed)


def _decode(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        # Older interfaces send ISO 8859-1 (MSH-18 "8859/1"); every byte is valid there.
        return body.decode("latin-1")


# --- parsing one message ---------------------------------------------------------------


@dataclass
class _Obx:
    segment: hl7.Segment
    seq: int  # occurrence of OBX in the message, for ERR locations
    notes: list[str] = field(default_factory=list)


@dataclass
class _Order:
    """An OBR with its ORC, its patient, its OBX (each with its NTE), its SPM and notes."""

    obr: hl7.Segment
    seq: int
    pid: hl7.Segment
    pid_seq: int
    orc: hl7.Segment | None
    orc_seq: int
    notes: list[str] = field(default_factory=list)
    results: list[_Obx] = field(default_factory=list)
    specimens: list[hl7.Segment] = field(default_factory=list)


def parse_message(text: str, *, loinc_codes: Collection[str], tz: tzinfo) -> ParsedMessage:
    """One ER7 message to its CTC results, or the problems that keep it from being stored.

    `loinc_codes`: OBX-3 identifiers that are CTC counts. `tz`: the clinic's
    time zone, for times sent without an offset.
    """
    rejection = _envelope_problem(text)
    if rejection:
        return _rejected(Header(control_id=_naive_control_id(text)), rejection)
    try:
        message = hl7.parse(text)
    except (HL7Exception, ValueError, IndexError) as exc:
        problem = Problem("MSH^1", ErrorCode.SEGMENT_SEQUENCE_ERROR, f"Unreadable message: {exc}")
        return _rejected(Header(control_id=_naive_control_id(text)), problem)
    header = _header(message)
    rejection = _header_problem(message)
    if rejection:
        return _rejected(header, rejection)
    orders, structure = _orders(message)
    if structure:
        return _rejected(header, structure)
    return _content(message, header, orders, frozenset(loinc_codes), tz)


def _rejected(header: Header, problem: Problem) -> ParsedMessage:
    return ParsedMessage(header=header, problems=(problem,), rejected=True)


def _envelope_problem(text: str) -> Problem | None:
    """MSH-1 and MSH-2 must be readable before anything else can be, and the text must be text."""
    if "\x00" in text:
        # No HL7 field holds one, and PostgreSQL refuses it in any query: never pass it on.
        return Problem(
            "MSH^1",
            ErrorCode.DATA_TYPE_ERROR,
            "The message contains a NUL character (0x00), which HL7 v2 text cannot hold: "
            "check the sending system's character encoding.",
        )
    if not text.startswith("MSH"):
        segment = text[:3] or "(empty)"
        return Problem(
            f"{segment}^1",
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            f"Segment {segment} arrived before any MSH: a message starts with MSH.",
        )
    separator = text[3:4]
    end = text.find(separator, 4) if separator else -1
    encoding = text[4:end] if end > 0 else ""
    characters = separator + encoding
    if (
        len(encoding) not in (4, 5)
        or len(set(characters)) != len(characters)
        or any(c.isalnum() or c.isspace() for c in characters)
    ):
        return Problem(
            "MSH^1^2",
            ErrorCode.DATA_TYPE_ERROR,
            "MSH-1/MSH-2 must give the field separator and four encoding characters (|^~\\&).",
        )
    return None


def _naive_control_id(text: str) -> str:
    """MSH-10 of a message that cannot be parsed, if it can be read at all (for MSA-2)."""
    if not text.startswith("MSH") or len(text) < 4:
        return ""
    fields = text.split("\r", 1)[0].split(text[3])
    return fields[9].split("^")[0] if len(fields) > 9 else ""


def _header(message: hl7.Message) -> Header:
    msh = message.segment("MSH")
    return Header(
        control_id=_value(msh, 10),
        version=_value(msh, 12),
        sending_application=_raw(msh, 3),
        sending_facility=_raw(msh, 4),
        receiving_facility=_raw(msh, 6),
    )


def _header_problem(message: hl7.Message) -> Problem | None:
    msh = message.segment("MSH")
    if not _value(msh, 10):
        return Problem(
            "MSH^1^10", ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10 (message control ID) is empty."
        )
    kind, event = _value(msh, 9, 1), _value(msh, 9, 2)
    if kind != "ORU":
        return Problem(
            "MSH^1^9",
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"Message type {kind or '(empty)'} is not accepted: send ORU^R01 results.",
        )
    if event != "R01":
        return Problem(
            "MSH^1^9",
            ErrorCode.UNSUPPORTED_EVENT_CODE,
            f"Event ORU^{event or '(empty)'} is not accepted: send ORU^R01 results.",
        )
    processing = _value(msh, 11)
    if processing != "P":
        # Training and debugging messages must never reach a live clinical record.
        return Problem(
            "MSH^1^11",
            ErrorCode.UNSUPPORTED_PROCESSING_ID,
            f"Processing ID {processing or '(empty)'} is not accepted: CTC Track holds the "
            "live clinical record and takes production (P) messages only.",
        )
    return None


def _orders(message: hl7.Message) -> tuple[list[_Order], Problem | None]:
    """Group the segments: each OBR with the ORC before it, its OBX, NTE and SPM.

    An NTE belongs to the OBX before it, or to the OBR when no OBX came yet.
    """
    orders: list[_Order] = []
    counts: dict[str, int] = {}
    pid: tuple[hl7.Segment, int] | None = None
    orc: tuple[hl7.Segment, int] | None = None
    for segment in message:
        name = str(segment[0])
        counts[name] = seq = counts.get(name, 0) + 1
        if name == "PID":
            pid, orc = (segment, seq), None
        elif name == "ORC":
            orc = (segment, seq)
        elif name == "OBR":
            if pid is None:
                return [], _sequence_problem(f"OBR^{seq}", "OBR arrived before any PID segment.")
            orc_segment, orc_seq = orc or (None, 0)
            orders.append(_Order(segment, seq, pid[0], pid[1], orc_segment, orc_seq))
            orc = None
        elif name in ("OBX", "NTE", "SPM"):
            if not orders:
                return [], _sequence_problem(f"{name}^{seq}", f"{name} arrived before any OBR.")
            _add_to_order(orders[-1], message, name, segment, seq)
    if pid is None:
        return [], _sequence_problem("PID", "The message has no PID segment.")
    return orders, None


def _add_to_order(
    order: _Order, message: hl7.Message, name: str, segment: hl7.Segment, seq: int
) -> None:
    """An OBX, NTE or SPM segment to the order it follows (an NTE to its last OBX, if any)."""
    if name == "OBX":
        order.results.append(_Obx(segment, seq))
    elif name == "NTE":
        notes = order.results[-1].notes if order.results else order.notes
        notes.extend(_note(message, segment))
    else:
        order.specimens.append(segment)


def _sequence_problem(location: str, text: str) -> Problem:
    return Problem(location, ErrorCode.SEGMENT_SEQUENCE_ERROR, text)


def _content(
    message: hl7.Message,
    header: Header,
    orders: Sequence[_Order],
    loinc_codes: frozenset[str],
    tz: tzinfo,
) -> ParsedMessage:
    ctc = [(o, obx) for o in orders for obx in o.results if _loinc_of(obx.segment, loinc_codes)]
    ignored = sum(len(o.results) for o in orders) - len(ctc)
    kept = [(o, obx) for o, obx in ctc if _result_status(obx) in _STORED_RESULT_STATUSES]
    skipped = [obx for _, obx in ctc if _result_status(obx) not in _STORED_RESULT_STATUSES]
    not_final = [obx for obx in skipped if _result_status(obx) not in _RETRACTIONS]
    problems = [_retraction_problem(obx) for obx in skipped if _result_status(obx) in _RETRACTIONS]
    results: list[LabResult] = []
    orders_seen: set[int] = set()
    for order, obx in kept:
        if order.seq in orders_seen:
            problems.append(_second_result_problem(order, obx))
            continue
        orders_seen.add(order.seq)
        result, found = _lab_result(message, order, obx, loinc_codes, tz)
        problems.extend(found)
        results.extend([result] if result else [])
    problems.extend(_duplicate_accessions(results))
    if not results and not problems:
        problems.append(_nothing_to_store(ignored, not_final, loinc_codes))
    return ParsedMessage(
        header=header,
        results=() if problems else tuple(results),  # all or nothing
        problems=tuple(problems),
        ignored_results=ignored,
        not_final=len(not_final),
    )


def _nothing_to_store(
    ignored: int, not_final: Sequence[_Obx], loinc_codes: frozenset[str]
) -> Problem:
    if not_final:
        status = _result_status(not_final[-1]) or "(empty)"
        return Problem(
            f"OBX^{not_final[-1].seq}^11",
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            f"No final, corrected or failed CTC result: OBX-11 {status} results are not "
            "stored; send the final result (F).",
        )
    codes = " or ".join(sorted(loinc_codes))
    others = f" ({ignored} other result{'s' if ignored != 1 else ''} not kept)" if ignored else ""
    return Problem(
        "OBX",
        ErrorCode.REQUIRED_FIELD_MISSING,
        f"No CTC result: no OBX has LOINC {codes} in OBX-3{others}.",
    )


def _second_result_problem(order: _Order, obx: _Obx) -> Problem:
    # One accession names one draw: a second count in the same order has nowhere to go.
    return Problem(
        f"OBX^{obx.seq}^3",
        ErrorCode.DUPLICATE_KEY_IDENTIFIER,
        f"Order OBR^{order.seq} holds more than one CTC result: send one per accession.",
    )


def _retraction_problem(obx: _Obx) -> Problem:
    status = _result_status(obx)
    # A retraction changes what clinicians have already read: a person applies it.
    return Problem(
        f"OBX^{obx.seq}^11",
        ErrorCode.TABLE_VALUE_NOT_FOUND,
        f"OBX-11 {status}: the lab says the result was {_RETRACTIONS[status]}. CTC Track does "
        "not apply this automatically: ask the clinic to mark the draw as entered in error.",
    )


def _duplicate_accessions(results: Sequence[LabResult]) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for result in results:
        if result.accession in seen:
            problems.append(
                Problem(
                    result.location_of("accession"),
                    ErrorCode.DUPLICATE_KEY_IDENTIFIER,
                    f"Accession {result.accession} appears twice in this message.",
                )
            )
        seen.add(result.accession)
    return problems


# --- one CTC result ----------------------------------------------------------------------


def _lab_result(
    message: hl7.Message,
    order: _Order,
    obx: _Obx,
    loinc_codes: frozenset[str],
    tz: tzinfo,
) -> tuple[LabResult | None, list[Problem]]:
    mrn, mrn_problem = _mrn(order)
    accession, accession_at, accession_problem = _accession(order)
    drawn_at, drawn_at_at, time_problem = _draw_time(order, obx, tz)
    volume, volume_problem = _volume(obx)
    status, (qualifier, count), comment, count_problem = _outcome(message, order, obx)
    found = (mrn_problem, accession_problem, time_problem, volume_problem, count_problem)
    problems = [problem for problem in found if problem]
    if problems or drawn_at is None:
        return None, problems
    locations = {
        "result": f"OBX^{obx.seq}",
        "mrn": f"PID^{order.pid_seq}^3",
        "accession": accession_at,
        "drawn_at": drawn_at_at,
        "ctc_count": f"OBX^{obx.seq}^5",
        "count_qualifier": f"OBX^{obx.seq}^5",
        "blood_volume_ml": f"OBX^{obx.seq}^6",
        "status": f"OBX^{obx.seq}^11",
        "comment": f"NTE^{obx.seq}" if obx.notes else f"OBX^{obx.seq}",
    }
    result = LabResult(
        mrn=mrn,
        accession=accession,
        drawn_at=drawn_at,
        status=status,
        corrected=_result_status(obx) == "C",
        ctc_count=count,
        count_qualifier=qualifier,
        blood_volume_ml=volume,
        comment=comment,
        loinc_code=_loinc_of(obx.segment, loinc_codes),
        locations=locations,
    )
    return result, []


def _mrn(order: _Order) -> tuple[str, Problem | None]:
    """PID-3: the identifier of type MR if one is sent, else the first one."""
    identifiers = [
        (_value(order.pid, 3, 1, repetition).strip(), _value(order.pid, 3, 5, repetition))
        for repetition in range(1, _repetitions(order.pid, 3) + 1)
    ]
    identifiers = [(value, kind) for value, kind in identifiers if value]
    chosen = next((value for value, kind in identifiers if kind == "MR"), "")
    if not chosen and identifiers:
        chosen = identifiers[0][0]
    if not chosen:
        where = f"PID^{order.pid_seq}^3"
        return "", Problem(where, ErrorCode.REQUIRED_FIELD_MISSING, "PID-3 (MRN) is empty.")
    return chosen, None


def _accession(order: _Order) -> tuple[str, str, Problem | None]:
    """OBR-3, else ORC-3 (filler order number), and where it was found."""
    obr_at = f"OBR^{order.seq}^3"
    accession = _value(order.obr, 3).strip()
    if accession:
        return accession, obr_at, None
    if order.orc is not None:
        accession = _value(order.orc, 3).strip()
        if accession:
            return accession, f"ORC^{order.orc_seq}^3", None
    # Without it a resent result would be stored twice and a correction could not be matched.
    problem = Problem(
        obr_at,
        ErrorCode.REQUIRED_FIELD_MISSING,
        "No accession: OBR-3 and ORC-3 (filler order number) are both empty.",
    )
    return "", obr_at, problem


def _draw_time(order: _Order, obx: _Obx, tz: tzinfo) -> tuple[datetime | None, str, Problem | None]:
    """OBX-14, else OBR-7, and where it was found."""
    candidates = [
        (_value(obx.segment, 14), f"OBX^{obx.seq}^14", "OBX-14"),
        (_value(order.obr, 7), f"OBR^{order.seq}^7", "OBR-7"),
    ]
    for value, where, name in candidates:
        if value.strip():
            try:
                return parse_timestamp(value, tz), where, None
            except ValueError as exc:
                return None, where, Problem(where, ErrorCode.DATA_TYPE_ERROR, f"{name}: {exc}")
    where = f"OBR^{order.seq}^7"
    problem = Problem(
        where,
        ErrorCode.REQUIRED_FIELD_MISSING,
        "No draw time: OBX-14 and OBR-7 (observation date/time) are both empty.",
    )
    return None, where, problem


def _volume(obx: _Obx) -> tuple[Decimal, Problem | None]:
    """7.5 mL unless the OBX-6 units name another volume (cells/<v> mL)."""
    units = _value(obx.segment, 6, 1) or _value(obx.segment, 6, 2)
    if not units.strip():
        return STANDARD_VOLUME_ML, None
    volume = volume_from_units(units)
    if volume is not None:
        return volume, None
    if _result_status(obx) == "X":
        return STANDARD_VOLUME_ML, None  # no count: the volume does not matter
    problem = Problem(
        f"OBX^{obx.seq}^6",
        ErrorCode.DATA_TYPE_ERROR,
        f"OBX-6 units '{units}' are not understood: send 'cells/7.5 mL' "
        "(or cells/<volume> mL for another blood volume).",
    )
    return STANDARD_VOLUME_ML, problem


def _outcome(
    message: hl7.Message, order: _Order, obx: _Obx
) -> tuple[str, tuple[str, int | None], str, Problem | None]:
    """The draw's status, (count qualifier, count) and comment; a problem with the count."""
    where = f"OBX^{obx.seq}^5"
    notes = [*order.notes, *obx.notes]
    reject_reason = _reject_reason(order)
    if reject_reason:
        comment = _join([f"Specimen rejected: {reject_reason}", *notes])
        problem = _count_with_rejection(where) if _count_text(obx).strip() else None
        return DrawStatus.REJECTED, ("", None), comment, problem
    if _result_status(obx) == "X":
        value = _free_text(message, obx.segment, 5)
        return DrawStatus.FAILED, ("", None), _join([value, *notes]), None
    qualifier, count, problem = _count(obx, where)
    return DrawStatus.RESULTED, (qualifier, count), _join(notes), problem


def _count(obx: _Obx, where: str) -> tuple[str, int | None, Problem | None]:
    """OBX-5 as (qualifier, count): NM a whole number; SN by its comparator (`values`)."""
    if _value(obx.segment, 2).upper() != "SN":
        count, problem = parse_count(_value(obx.segment, 5), where)
        return "", count, problem
    return parse_structured_count(
        comparator=_value(obx.segment, 5, 1),
        number=_value(obx.segment, 5, 2),
        rest=_value(obx.segment, 5, 3) + _value(obx.segment, 5, 4),
        sent=_raw(obx.segment, 5),
        where=where,
    )


def _count_with_rejection(where: str) -> Problem:
    return Problem(
        where,
        ErrorCode.DATA_TYPE_ERROR,
        "OBX-5 has a count but SPM-21 says the specimen was rejected: a rejected "
        "specimen has no count.",
    )


def _count_text(obx: _Obx) -> str:
    """OBX-5 as a number's text (whether a count was sent at all); SN `^5` or `=^5` reads 5."""
    if _value(obx.segment, 2).upper() == "SN":
        comparator, number = _value(obx.segment, 5, 1), _value(obx.segment, 5, 2)
        rest = _value(obx.segment, 5, 3) + _value(obx.segment, 5, 4)
        if comparator in ("", "=") and not rest:
            return number
        return _raw(obx.segment, 5)
    return _value(obx.segment, 5)


def _reject_reason(order: _Order) -> str:
    for spm in order.specimens:
        code, text = _value(spm, 21, 1).strip(), _value(spm, 21, 2).strip()
        if text and code:
            return f"{text} ({code})"
        if text or code:
            return text or code
    return ""


# --- reading fields safely -----------------------------------------------------------


def _value(segment: hl7.Segment, number: int, component: int = 1, repetition: int = 1) -> str:
    """A field's component, unescaped; "" when the message does not go that deep."""
    try:
        return str(
            segment.extract_field(field_num=number, repeat_num=repetition, component_num=component)
        )
    except IndexError:
        return ""


def _raw(segment: hl7.Segment, number: int) -> str:
    """A field as sent, components and escapes included (echoed back in the ACK)."""
    return str(segment(number)) if number < len(segment) else ""


def _repetitions(segment: hl7.Segment, number: int) -> int:
    return len(segment(number)) if number < len(segment) else 0


def _free_text(message: hl7.Message, segment: hl7.Segment, number: int) -> str:
    """A text field whole: repetitions on lines of their own, escapes resolved.

    Component and subcomponent separators sent unescaped in a note are kept as
    text rather than cutting the note short.
    """
    if number >= len(segment):
        return ""
    lines = [
        hl7.util.unescape(message, str(repetition), _NO_HIGHLIGHT) for repetition in segment(number)
    ]
    text = "\n".join(line for line in lines if line.strip())
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _note(message: hl7.Message, segment: hl7.Segment) -> list[str]:
    text = _free_text(message, segment, 3)
    return [text] if text else []


def _join(parts: Sequence[str]) -> str:
    return "\n".join(part for part in parts if part)


def _result_status(obx: _Obx) -> str:
    return _value(obx.segment, 11).strip().upper()


def _loinc_of(segment: hl7.Segment, loinc_codes: frozenset[str]) -> str:
    """The CTC LOINC code in OBX-3 (identifier or alternate identifier); "" if none."""
    for component in (1, 4):
        code = _value(segment, 3, component).strip()
        if code in loinc_codes:
            return code
    return ""
