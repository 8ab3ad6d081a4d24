"""Interoperability endpoints: HL7 v2 lab results in, FHIR R4 out.

`receive_hl7` is the one path every lab message takes (the endpoint and
`manage.py import_hl7`): split the body, parse each message
(`patients.hl7_in`, pure), store its results (`services.record_lab_results`,
one transaction per message) and build its ACK. The FHIR views read with the
same authentication and permissions as API v1 and answer in
`application/fhir+json`, errors included (as OperationOutcome).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from patients import audit, fhir, hl7_in, services
from patients.assessment import series_for
from patients.hl7_in import AckCode, ErrorCode, Problem
from patients.models import AccessAction, CTCDraw, Patient

HL7_CONTENT_TYPE = "application/hl7-v2; charset=utf-8"
# The account `import_hl7` acts as unless told otherwise: `entered_by` of its draws.
LAB_INTERFACE_ACCOUNT = "lab-interface"
# LOINC codes that are CTC counts whatever the settings say (clinical-rules.md section 5).
CTC_LOINC_CODES = frozenset({"67568-6", "68123-9"})

FHIR_PAGE_SIZE = 50
FHIR_MAX_PAGE_SIZE = 500


# --- HL7 v2 lab results in ----------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What became of one message, and its ACK."""

    header: hl7_in.Header
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

    def acks(self) -> str:
        return hl7_in.frame([r.ack for r in self.receipts], framed=self.framed)


def ctc_loinc_codes() -> frozenset[str]:
    return CTC_LOINC_CODES | frozenset(settings.CTC_LOINC_CODES.values())


def receive_hl7(body: bytes | str, *, by: Any, now: datetime | None = None) -> Delivery:
    """Process every ORU^R01 message in `body`, each stored all-or-nothing on its own.

    A bad message never keeps a good one in the same body from being stored.
    """
    now = now or timezone.now()
    split = hl7_in.split_body(body)
    if not any(text.startswith("MSH") for text in split.messages):
        problem = Problem(
            "MSH",
            ErrorCode.SEGMENT_SEQUENCE_ERROR,
            "No HL7 message found: send ORU^R01 messages in ER7, each starting with MSH.",
        )
        receipt = _receipt(hl7_in.Header(), AckCode.REJECT, (problem,), now=now)
        return Delivery(receipts=(receipt,), framed=split.framed, readable=False)
    receipts = tuple(_receive_message(text, by=by, now=now) for text in split.messages)
    return Delivery(receipts=receipts, framed=split.framed, readable=True)


def _receive_message(text: str, *, by: Any, now: datetime) -> Receipt:
    tz = timezone.get_default_timezone()
    parsed = hl7_in.parse_message(text, loinc_codes=ctc_loinc_codes(), tz=tz)
    if parsed.ack_code is not AckCode.ACCEPT:
        return _receipt(parsed.header, parsed.ack_code, parsed.problems, now=now)
    try:
        outcomes = services.record_lab_results(
            results=parsed.results, by=by, source=f"HL7 {parsed.header.control_id}", now=now
        )
    except services.LabResultsRefused as exc:
        problems = tuple(hl7_in.problem_for(e.result, e.field, e.message) for e in exc.errors)
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


