"""HL7 v2 lab results in: ORU^R01 messages to plain data, and the ACKs that answer them.

Pure: no database, no settings, no clock. The caller passes the CTC LOINC
codes, the clinic's time zone (for times sent without an offset), the
hospital's assigning authority, the time "now" and the control id of each ACK.
Storing is `services.record_lab_results`; `receive.receive_hl7` ties the two
together for the endpoint and the command; the ACKs and the problems they
report are in `ack`, field values in `values`.

What becomes a draw (docs/interoperability.md says the same for lab staff):

- each OBX whose OBX-3 (or its alternate identifier) is a CTC LOINC code;
- OBX-11 `F` final and `C` corrected carry a count in OBX-5: NM, a whole number
  (0 or more), or SN, `^12` exactly 12 or `>^1000` more than 1000 (a censored
  count; any other comparator or a range is refused); `X` (could not be
  obtained) is a *failed* draw, never a zero;
  an SPM-21 reject reason in the order makes it a *rejected* draw;
- the draw time is OBX-14, else OBR-7, else SPM-17 (a date without a time
  gives way to the next field); the accession OBR-3, else ORC-3 (at most 64
  characters); the volume 7.5 mL unless OBX-6 says `cells/<v> mL`; the NTE
  notes of the patient, the order and the result (and the reject reason)
  become the comment;
- the patient is PID-3: with an assigning authority given, its MR identifier
  (none or two: AE 204); else the repetition of type `MR`, else the first.
  PID-5, PID-7 and PID-8 travel with the result, for the services to check
  against the patient on record.

Segments nest as ORU^R01 nests them: a PID or an ORC closes the order before
it, so nothing after a new PID joins another patient's order.

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

from patients.interop.hl7.ack import (
    MLLP_END,
    MLLP_START,
    AckCode,
    ErrorCode,
    Header,
    Problem,
    escape,
)
from patients.interop.hl7.values import (
    is_date_only,
    is_partial_date,
    parse_count,
    parse_structured_count,
    parse_timestamp,
    volume_from_units,
)
from patients.rules import STANDARD_VOLUME_ML, DrawStatus

# The longest accession a draw keeps (CTCDraw.accession's max_length).
ACCESSION_MAX_LENGTH = 64
# Envelope segments of batch files: not part of any message.
_ENVELOPE = frozenset({"FHS", "FTS", "BHS", "BTS"})
# OBX-11 values that are stored; everything else (P preliminary, I pending, ...) is not.
_STORED_RESULT_STATUSES = frozenset({"F", "C", "X"})
# OBX-11 values that retract a result: never applied silently (see _retraction_problem).
_RETRACTIONS = {"W": "posted as wrong", "D": "deleted"}
# The UTF-8 byte-order mark Windows editors write before the first segment: read as
# UTF-8, and as Windows-1252 or ISO 8859-1 when the rest of the text is not UTF-8.
_BOMS = ("\ufeff", "\xef\xbb\xbf")
# `\H\` and `\N\` (highlighting on/off) carry no text.
_NO_HIGHLIGHT = {"H": "", "N": ""}


@dataclass(frozen=True)
class PatientIdentity:
    """What PID says about the patient besides the MRN, to check against the record.

    Empty values were not sent (and so cannot disagree with the record).
    """

    family_names: tuple[str, ...] = ()  # PID-5.1 of each repetition (legal, maiden...)
    birth_date: str = ""  # PID-7 as YYYY[MM[DD]]
    sex: str = ""  # PID-8 (HL7 table 0001: F, M, O, U, A, N)


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
    identity: PatientIdentity = PatientIdentity()
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
    for segment in (_without_bom(s.strip()) for s in text.split("\r")):
        if not segment or segment[:3] in _ENVELOPE:
            continue
        if segment.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(segment)
    return Body(messages=tuple("\r".join(m) for m in messages), framed=framed)


def _without_bom(segment: str) -> str:
    """A segment without a byte-order mark before it: never part of a segment ID."""
    for bom in _BOMS:
        segment = segment.removeprefix(bom)
    return segment


def _decode(body: bytes | str) -> str:
    """UTF-8 if the body is UTF-8, else Windows-1252, else ISO 8859-1.

    Older interfaces send 8859/1 (MSH-18), which has no printable characters at
    0x80-0x9F; text written on Windows that says 8859/1 holds Windows-1252 there
    (`€`, curly quotes, `–`). Every byte is valid in ISO 8859-1, the last resort.
    """
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return body.decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: not Windows-1252 either
        return body.decode("latin-1")


# --- parsing one message ---------------------------------------------------------------


@dataclass
class _Obx:
    segment: hl7.Segment
    seq: int  # occurrence of OBX in the message, for ERR locations
    notes: list[str] = field(default_factory=list)


@dataclass
class _Patient:
    """A PID and the notes (NTE) of its PATIENT group, which precede its orders."""

    pid: hl7.Segment
    seq: int
    notes: list[str] = field(default_factory=list)


@dataclass
class _Order:
    """An OBR with its ORC, its patient, its OBX (each with its NTE), its SPM and notes."""

    obr: hl7.Segment
    seq: int
    patient: _Patient
    orc: hl7.Segment | None
    orc_seq: int
    notes: list[str] = field(default_factory=list)
    results: list[_Obx] = field(default_factory=list)
    specimens: list[tuple[hl7.Segment, int]] = field(default_factory=list)  # SPM, its seq


def parse_message(
    text: str, *, loinc_codes: Collection[str], tz: tzinfo, assigning_authority: str = ""
) -> ParsedMessage:
    """One ER7 message to its CTC results, or the problems that keep it from being stored.

    `loinc_codes`: OBX-3 identifiers that are CTC counts. `tz`: the clinic's
    time zone, for times sent without an offset. `assigning_authority`: the
    hospital's namespace or universal id (PID-3.4) whose MR identifiers are
    ours; "" takes the first MR identifier, whoever assigned it.
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
    reading = _Reading(frozenset(loinc_codes), tz, assigning_authority.strip())
    return _content(message, header, orders, reading)


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
        sending_application=_our_delimiters(message, msh, 3),
        sending_facility=_our_delimiters(message, msh, 4),
        receiving_facility=_our_delimiters(message, msh, 6),
        processing_id=_our_delimiters(message, msh, 11),
    )


