"""Receiving HL7 v2 lab results: the one path every lab message takes.

The HTTP endpoint (`patients.interop.hl7.views`) and `manage.py import_hl7` both
call `receive_hl7`: split the body, parse each message (`parse`, pure), store
its results (`services.record_lab_results`, one transaction per message) and
build its ACK; then `record_import` writes each message's access-log event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from patients import audit, services
from patients.interop.hl7 import parse as hl7_in
from patients.interop.hl7.ack import (
    AckCode,
    ErrorCode,
    Header,
    Problem,
    build_ack,
    frame,
    problem_for,
)
from patients.models import AccessAction
from patients.wording import how_many

# The account `import_hl7` acts as unless told otherwise: `entered_by` of its draws.
LAB_INTERFACE_ACCOUNT = "lab-interface"
# LOINC codes that are CTC counts whatever the settings say (clinical-rules.md section 6).
CTC_LOINC_CODES = frozenset({"67568-6", "68123-9"})
# The largest body (a request, an MLLP message) taken in; nginx's client_max_body_size.
MAX_BODY_BYTES = 10 * 1024 * 1024
# The answer (AR, ERR 207) to each message while the database cannot be reached.
DATABASE_UNAVAILABLE = (
    "The record could not be reached (database unavailable): send the message again "
    "later. A result already stored is recognised and never filed twice."
)


@dataclass(frozen=True)
class Receipt:
    """What became of one message, and its ACK."""

    header: Header
    code: AckCode
    text: str
    problems: tuple[Problem, ...]
    ack: str
    outcomes: tuple[services.LabOutcome, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """What became of a body (a request or a file): one receipt per message."""

    receipts: tuple[Receipt, ...]
    framed: bool
    readable: bool  # False: no message could even be found in it
    too_many: bool = False  # more messages than a request may hold: none looked at

    def acks(self) -> str:
        return frame([r.ack for r in self.receipts], framed=self.framed)


def ctc_loinc_codes() -> frozenset[str]:
    return CTC_LOINC_CODES | frozenset(settings.CTC_LOINC_CODES.values())


def receive_hl7(
    body: bytes | str, *, by: Any, now: datetime | None = None, max_messages: int | None = None
) -> Delivery:
    """Process every ORU^R01 message in `body`, each stored all-or-nothing on its own.

    A bad message never keeps a good one in the same body from being stored.
    Each message is its own transaction: call this outside any transaction, or
    a failure after the first message would undo messages already acknowledged.
    A body of more than `max_messages` messages is refused whole (AR for each),
    before any is stored.
    """
    now = now or timezone.now()
    split = hl7_in.split_body(body)
    if not any(text.startswith("MSH") for text in split.messages):
        problem = Problem(
            "MSH",
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            "No HL7 message found: send ORU^R01 messages in ER7, each starting with MSH.",
        )
        receipt = _receipt(Header(), AckCode.REJECT, (problem,), now=now)
        return Delivery(receipts=(receipt,), framed=split.framed, readable=False)
    if max_messages is not None and len(split.messages) > max_messages:
        return _too_many(split, max_messages, now=now)
    receipts = tuple(_receive_message(text, by=by, now=now) for text in split.messages)
    return Delivery(receipts=receipts, framed=split.framed, readable=True)


def refuse_body(text: str, *, framed: bool = False, now: datetime | None = None) -> Delivery:
    """A body refused unread (too large, not allowed...): one AR saying why."""
    problem = Problem("MSH", ErrorCode.APPLICATION_INTERNAL_ERROR, text)
    receipt = _receipt(Header(), AckCode.REJECT, (problem,), now=now or timezone.now())
    return Delivery(receipts=(receipt,), framed=framed, readable=False)


# A sender chooses its control ids: the log keeps at most this many characters of one,
# letters, digits and -._:/ only (anything else becomes "?").
LOGGED_CONTROL_ID_LENGTH = 40


def _loggable(control_id: str) -> str:
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "-._:/") else "?" for c in control_id)
    if len(kept) > LOGGED_CONTROL_ID_LENGTH:
        return kept[:LOGGED_CONTROL_ID_LENGTH] + "…"
    return kept or "(none)"


def record_import(
    receipt: Receipt,
    *,
    request: Any = None,
    by: Any = None,
    address: str | None = None,
    via: str = "",
) -> None:
    """One access-log `import` event for one message, naming the patients it touched.

    `request`: the HTTP request it came in (its user and address are logged);
    otherwise `by`, the account the results were entered as, and `address`, the
    sender's (an MLLP connection's), with `via` saying how it came ("MLLP from ...").
    """
    ids = sorted({o.draw.patient_id for o in receipt.outcomes})
    what = f"HL7 {_loggable(receipt.header.control_id)}: {receipt.code}" + (
        f" ({via})" if via else ""
    )
    audit.record_read(
        request, AccessAction.IMPORT, patient_ids=ids, what=what, user=by, address=address
    )


def _too_many(split: hl7_in.Body, max_messages: int, *, now: datetime) -> Delivery:
    """Every message of an over-large batch refused: none stored, so a resend starts clean."""
    count = len(split.messages)
    text = (
        f"This request holds {how_many(count, 'message')}; at most {max_messages} "
        f"{'is' if max_messages == 1 else 'are'} taken per request. "
        "Nothing in it was stored: send the messages in smaller batches."
    )
    receipts = _refuse_each(split, text, now=now)
    return Delivery(receipts=receipts, framed=split.framed, readable=True, too_many=True)


def refuse_unavailable(body: bytes | str, *, now: datetime | None = None) -> Delivery:
    """An AR for each message of `body` (its control ID echoed when its MSH can be read):
    the record could not be reached, the sender is to send again later.

    A body without any MSH gets one AR. Messages of the body stored before the
    database went away are recognised when they come again ("Already recorded").
    """
    split = hl7_in.split_body(body)
    if not any(text.startswith("MSH") for text in split.messages):
        return refuse_body(DATABASE_UNAVAILABLE, framed=split.framed, now=now)
    receipts = _refuse_each(split, DATABASE_UNAVAILABLE, now=now or timezone.now())
    return Delivery(receipts=receipts, framed=split.framed, readable=True)


def _refuse_each(split: hl7_in.Body, text: str, *, now: datetime) -> tuple[Receipt, ...]:
    """An AR for each message of a body, saying `text`, each echoing its own header."""
    problem = Problem("MSH", ErrorCode.APPLICATION_INTERNAL_ERROR, text)
    return tuple(
        _receipt(_header_of(message), AckCode.REJECT, (problem,), now=now)
        for message in split.messages
    )


def _header_of(text: str) -> Header:
    """The header a message's ACK answers, read without looking at the rest of it
    (an empty one when even the MSH cannot be read: the ACK is still an answer)."""
    try:
        return hl7_in.parse_message(text.split("\r", 1)[0], loinc_codes=(), tz=UTC).header
    except Exception:  # an ACK without the sender's control ID is better than none
        return Header()


def _receive_message(text: str, *, by: Any, now: datetime) -> Receipt:
    tz = timezone.get_default_timezone()
    parsed = hl7_in.parse_message(
        text,
        loinc_codes=ctc_loinc_codes(),
        tz=tz,
        assigning_authority=settings.CTCTRACK_HL7_ASSIGNING_AUTHORITY,
    )
    if parsed.ack_code is not AckCode.ACCEPT:
        return _receipt(parsed.header, parsed.ack_code, parsed.problems, now=now)
    inputs = [_lab_input(result) for result in parsed.results]
    try:
        outcomes = services.record_lab_results(
            results=inputs, by=by, source=f"HL7 {parsed.header.control_id}", now=now
        )
    except services.LabResultsRefused as exc:
        # Each error names the input it is about; the problem names where the lab sent it.
        sent = {id(given): result for given, result in zip(inputs, parsed.results, strict=True)}
        problems = tuple(problem_for(sent[id(e.result)], e.field, e.message) for e in exc.errors)
        return _receipt(parsed.header, AckCode.ERROR, problems, now=now)
    except IntegrityError:
        # The unique accession refused a second message stored at the same moment.
        problem = Problem(
            parsed.results[0].location_of("accession"),
            ErrorCode.DUPLICATE_KEY_IDENTIFIER,
            "A result with the same accession was being stored at the same moment: "
            "send this message again.",
        )
        return _receipt(parsed.header, AckCode.ERROR, (problem,), now=now)
    text = _accepted_text(outcomes, parsed)
    return _receipt(parsed.header, AckCode.ACCEPT, (), now=now, text=text, outcomes=outcomes)


def _lab_input(result: hl7_in.LabResult) -> services.LabResultInput:
    """The result as the services take it, without where in the message it came from."""
    return services.LabResultInput(
        mrn=result.mrn,
        drawn_at=result.drawn_at,
        blood_volume_ml=result.blood_volume_ml,
        status=result.status,
        ctc_count=result.ctc_count,
        count_qualifier=result.count_qualifier,
        accession=result.accession,
        comment=result.comment,
        corrected=result.corrected,
        identity=services.SentIdentity(
            family_names=result.identity.family_names,
            birth_date=result.identity.birth_date,
            sex=result.identity.sex,
        ),
    )


def _receipt(
    header: Header,
    code: AckCode,
    problems: Sequence[Problem],
    *,
    now: datetime,
    text: str = "",
    outcomes: Sequence[services.LabOutcome] = (),
) -> Receipt:
    text = text or _refusal_text(problems)
    ack = build_ack(
        header,
        code,
        text,
        problems,
        control_id=uuid.uuid4().hex[:20].upper(),
        now=now,
        tz=timezone.get_default_timezone(),
    )
    return Receipt(header, code, text, tuple(problems), ack, tuple(outcomes))


def _refusal_text(problems: Sequence[Problem]) -> str:
    more = len(problems) - 1
    first = problems[0].text if problems else "Not processed."
    return f"{first} (and {more} more: see ERR)" if more else first


_ACTIONS = {
    services.LAB_RECORDED: "Recorded",
    services.LAB_CORRECTED: "Corrected (the history keeps the earlier result)",
    services.LAB_COMPLETED: "Resulted the pending draw",
    services.LAB_UNCHANGED: "Already recorded, no change",
}


def _accepted_text(outcomes: Sequence[services.LabOutcome], parsed: hl7_in.ParsedMessage) -> str:
    parts = [f"{_ACTIONS[o.action]}: accession {o.result.accession}" for o in outcomes]
    if parsed.not_final:
        not_final = how_many(parsed.not_final, "CTC result")
        parts.append(f"{not_final} neither final nor corrected: not stored")
    if parsed.ignored_results:
        ignored = how_many(parsed.ignored_results, "other result")
        parts.append(f"{ignored} not kept (not CTC counts)")
    return "; ".join(parts)