def _receipt(
    header: hl7_in.Header,
    code: AckCode,
    problems: Sequence[Problem],
    *,
    now: datetime,
    text: str = "",
    outcomes: Sequence[services.LabOutcome] = (),
) -> Receipt:
    text = text or _refusal_text(problems)
    ack = hl7_in.build_ack(
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
        parts.append(f"{parsed.not_final} CTC result(s) neither final nor corrected: not stored")
    if parsed.ignored_results:
        parts.append(f"{parsed.ignored_results} other result(s) not kept (not CTC counts)")
    return "; ".join(parts)


class RecordsLabResults(BasePermission):
    """Lab results add draws and correct them: both permissions (oncologists, staff)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.has_perms(["patients.add_ctcdraw", "patients.change_ctcdraw"])
        )


class AnyAccept(BaseContentNegotiation):
    """Lab interfaces send Accept headers of their own; the answer is always the same."""

    def select_parser(self, request: Request, parsers: Sequence[Any]) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: Sequence[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class Hl7Oru(APIView):
    """`POST /api/v1/hl7/oru/`: ORU^R01 messages in, one ACK per message out.

    200 whenever the messages were processed, accepted (AA) or not (AE, AR);
    400 with an AR when the body holds no HL7 message at all.
    """

    parser_classes: list[Any] = []  # the body is read raw: labs send any Content-Type
    renderer_classes = [JSONRenderer]  # only for DRF's own 401 and 403 answers
    content_negotiation_class = AnyAccept
    permission_classes = [RecordsLabResults]
    http_method_names = ["post"]

    def post(self, request: Request) -> HttpResponse:
        delivery = receive_hl7(request.body, by=request.user)
        for receipt in delivery.receipts:
            _audit_import(request, receipt)
        return HttpResponse(
            delivery.acks().encode("utf-8"),
            status=200 if delivery.readable else 400,
            content_type=HL7_CONTENT_TYPE,
        )


def _audit_import(request: Request, receipt: Receipt) -> None:
    # AUDIT (lead): one access-log event per message processed. AccessAction has
    # no "import" action yet, so nothing is recorded until one is added there.
    if "import" not in AccessAction.values:
        return
    audit.record_read(
        request,
        "import",
        patient_ids=[o.draw.patient_id for o in receipt.outcomes],
        what=f"HL7 {receipt.header.control_id}: {receipt.code}",
    )


# --- FHIR R4 out ----------------------------------------------------------------------


class FhirRenderer(JSONRenderer):
    media_type = fhir.CONTENT_TYPE
    format = "fhir"


class FhirNegotiation(BaseContentNegotiation):
    """JSON only: `application/fhir+json`, `application/json`, `*/*` or no Accept at all."""

    acceptable = frozenset({fhir.CONTENT_TYPE, "application/json", "application/*", "*/*"})
    formats = frozenset({"", "json", fhir.CONTENT_TYPE, "application/json"})

    def select_parser(self, request: Request, parsers: Sequence[Any]) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: Sequence[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        accept = request.META.get("HTTP_ACCEPT", "")
        wanted = {part.split(";")[0].strip().lower() for part in accept.split(",")} - {""}
        requested_format = request.query_params.get("_format", "").strip().lower()
        if (wanted and not wanted & self.acceptable) or requested_format not in self.formats:
            raise NotAcceptable("This server answers in JSON only: application/fhir+json.")
        return renderers[0], renderers[0].media_type


class ReadsClinicalRecord(BasePermission):
    """The API's read permissions for patients and their draws (nurses, oncologists)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.has_perms(["patients.view_patient", "patients.view_ctcdraw"])
        )


_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    429: "throttled",
}


def fhir_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's own handling (statuses, WWW-Authenticate), with an OperationOutcome body."""
    response = api_settings.EXCEPTION_HANDLER(exc, context)
    if response is None:
        return None
    code = _ISSUE_CODES.get(response.status_code, "exception")
    response.data = fhir.operation_outcome(code, _error_text(response.data))
    return response


def _error_text(data: Any) -> str:
    # DRF's own errors carry `detail`; the FHIR views raise no field errors.
    return str(data["detail"]) if isinstance(data, dict) and "detail" in data else str(data)


class FhirView(APIView):
    renderer_classes = [FhirRenderer]
    parser_classes: list[Any] = []
    content_negotiation_class = FhirNegotiation
    permission_classes = [ReadsClinicalRecord]
    http_method_names = ["get", "head"]

    def get_exception_handler(self) -> Any:
        return fhir_exception_handler


class Metadata(FhirView):
    """`GET /fhir/r4/metadata`: the CapabilityStatement."""

    def get(self, request: Request) -> Response:
        return Response(fhir.capability_statement(base_url=_base_url(request), now=timezone.now()))


