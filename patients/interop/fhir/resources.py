"""FHIR R4 out: the record as FHIR resources (plain dicts, ready for JSON).

Builds resources from model rows and what `patients.rules` said about them;
no request handling and no queries (the caller passes the patient, the draw
and its assessment). docs/clinical-rules.md section 5 says what an Observation
holds; docs/interoperability.md says it for the systems that read them.

Status of an Observation: `final` for resulted, rejected and failed draws,
`registered` for a pending draw (no result yet), `cancelled` for a cancelled
draw, and `entered-in-error` for a draw marked so (its values are kept, but
it carries no interpretation: the rules leave it out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from patients import rules, wording
from patients.models import CountQualifier, CTCDraw, DrawStatus, Patient
from patients.rules import STANDARD_VOLUME_ML

FHIR_VERSION = "4.0.1"
CONTENT_TYPE = "application/fhir+json"
UNIT = "cells/7.5 mL"

LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"

# Official LOINC displays, only where the specification quotes them: a display
# that differs from LOINC's own is worse than none (code.text says what it is).
LOINC_DISPLAYS = {"68123-9": "Circulating tumor cells.prostate [#/volume] in Blood"}
CODE_TEXT = "CellSearch circulating tumour cell count"

_STATUS: dict[str, str] = {  # by a draw's status, as stored
    DrawStatus.RESULTED: "final",
    DrawStatus.REJECTED: "final",
    DrawStatus.FAILED: "final",
    DrawStatus.PENDING: "registered",
    DrawStatus.CANCELLED: "cancelled",
}
# Not evaluable: no value, and why (clinical-rules.md section 5).
_ABSENT = {
    DrawStatus.REJECTED: ("not-performed", "Not Performed", "Specimen rejected"),
    DrawStatus.FAILED: ("error", "Error", "Not evaluable (analytic failure)"),
}


# --- Observation -----------------------------------------------------------------------


def observation(
    draw: CTCDraw,
    assessment: rules.DrawAssessment | None,
    *,
    patient: Patient,
    cutoff: int | None,
) -> dict[str, Any]:
    """One draw as an Observation.

    `assessment` is what the rules said about the draw (None for a draw
    entered in error, which the rules leave out). `cutoff` is the patient's
    cut-off per 7.5 mL (inclusive), None when the cancer type has none.
    """
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(draw.pk),
        "meta": {"versionId": str(draw.version)},
    }
    if draw.accession:
        resource["identifier"] = [_accession_identifier(draw.accession)]
    resource |= {
        "status": "entered-in-error" if draw.entered_in_error else _STATUS[draw.status],
        "category": [_laboratory()],
        "code": _code(patient.cancer_type),
        "subject": {"reference": f"Patient/{patient.pk}"},
        "effectiveDateTime": _date_time(draw.drawn_at),
        "issued": _date_time(draw.entered_at),
        "method": {"text": "CellSearch"},
    }
    resource |= _value(draw)
    if assessment is not None and assessment.category is not None:
        resource["interpretation"] = _interpretation(assessment)
    notes = _notes(draw, cutoff)
    if notes:
        resource["note"] = [{"text": note} for note in notes]
    if cutoff is not None:
        resource["referenceRange"] = [_reference_range(cutoff, patient.cancer_type)]
    return resource


def _accession_identifier(accession: str) -> dict[str, Any]:
    filler = {"system": IDENTIFIER_TYPE, "code": "FILL", "display": "Filler Identifier"}
    return {"type": {"coding": [filler], "text": "Accession"}, "value": accession}


def _laboratory() -> dict[str, Any]:
    coding = {"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}
    return {"coding": [coding]}


def _code(cancer_type: str) -> dict[str, Any]:
    code = settings.CTC_LOINC_CODES.get(cancer_type)
    if not code:
        return {"text": CODE_TEXT}
    coding = {"system": LOINC, "code": code}
    if code in LOINC_DISPLAYS:
        coding["display"] = LOINC_DISPLAYS[code]
    return {"coding": [coding], "text": CODE_TEXT}


def _value(draw: CTCDraw) -> dict[str, Any]:
    """`valueQuantity` (per 7.5 mL) for a count; `dataAbsentReason` for a draw that has none.

    A lower bound (">1000") is the rate of its bound with `comparator` ">": rounded
    down like any rate, the bound sent is never above the one the lab gave.
    """
    count = draw.ctc_count
    if draw.status == DrawStatus.RESULTED and count is not None:
        quantity: dict[str, Any] = {"value": rate_value(count, draw.blood_volume_ml)}
        if draw.count_qualifier == CountQualifier.MORE_THAN:
            quantity["comparator"] = ">"
        return {"valueQuantity": {**quantity, "unit": UNIT}}
    if draw.status in _ABSENT:
        code, display, text = _ABSENT[DrawStatus(draw.status)]
        coding = {"system": DATA_ABSENT_REASON, "code": code, "display": display}
        return {"dataAbsentReason": {"coding": [coding], "text": text}}
    return {}  # pending or cancelled: no result yet, or never


def rate_value(ctc_count: int, blood_volume_ml: Decimal) -> int | float:
    """The rate per 7.5 mL of a count in a volume (mL), as sent: at most two decimals, rounded down.

    Rounded down so that a rate below a cut-off is never sent as the cut-off
    (4.996 goes out as 4.99, not 5.00). Whole rates are sent as integers.
    """
    rate = Decimal(ctc_count) * STANDARD_VOLUME_ML / Decimal(blood_volume_ml)
    rounded = rate.quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def _interpretation(assessment: rules.DrawAssessment) -> list[dict[str, Any]]:
    """H (unfavourable) or N (favourable); U as well when the rise is beyond counting noise.

    The v3 displays ("High", "Normal") are left out on purpose: clinicians read
    "unfavourable"/"favourable" (clinical-rules.md section 1), given as text.
    """
    unfavourable = assessment.category == rules.Category.UNFAVOURABLE
    interpretations = [
        {
            "coding": [{"system": INTERPRETATION, "code": "H" if unfavourable else "N"}],
            "text": str(assessment.category),
        }
    ]
    if any(flag.code == rules.FlagCode.RISE_BEYOND_NOISE for flag in assessment.flags):
        significant = {"system": INTERPRETATION, "code": "U", "display": "Significant change up"}
        interpretations.append({"coding": [significant], "text": "Rise larger than counting noise"})
    return interpretations


def _reference_range(cutoff: int, cancer_type: str) -> dict[str, Any]:
    # Text only (spec section 6): FHIR's `high` is inclusive, and no inclusive bound
    # says "below 5" for rates such as 4.5, which are favourable.
    return {"text": f"favourable below {cutoff} CTC per 7.5 mL ({cancer_type})"}


def _notes(draw: CTCDraw, cutoff: int | None) -> list[str]:
    notes = []
    if draw.entered_in_error:
        notes.append(f"Entered in error: {draw.error_reason}")
    volume = Decimal(draw.blood_volume_ml)
    if draw.status == DrawStatus.RESULTED and volume != STANDARD_VOLUME_ML:
        assert draw.ctc_count is not None  # resulted
        counted = wording.counted_in_volume(
            draw.ctc_count, volume, censored=draw.count_qualifier == ">"
        )
        notes.append(f"{counted}; the rate per 7.5 mL is indicative only.")
    if draw.status == DrawStatus.RESULTED and cutoff is None:
        notes.append("No cut-off is set for this cancer type: the count is not classified.")
    if draw.comment:
        notes.append(draw.comment)
    return notes


def _date_time(moment: datetime) -> str:
    """ISO 8601 with the offset of the clinic's time zone, to the second."""
    return timezone.localtime(moment).replace(microsecond=0).isoformat()


