"""Lab results (HL7 v2): `patients.interop.hl7` reads the message, this stores its results.

Each message's results are stored all or none, through the same acts as a
draw entered by hand (`record_draw`, `update_draw`), so they are validated
and kept in the change history alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from patients import access
from patients.models import CTCDraw, DrawStatus, Patient, Sex
from patients.services.conflicts import ANY_VERSION
from patients.services.inputs import LabResultInput
from patients.services.records import Actor, record_draw, update_draw

LAB_RECORDED = "recorded"
LAB_CORRECTED = "corrected"
LAB_COMPLETED = "completed"  # a pending draw on record got its result
LAB_UNCHANGED = "unchanged"


@dataclass(frozen=True)
class LabOutcome:
    result: LabResultInput
    draw: CTCDraw
    action: str  # LAB_RECORDED, LAB_CORRECTED, LAB_COMPLETED or LAB_UNCHANGED


@dataclass(frozen=True)
class LabFieldError:
    result: LabResultInput
    field: str  # a draw field, "mrn", or "__all__"
    message: str


class LabResultsRefused(Exception):
    """Nothing of the lab message was stored; `errors` says why, per result and field."""

    def __init__(self, errors: Sequence[LabFieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(error.message for error in self.errors))


@transaction.atomic
def record_lab_results(
    *,
    results: Sequence[LabResultInput],
    by: Actor,
    source: str,
    now: datetime | None = None,
) -> list[LabOutcome]:
    """Store the CTC results of one lab message: every one of them, or none.

    Draws are matched by accession. A result already on record with the same
    values (status, count and its qualifier, volume, draw time) changes nothing: labs resend. With
    other values it is refused unless the lab sent it as a correction; then the
    draw is updated and its history keeps the earlier values, with the reason
    "Corrected result from lab (<source>)". A correction whose accession is not
    on record is recorded as a new draw. A draw the clinic recorded as pending
    gets the lab's result ("Result from lab (<source>)"). A result whose
    identity (birth date; family name and sex) disagrees with the patient the
    MRN names is refused (`_identity_mismatch`). Raises `LabResultsRefused`.
    """
    mrns = {r.mrn for r in results}
    # Only the patients the interface account may see (its care teams): another team's
    # patient is refused exactly as an unknown MRN, never revealed.
    # (Afresh: the MLLP listener acts as one account object for as long as it runs.)
    patients = {p.mrn: p for p in access.patients(access.afresh(by)).filter(mrn__in=mrns)}
    accessions = {r.accession for r in results if r.accession}
    locked = CTCDraw.objects.select_for_update().with_accessions(accessions)
    on_record = {d.accession: d for d in locked}
    errors = [
        error
        for r in results
        for error in _lab_result_errors(r, patients.get(r.mrn), on_record.get(r.accession))
    ]
    if errors:
        raise LabResultsRefused(errors)
    return [
        _store_lab_result(r, patients[r.mrn], on_record.get(r.accession), by, source, now)
        for r in results
    ]


def _lab_result_errors(
    result: LabResultInput, patient: Patient | None, draw: CTCDraw | None
) -> list[LabFieldError]:
    def error(field: str, message: str) -> list[LabFieldError]:
        return [LabFieldError(result, field, message)]

    accession = result.accession
    if patient is None:
        return error(
            "mrn",
            f"No patient with MRN {result.mrn} in CTC Track: register the patient, "
            "then send the result again.",
        )
    mismatch = _identity_mismatch(result, patient)
    if mismatch:
        return error(*mismatch)
    if draw is None:
        return []
    if draw.patient_id != patient.pk:
        return error(
            "accession",
            f"Accession {accession} is on record for another patient: check the patient "
            "identifier and the accession.",
        )
    if draw.entered_in_error:
        return error(
            "accession",
            f"The draw with accession {accession} is marked as entered in error in CTC Track; "
            "a lab message does not change it.",
        )
    if _replaces_lab_values(draw, result):
        return []
    if _lab_changes(draw, result, with_comment=False):
        return error(
            "accession",
            f"Accession {accession} is already recorded with other values ({draw}); "
            "send a corrected result to change it.",
        )
    return []


def _store_lab_result(
    result: LabResultInput,
    patient: Patient,
    draw: CTCDraw | None,
    by: Actor,
    source: str,
    now: datetime | None,
) -> LabOutcome:
    try:
        if draw is None:
            new = record_draw(
                patient=patient,
                by=by,
                drawn_at=result.drawn_at,
                status=result.status,
                ctc_count=result.ctc_count,
                count_qualifier=result.count_qualifier,
                blood_volume_ml=result.blood_volume_ml,
                accession=result.accession,
                comment=result.comment,
                now=now,
            )
            return LabOutcome(result, new, LAB_RECORDED)
        changes = _lab_changes(draw, result, with_comment=True)
        if not changes or not _replaces_lab_values(draw, result):
            return LabOutcome(result, draw, LAB_UNCHANGED)
        if result.corrected:
            reason, action = f"Corrected result from lab ({source})", LAB_CORRECTED
        else:
            reason, action = f"Result from lab ({source})", LAB_COMPLETED
        # A lab's result applies to the draw as it stands: the lab never read a version.
        draw = update_draw(
            draw=draw, by=by, changes=changes, version=ANY_VERSION, reason=reason, now=now
        )
        return LabOutcome(result, draw, action)
    except ValidationError as exc:
        raise LabResultsRefused(
            [
                LabFieldError(result, field, message)
                for field, messages in _messages_by_field(exc).items()
                for message in messages
            ]
        ) from exc


def _identity_mismatch(result: LabResultInput, patient: Patient) -> tuple[str, str] | None:
    """(field, message) when the lab describes someone other than the MRN's patient.

    The birth date must agree; the family name and the sex may not both differ
    (one of them may: a name changed by marriage, a sex recorded otherwise).
    What the lab left empty cannot disagree.
    """
    sent = result.identity
    if sent is None:
        return None
    mrn = result.mrn
    if sent.birth_date and not f"{patient.birth_date:%Y%m%d}".startswith(sent.birth_date):
        return (
            "birth_date",
            f"PID-7 (date of birth) does not match the patient with MRN {mrn} in CTC Track: "
            "check the patient identifier; nothing was stored.",
        )
    if _other_name(sent.family_names, patient.family_name) and _other_sex(sent.sex, patient.sex):
        return (
            "family_name",
            f"PID-5 (family name) and PID-8 (sex) both differ from the patient with MRN {mrn} "
            "in CTC Track: check the patient identifier; nothing was stored.",
        )
    return None


def _other_name(sent: Sequence[str], on_record: str) -> bool:
    return bool(sent) and _plain(on_record) not in {_plain(name) for name in sent}


def _plain(name: str) -> str:
    """A name without case or accents: `Müller-Lüdenscheidt` reads as `muller-ludenscheidt`."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