class PatientRead(FhirView):
    """`GET /fhir/r4/Patient/{id}`."""

    def get(self, request: Request, resource_id: str) -> Response:
        patient = _patient(resource_id)
        audit.record(
            request, AccessAction.API_READ, patient=patient, target=f"FHIR Patient/{patient.pk}"
        )
        return Response(fhir.patient_resource(patient))


class ObservationRead(FhirView):
    """`GET /fhir/r4/Observation/{id}`: one draw, assessed against its patient's series."""

    def get(self, request: Request, resource_id: str) -> Response:
        draw = _draw(resource_id)
        series = series_for(draw.patient)
        audit.record(
            request,
            AccessAction.API_READ,
            patient=draw.patient,
            target=f"FHIR Observation/{draw.pk}",
        )
        assessment = series.by_draw_id.get(draw.pk)
        return Response(
            fhir.observation(draw, assessment, patient=draw.patient, cutoff=series.cutoff)
        )


class ObservationSearch(FhirView):
    """`GET /fhir/r4/Observation?patient={id}&_count={n}&_offset={k}`: oldest first.

    Every draw on record is listed, those entered in error included (with
    that status). The patient is required: no search lists every patient.
    """

    def get(self, request: Request) -> Response:
        patient_id, count, offset = _search_parameters(request)
        patient = _patient(patient_id)
        series = series_for(patient)
        draws = series.all_draws()
        entries = [
            (
                _absolute(request, "fhir:observation", draw.pk),
                fhir.observation(
                    draw,
                    series.by_draw_id.get(draw.pk),
                    patient=patient,
                    cutoff=series.cutoff,
                ),
            )
            for draw in draws[offset : offset + count]
        ]
        audit.record(
            request,
            AccessAction.API_READ,
            patient=patient,
            target=f"FHIR Observation?patient={patient.pk}",
        )
        links = _page_links(request, patient.pk, count=count, offset=offset, total=len(draws))
        return Response(fhir.searchset(entries, total=len(draws), links=links))


def _patient(resource_id: str) -> Patient:
    if resource_id.isdigit():
        patient = Patient.objects.filter(pk=int(resource_id)).first()
        if patient is not None:
            return patient
    raise NotFound(f"No Patient with id {resource_id}.")


def _draw(resource_id: str) -> CTCDraw:
    if resource_id.isdigit():
        draw = CTCDraw.objects.select_related("patient").filter(pk=int(resource_id)).first()
        if draw is not None:
            return draw
    raise NotFound(f"No Observation with id {resource_id}.")


def _search_parameters(request: Request) -> tuple[str, int, int]:
    """`patient` (an id, or Patient/{id}), `_count` and `_offset`; 400 when unusable."""
    reference = request.query_params.get("patient", "").strip()
    if not reference:
        raise ParseError("Give the patient: Observation?patient={id}.")
    patient_id = reference.rsplit("/", 1)[-1]
    if reference.count("/") and not reference.removesuffix(patient_id).endswith("Patient/"):
        raise ParseError(f"patient={reference} is not a Patient reference.")
    count = _whole_number(request, "_count", FHIR_PAGE_SIZE)
    offset = _whole_number(request, "_offset", 0)
    return patient_id, min(count, FHIR_MAX_PAGE_SIZE), offset


def _whole_number(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ParseError(f"{name} must be a whole number, 0 or more (got '{text}').")
    return int(text)


def _page_links(
    request: Request, patient_id: int, *, count: int, offset: int, total: int
) -> dict[str, str]:
    def page(at: int) -> str:
        query = urlencode({"patient": patient_id, "_count": count, "_offset": at})
        return f"{_absolute(request, 'fhir:observation-search')}?{query}"

    links = {"self": page(offset)}
    if count and offset + count < total:
        links["next"] = page(offset + count)
    if count and offset > 0:
        links["previous"] = page(max(offset - count, 0))
    return links


def _absolute(request: Request, name: str, *args: Any) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


def _base_url(request: Request) -> str:
    return _absolute(request, "fhir:metadata").removesuffix("metadata")