def _our_delimiters(message: hl7.Message, segment: hl7.Segment, number: int) -> str:
    """A field's first repetition rewritten with the standard delimiters `^` and `&`.

    The ACK echoes the sender's fields; written as sent, a sender's own
    delimiters (say `#` between components) would read as text in our ACK.
    """
    _, _, repetition, component, subcomponent = message.separators
    sent = _raw(segment, number).split(repetition)[0]
    components = [
        "&".join(escape(hl7.util.unescape(message, part)) for part in text.split(subcomponent))
        for text in sent.split(component)
    ]
    return "^".join(components).rstrip("^")


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


@dataclass
class _Grouping:
    """Where the segments read so far leave us: the group a NTE, OBX or SPM joins."""

    orders: list[_Order] = field(default_factory=list)
    patient: _Patient | None = None
    orc: tuple[hl7.Segment, int] | None = None
    order: _Order | None = None  # None after a PID or an ORC: the next OBR starts one


def _orders(message: hl7.Message) -> tuple[list[_Order], Problem | None]:
    """Group the segments as ORU^R01 nests them: PATIENT (PID, NTE), then its ORDERs.

    An order is an OBR with the ORC before it, its OBX, NTE and SPM. An NTE
    belongs to the OBX before it, or to the OBR when no OBX came yet, or to the
    patient when it follows the PID (patient notes, before any order). A PID or
    an ORC closes the order before it: what follows never joins an order of
    another patient.
    """
    state = _Grouping()
    counts: dict[str, int] = {}
    for segment in message:
        name = str(segment[0])
        counts[name] = seq = counts.get(name, 0) + 1
        problem = _group(state, message, name, segment, seq)
        if problem:
            return [], problem
    if state.patient is None:
        return [], _sequence_problem("PID", "The message has no PID segment.")
    return state.orders, None


def _group(
    state: _Grouping, message: hl7.Message, name: str, segment: hl7.Segment, seq: int
) -> Problem | None:
    """Place one segment (see `_orders`); a problem if it has no place there."""
    if name == "PID":
        state.patient, state.orc, state.order = _Patient(segment, seq), None, None
    elif name == "ORC":
        state.orc, state.order = (segment, seq), None
    elif name == "OBR":
        if state.patient is None:
            return _sequence_problem(f"OBR^{seq}", "OBR arrived before any PID segment.")
        orc_segment, orc_seq = state.orc or (None, 0)
        state.order = _Order(segment, seq, state.patient, orc_segment, orc_seq)
        state.orders.append(state.order)
        state.orc = None
    elif name == "NTE" and state.order is None and state.patient and state.orc is None:
        state.patient.notes.extend(_note(message, segment))
    elif name in ("OBX", "NTE", "SPM"):
        if state.order is None:
            return _sequence_problem(f"{name}^{seq}", _outside_order(name, state))
        _add_to_order(state.order, message, name, segment, seq)
    return None