# HL7 table 0001 (administrative sex) codes that name one of our values; U, A, N say nothing.
_SEXES = {"F": Sex.FEMALE, "M": Sex.MALE, "O": Sex.OTHER}


def _other_sex(sent: str, on_record: str) -> bool:
    named = _SEXES.get(sent)
    return named is not None and on_record != Sex.UNKNOWN and named != on_record


def _replaces_lab_values(draw: CTCDraw, result: LabResultInput) -> bool:
    """A corrected result replaces what is on record, and any result fills a pending draw."""
    return result.corrected or draw.status == DrawStatus.PENDING


def _lab_changes(draw: CTCDraw, result: LabResultInput, *, with_comment: bool) -> dict[str, Any]:
    """The draw fields the lab's values would change (the comment only when the lab sent one)."""
    wanted: dict[str, Any] = {
        "drawn_at": result.drawn_at,
        "status": result.status,
        "ctc_count": result.ctc_count,
        "count_qualifier": result.count_qualifier,
        "blood_volume_ml": result.blood_volume_ml,
    }
    if with_comment and result.comment:
        wanted["comment"] = result.comment
    return {field: value for field, value in wanted.items() if getattr(draw, field) != value}


def _messages_by_field(exc: ValidationError) -> dict[str, list[str]]:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
