"""FHIR R4 out: the record as FHIR resources (plain dicts, ready for JSON).

Builds resources from model rows and what `patients.rules` said about them;
no request handling and no queries (the caller passes the patient, the draw
and its assessment). docs/clinical-rules.md section 5 says what an Observation
holds; docs/interoperability.md says it for the systems that read them.

Status of an Observation: `final` for resulted, rejected and failed draws,
`registered` for a pending draw (no result yet), `cancelled` for a cancelled
draw, and `entered-in-error` for a draw marked so (its values are kept, but
it carries no interpretation: the rules leave it out). Every Observation has
a value or a `dataAbsentReason` (US Core's us-core-2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from patients import rules, wording
from patients.models import CountQualifier, CTCDraw, DrawStatus, Patient
from patients.rules import STANDARD_VOLUME_ML

FHIR_VERSION = "4.0.1"
CONTENT_TYPE = "application/fhir+json"
# The rate per 7.5 mL: the unit's text is the clinical rules' (section 6); its UCUM
# code says the same with an integer factor, as UCUM has no decimal factors
# (`{cells}/7.5.mL` would read "cells / 7, times 5 mL"). 7500 uL = 7.5 mL.
UNIT = "cells/7.5 mL"
UCUM = "http://unitsofmeasure.org"
UNIT_CODE = "{cells}/(7500.uL)"

LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBSERVATION_STATUS = "http://hl7.org/fhir/observation-status"

# Profiles an Observation or a Patient conforms to (claimed in `meta.profile` only
# where it does: an Observation needs a LOINC code, see `_profiles`).
US_CORE_LAB = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
MCODE_TUMOR_MARKER_TEST = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor-marker-test"
US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
MCODE_CANCER_PATIENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-patient"

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
# No value, and why: not evaluable (clinical-rules.md section 5), not resulted yet,
# or never (us-core-2 asks a value or a reason of every Observation).
_ABSENT = {
    DrawStatus.REJECTED: ("not-performed", "Not Performed", "Specimen rejected"),
    DrawStatus.FAILED: ("error", "Error", "Not evaluable (analytic failure)"),
    DrawStatus.PENDING: ("temp-unknown", "Temporarily Unknown", "Result pending"),
    DrawStatus.CANCELLED: ("not-performed", "Not Performed", "Draw cancelled"),
}


# --- Observation -----------------------------------------------------------------------


def observation(
    draw: CTCDraw,
    assessment: rules.DrawAssessment | None,
    *,
    patient: Patient,
    cutoff: int | None,
    last_updated: datetime | None = None,
) -> dict[str, Any]:
    """One draw as an Observation.

    `assessment` is what the rules said about the draw (None for a draw
    entered in error, which the rules leave out). `cutoff` is the patient's
    cut-off per 7.5 mL (inclusive), None when the cancer type has none.
    `last_updated` is the last change to anything the resource is built from
    (the endpoints always give it).
    """
    code = _code(patient.cancer_type)
    meta: dict[str, Any] = {"versionId": str(draw.version)}
    if last_updated is not None:
        meta["lastUpdated"] = instant(last_updated)
    if "coding" in code:
        meta["profile"] = [US_CORE_LAB, MCODE_TUMOR_MARKER_TEST]
    resource: dict[str, Any] = {"resourceType": "Observation", "id": str(draw.pk), "meta": meta}
    if draw.accession:
        resource["identifier"] = [_accession_identifier(draw.accession)]
    resource |= {
        "status": "entered-in-error" if draw.entered_in_error else _STATUS[draw.status],
        "category": [_laboratory()],
        "code": code,
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
        return {"valueQuantity": {**quantity, "unit": UNIT, "system": UCUM, "code": UNIT_CODE}}
    code, display, text = _ABSENT[DrawStatus(draw.status)]
    coding = {"system": DATA_ABSENT_REASON, "code": code, "display": display}
    return {"dataAbsentReason": {"coding": [coding], "text": text}}


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


def instant(moment: datetime) -> str:
    """A FHIR instant in UTC, to the second (as precise as `Last-Modified`)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- Patient -----------------------------------------------------------------------------