def _outside_order(name: str, state: _Grouping) -> str:
    if not state.orders:
        return f"{name} arrived before any OBR."
    after = "an ORC" if state.orc else "a PID"
    return (
        f"{name} arrived after {after} segment and before its OBR: it belongs to no "
        "order (an OBX, NTE or SPM follows the OBR of its order)."
    )


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
        order.specimens.append((segment, seq))


def _sequence_problem(location: str, text: str) -> Problem:
    return Problem(location, ErrorCode.SEGMENT_SEQUENCE_ERROR, text)


@dataclass(frozen=True)
class _Reading:
    """How the receiving site reads a message (see `parse_message`)."""

    loinc_codes: frozenset[str]
    tz: tzinfo
    authority: str


def _content(
    message: hl7.Message, header: Header, orders: Sequence[_Order], reading: _Reading
) -> ParsedMessage:
    loinc_codes = reading.loinc_codes
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
        result, found = _lab_result(message, order, obx, reading)
        problems.extend(found)
        results.extend([result] if result else [])
    problems.extend(_duplicate_accessions(results))
    if not results and not problems:
        problems.append(_nothing_to_store(ignored, not_final, loinc_codes))
    return ParsedMessage(
        header=header,
        results=() if problems else tuple(results),  # all or nothing
        # A patient's problem (PID-3, PID-7) is found once per order: reported once.
        problems=tuple(dict.fromkeys(problems)),
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
    message: hl7.Message, order: _Order, obx: _Obx, reading: _Reading
) -> tuple[LabResult | None, list[Problem]]:
    mrn, mrn_problem = _mrn(order.patient, reading.authority)
    identity, identity_problem = _identity(order.patient)
    accession, accession_at, accession_problem = _accession(order)
    drawn_at, drawn_at_at, time_problem = _draw_time(order, obx, reading.tz)
    volume, volume_problem = _volume(obx)
    status, (qualifier, count), comment, count_problem = _outcome(message, order, obx)
    found = (
        mrn_problem,
        identity_problem,
        accession_problem,
        time_problem,
        volume_problem,
        count_problem,
    )
    problems = [problem for problem in found if problem]
    if problems or drawn_at is None:
        return None, problems
    pid = f"PID^{order.patient.seq}"
    locations = {
        "result": f"OBX^{obx.seq}",
        "mrn": f"{pid}^3",
        "family_name": f"{pid}^5",
        "birth_date": f"{pid}^7",
        "sex": f"{pid}^8",
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
        loinc_code=_loinc_of(obx.segment, reading.loinc_codes),
        identity=identity,
        locations=locations,
    )
    return result, []


@dataclass(frozen=True)
class _Identifier:
    """One repetition of PID-3 (CX): the id, its type, its authority's two ids."""

    value: str
    kind: str  # PID-3.5, "MR" for a medical record number
    namespace: str  # PID-3.4.1
    universal: str  # PID-3.4.2, an OID for example


def _mrn(patient: _Patient, authority: str) -> tuple[str, Problem | None]:
    """PID-3: our MR identifier (see `_mrn_of`); a problem when there is none."""
    where = f"PID^{patient.seq}^3"
    identifiers = [i for i in _identifiers(patient.pid) if i.value]
    if not identifiers:
        return "", Problem(where, ErrorCode.REQUIRED_FIELD_MISSING, "PID-3 (MRN) is empty.")
    if not authority:
        # Without a configured authority: the MR identifier, else the first one.
        mr = [i for i in identifiers if i.kind == "MR"]
        return (mr or identifiers)[0].value, None
    # A number another hospital assigned may equal one of ours: only ours is used.
    ours = {
        i.value
        for i in identifiers
        if i.kind in ("MR", "") and authority in (i.namespace, i.universal)
    }
    if len(ours) == 1:
        return ours.pop(), None
    sent = ", ".join(
        f"{i.value} ({i.namespace or i.universal or 'no authority'})" for i in identifiers
    )
    text = (
        f"PID-3 has no medical record number (MR) assigned by {authority} (PID-3.4); sent: {sent}."
        if not ours
        else f"PID-3 has {len(ours)} different medical record numbers assigned by {authority}."
    )
    return "", Problem(where, ErrorCode.UNKNOWN_KEY_IDENTIFIER, text)