# --- Patient -----------------------------------------------------------------------------


def patient_resource(patient: Patient) -> dict[str, Any]:
    """A patient: MRN (with the site's MRN system), name, gender, birth date."""
    medical_record = {"system": IDENTIFIER_TYPE, "code": "MR", "display": "Medical record number"}
    return {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": {"versionId": str(patient.version)},
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [medical_record]},
                "system": settings.CTCTRACK_MRN_SYSTEM,
                "value": patient.mrn,
            }
        ],
        "active": patient.active,
        "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
        # The model's sex values are FHIR's administrative-gender codes.
        "gender": patient.sex,
        "birthDate": patient.birth_date.isoformat(),
    }


# --- CapabilityStatement, Bundle, OperationOutcome ---------------------------------------


def capability_statement(*, base_url: str, now: datetime) -> dict[str, Any]:
    """What this server does: read Patient; read and search Observation by patient."""
    patient_search = {
        "name": "patient",
        "type": "reference",
        "documentation": "Required: the patient whose CTC draws to list (oldest first).",
    }
    count = {"name": "_count", "type": "number", "documentation": "Entries per page (max 500)."}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _date_time(now),
        "publisher": "CTC Track",
        "kind": "instance",
        "software": {"name": "CTC Track"},
        "implementation": {"description": "CTC Track: CellSearch CTC counts", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Every request is authenticated: 'Authorization: Token "
                    "<key>' (POST /api/v1/auth/token/) or a signed-in session. Reading "
                    "needs the nurse or oncologist role."
                },
                "resource": [
                    {"type": "Patient", "interaction": [{"code": "read"}]},
                    {
                        "type": "Observation",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [patient_search, count],
                    },
                ],
            }
        ],
    }


def searchset(
    entries: Sequence[tuple[str, dict[str, Any]]],
    *,
    total: int,
    links: Mapping[str, str],
) -> dict[str, Any]:
    """A searchset Bundle of (fullUrl, resource) entries; `links` maps relation to URL."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
        "entry": [
            {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
            for url, resource in entries
        ],
    }


def operation_outcome(code: str, text: str, *, severity: str = "error") -> dict[str, Any]:
    """One issue: `code` from FHIR's issue-type codes (not-found, invalid, forbidden...)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    }