def patient_resource(patient: Patient, *, last_updated: datetime) -> dict[str, Any]:
    """A patient: MRN (with the site's MRN system), name, gender, birth date."""
    medical_record = {"system": IDENTIFIER_TYPE, "code": "MR", "display": "Medical record number"}
    return {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": {
            "versionId": str(patient.version),
            "lastUpdated": instant(last_updated),
            "profile": [US_CORE_PATIENT, MCODE_CANCER_PATIENT],
        },
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


# Observation's search parameters: (name, type, definition, documentation).
OBSERVATION_SEARCH_PARAMETERS = (
    (
        "patient",
        "reference",
        "http://hl7.org/fhir/SearchParameter/clinical-patient",
        "Required (or subject): the patient whose CTC draws to list, as an id, Patient/{id} "
        "or this server's absolute URL; another server's Patient is refused.",
    ),
    (
        "subject",
        "reference",
        "http://hl7.org/fhir/SearchParameter/Observation-subject",
        "Patient/{id} (or subject:Patient={id}): the same as patient.",
    ),
    (
        "code",
        "token",
        "http://hl7.org/fhir/SearchParameter/clinical-code",
        "system|code, code, |code or system|; a comma means or.",
    ),
    (
        "category",
        "token",
        "http://hl7.org/fhir/SearchParameter/Observation-category",
        "laboratory (system http://terminology.hl7.org/CodeSystem/observation-category).",
    ),
    (
        "date",
        "date",
        "http://hl7.org/fhir/SearchParameter/clinical-date",
        "The draw time, with the prefixes eq (default), ne, gt, lt, ge, le; a year, month, "
        "day, minute or second; without an offset in the clinic's time zone.",
    ),
    (
        "status",
        "token",
        "http://hl7.org/fhir/SearchParameter/Observation-status",
        "registered, final, cancelled, entered-in-error; a comma means or.",
    ),
    ("_sort", "string", None, "date (oldest first, the default) or -date (newest first)."),
    ("_count", "number", None, "Entries per page (default 50, at most 500)."),
    ("_summary", "token", None, "count: the total only."),
)


def capability_statement(*, base_url: str, now: datetime) -> dict[str, Any]:
    """What this server does: read Patient; read and search Observation by patient."""
    search_params = []
    for name, kind, definition, documentation in OBSERVATION_SEARCH_PARAMETERS:
        param = {"name": name, "type": kind, "documentation": documentation}
        if definition:
            param["definition"] = definition
        search_params.append(param)
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
                    "description": "Every request but this statement is authenticated: "
                    "'Authorization: Bearer <key>' or 'Authorization: Token <key>' (a key "
                    "from POST /api/v1/auth/token/), or a signed-in session. Reading needs "
                    "the nurse or oncologist role."
                },
                "resource": [
                    {
                        "type": "Patient",
                        "supportedProfile": [US_CORE_PATIENT, MCODE_CANCER_PATIENT],
                        "interaction": [{"code": "read"}],
                        "conditionalRead": "full-support",
                    },
                    {
                        "type": "Observation",
                        "supportedProfile": [US_CORE_LAB, MCODE_TUMOR_MARKER_TEST],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "conditionalRead": "full-support",
                        "searchParam": search_params,
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
    outcome: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle of (fullUrl, resource) entries; `links` maps relation to URL.

    `outcome`, an OperationOutcome about the search (parameters it ignored), is
    the first entry, with search mode `outcome`.
    """
    found = [
        {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
        for url, resource in entries
    ]
    if outcome is not None:
        found.insert(0, {"resource": outcome, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
    }
    if found:
        bundle["entry"] = found
    return bundle


def operation_outcome(code: str, text: str, *, severity: str = "error") -> dict[str, Any]:
    """One issue: `code` from FHIR's issue-type codes (not-found, invalid, forbidden...)."""
    return outcome_of([(severity, code, text)])


def outcome_of(issues: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """An OperationOutcome of (severity, issue-type code, diagnostics) issues."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": text}
            for severity, code, text in issues
        ],
    }