def _identifiers(pid: hl7.Segment) -> list[_Identifier]:
    return [
        _Identifier(
            value=_value(pid, 3, 1, repetition).strip(),
            kind=_value(pid, 3, 5, repetition).strip().upper(),
            namespace=_subcomponent(pid, 3, 4, 1, repetition).strip(),
            universal=_subcomponent(pid, 3, 4, 2, repetition).strip(),
        )
        for repetition in range(1, _repetitions(pid, 3) + 1)
    ]


def _identity(patient: _Patient) -> tuple[PatientIdentity, Problem | None]:
    """Who PID-5, PID-7 and PID-8 say the patient is, to check against the record."""
    pid = patient.pid
    family_names = tuple(
        name
        for repetition in range(1, _repetitions(pid, 5) + 1)
        if (name := _value(pid, 5, 1, repetition).strip())
    )
    birth = _value(pid, 7).strip()
    identity = PatientIdentity(
        family_names=family_names, birth_date=birth[:8], sex=_value(pid, 8).strip().upper()
    )
    if birth and not is_partial_date(birth[:8]):
        problem = Problem(
            f"PID^{patient.seq}^7",
            ErrorCode.DATA_TYPE_ERROR,
            f"PID-7 (date of birth) '{birth}' is not a date: use YYYYMMDD.",
        )
        return identity, problem
    return identity, None


def _accession(order: _Order) -> tuple[str, str, Problem | None]:
    """OBR-3, else ORC-3 (filler order number), and where it was found."""
    obr_at = f"OBR^{order.seq}^3"
    sent = [(_value(order.obr, 3).strip(), obr_at, "OBR-3")]
    if order.orc is not None:
        sent.append((_value(order.orc, 3).strip(), f"ORC^{order.orc_seq}^3", "ORC-3"))
    for accession, where, name in sent:
        if len(accession) > ACCESSION_MAX_LENGTH:
            problem = Problem(
                where,
                ErrorCode.DATA_TYPE_ERROR,
                f"{name} (the accession) is {len(accession)} characters long: CTC Track "
                f"keeps at most {ACCESSION_MAX_LENGTH}.",
            )
            return "", where, problem
        if accession:
            return accession, where, None
    # Without it a resent result would be stored twice and a correction could not be matched.
    problem = Problem(
        obr_at,
        ErrorCode.REQUIRED_FIELD_MISSING,
        "No accession: OBR-3 and ORC-3 (filler order number) are both empty.",
    )
    return "", obr_at, problem


def _draw_time(order: _Order, obx: _Obx, tz: tzinfo) -> tuple[datetime | None, str, Problem | None]:
    """OBX-14, else OBR-7, else SPM-17 (collection time), and where it was found.

    A field with a date and no time gives way to the next one that has the time.
    """
    candidates = [
        (_value(obx.segment, 14), f"OBX^{obx.seq}^14", "OBX-14"),
        (_value(order.obr, 7), f"OBR^{order.seq}^7", "OBR-7"),
        *((_value(spm, 17), f"SPM^{seq}^17", "SPM-17") for spm, seq in order.specimens),
    ]
    dates_only = []
    for value, where, name in (c for c in candidates if c[0].strip()):
        if is_date_only(value):
            dates_only.append((value, where, name))
            continue
        try:
            return parse_timestamp(value, tz), where, None
        except ValueError as exc:
            return None, where, Problem(where, ErrorCode.DATA_TYPE_ERROR, f"{name}: {exc}")
    if dates_only:
        value, where, _ = dates_only[0]
        names = " and ".join(name for _, _, name in dates_only)
        verb = "gives" if len(dates_only) == 1 else "give"
        problem = Problem(
            where,
            ErrorCode.DATA_TYPE_ERROR,
            f"{names} {verb} a date without a time ('{value.split('^')[0].strip()}') and no other "
            "field has the time: send the draw time as YYYYMMDDHHMM[SS][+/-ZZZZ].",
        )
        return None, where, problem
    where = f"OBR^{order.seq}^7"
    problem = Problem(
        where,
        ErrorCode.REQUIRED_FIELD_MISSING,
        "No draw time: OBX-14, OBR-7 and SPM-17 (observation and collection date/time) "
        "are all empty.",
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
    notes = [*order.patient.notes, *order.notes, *obx.notes]
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
    for spm, _ in order.specimens:
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


def _subcomponent(
    segment: hl7.Segment, number: int, component: int, subcomponent: int, repetition: int
) -> str:
    try:
        return str(
            segment.extract_field(
                field_num=number,
                repeat_num=repetition,
                component_num=component,
                subcomponent_num=subcomponent,
            )
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
