"""FHIR R4 read endpoints, mounted at /fhir/r4/.

They read through `patients.access`, with the same authentication and
permissions as API v1, and answer in `application/fhir+json`, errors included
(as OperationOutcome).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from patients import access, audit
from patients.accounts.permissions import every_method
from patients.assessment import series_for
from patients.interop.fhir import resources as fhir
from patients.models import AccessAction, CTCDraw, Patient

FHIR_PAGE_SIZE = 50
FHIR_MAX_PAGE_SIZE = 500


class FhirRenderer(JSONRenderer):
    media_type = fhir.CONTENT_TYPE
    format = "fhir"


class FhirNegotiation(BaseContentNegotiation):
    """JSON only: `application/fhir+json`, `application/json`, `*/*` or no Accept at all."""

    acceptable = frozenset({fhir.CONTENT_TYPE, "application/json", "application/*", "*/*"})
    formats = frozenset({"", "json", fhir.CONTENT_TYPE, "application/json"})

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        accept = request.META.get("HTTP_ACCEPT", "")
        wanted = {part.split(";")[0].strip().lower() for part in accept.split(",")} - {""}
        requested_format = request.query_params.get("_format", "").strip().lower()
        if (wanted and not wanted & self.acceptable) or requested_format not in self.formats:
            raise NotAcceptable("This server answers in JSON only: application/fhir+json.")
        renderer = next(iter(renderers))  # the view's first renderer: JSON, as FHIR
        return renderer, renderer.media_type


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
    # DRF's settings import the handler from its dotted path; their stubs type the
    # setting as it is written (a string, or the function).
    response = api_settings.EXCEPTION_HANDLER(exc, context)  # type: ignore[operator]
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
    # The API's read permissions for patients and their draws (nurses, oncologists).
    required_perms = every_method("patients.view_patient", "patients.view_ctcdraw")
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
        patient = _patient(request.user, resource_id)
        audit.record(
            request, AccessAction.API_READ, patient=patient, target=f"FHIR Patient/{patient.pk}"
        )
        return Response(fhir.patient_resource(patient))


class ObservationRead(FhirView):
    """`GET /fhir/r4/Observation/{id}`: one draw, assessed against its patient's series."""

    def get(self, request: Request, resource_id: str) -> Response:
        draw = _draw(request.user, resource_id)
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
        patient = _patient(request.user, patient_id)
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


def _patient(user: Any, resource_id: str) -> Patient:
    if resource_id.isdigit():
        patient = access.patients(user).filter(pk=int(resource_id)).first()
        if patient is not None:
            return patient
    raise NotFound(f"No Patient with id {resource_id}.")


def _draw(user: Any, resource_id: str) -> CTCDraw:
    if resource_id.isdigit():
        draw = access.draws(user).select_related("patient").filter(pk=int(resource_id)).first()
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
