"""FHIR R4 read endpoints, mounted at /fhir/r4/.

They read through `patients.access`, with the same permissions as API v1 and
its tokens (sent as `Bearer` or `Token`), and answer in `application/fhir+json`,
errors included (as OperationOutcome). The CapabilityStatement is public.
Reads carry `ETag` and `Last-Modified` and answer conditional reads with 304.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Max
from django.urls import reverse
from django.utils import timezone
from django.utils.http import http_date, parse_http_date_safe
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, NotAcceptable, NotFound, ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, FormParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.mediatypes import media_type_matches
from rest_framework.views import APIView

from patients import access, audit
from patients.accounts.authentication import BearerTokenAuthentication
from patients.accounts.permissions import every_method
from patients.assessment import series_for
from patients.interop.fhir import resources as fhir
from patients.interop.fhir import search
from patients.models import AccessAction, CTCDraw, Patient


class FhirRenderer(JSONRenderer):
    media_type = fhir.CONTENT_TYPE
    format = "fhir"


class FhirNegotiation(BaseContentNegotiation):
    """JSON only: `application/fhir+json`, `application/json`, `*/*` or no Accept at all."""

    acceptable = frozenset({fhir.CONTENT_TYPE, "application/json", "application/*", "*/*"})
    formats = frozenset({"", "json", fhir.CONTENT_TYPE, "application/json"})

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        # Only `POST Observation/_search` has a parser: the form-encoded search.
        content_type = request.content_type or ""
        return next((p for p in parsers if media_type_matches(p.media_type, content_type)), None)

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
    415: "not-supported",
    429: "throttled",
}


class UnsupportedParameters(APIException):
    status_code = 400
    default_detail = "A search parameter is not supported."


def fhir_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's own handling (statuses, WWW-Authenticate), with an OperationOutcome body."""
    # DRF's settings import the handler from its dotted path; their stubs type the
    # setting as it is written (a string, or the function).
    response = api_settings.EXCEPTION_HANDLER(exc, context)  # type: ignore[operator]
    if response is None:
        return None
    code = _ISSUE_CODES.get(response.status_code, "exception")
    if isinstance(exc, UnsupportedParameters):
        code = "not-supported"
    response.data = fhir.operation_outcome(code, _error_text(response.data))
    return response


def _error_text(data: Any) -> str:
    # DRF's own errors carry `detail`; the FHIR views raise no field errors.
    return str(data["detail"]) if isinstance(data, dict) and "detail" in data else str(data)


class FhirView(APIView):
    renderer_classes = [FhirRenderer]
    parser_classes: list[Any] = []
    content_negotiation_class = FhirNegotiation
    # The API's tokens, as FHIR clients send them (Bearer) or as API v1's clients do
    # (Token), its 401 asking for Bearer; and sessions.
    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    # The API's read permissions for patients and their draws (nurses, oncologists).
    required_perms = every_method("patients.view_patient", "patients.view_ctcdraw")
    http_method_names = ["get", "head"]

    def get_exception_handler(self) -> Any:
        return fhir_exception_handler


class Metadata(FhirView):
    """`GET /fhir/r4/metadata`: the CapabilityStatement, public (it holds no patient data)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response(fhir.capability_statement(base_url=_base_url(request), now=timezone.now()))


class PatientRead(FhirView):
    """`GET /fhir/r4/Patient/{id}`."""

    def get(self, request: Request, resource_id: str) -> Response:
        patient = _patient(request.user, resource_id)
        audit.record(
            request, AccessAction.API_READ, patient=patient, target=f"FHIR Patient/{patient.pk}"
        )
        changed = _patient_changed(patient)
        return _read(request, fhir.patient_resource(patient, last_updated=changed), changed)


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
        changed = _series_changed(draw.patient)
        resource = fhir.observation(
            draw,
            series.by_draw_id.get(draw.pk),
            patient=draw.patient,
            cutoff=series.cutoff,
            last_updated=changed,
        )
        return _read(request, resource, changed)


class ObservationSearch(FhirView):
    """`GET /fhir/r4/Observation?patient={id}&...`: one patient's draws, oldest first.

    Every draw on record is listed, those entered in error included (with
    that status). The patient is required: no search lists every patient.
    The search parameters are `patients.interop.fhir.search`'s.
    """

    def get(self, request: Request) -> Response:
        return _search(request, list(request.query_params.lists()))


class ObservationSearchByPost(ObservationSearch):
    """`POST /fhir/r4/Observation/_search`: the same search, its parameters form-encoded."""

    parser_classes = [FormParser]
    http_method_names = ["post"]

    def post(self, request: Request) -> Response:
        body = request.data.lists() if hasattr(request.data, "lists") else []
        return _search(request, [*request.query_params.lists(), *body])


def _search(request: Request, params: list[tuple[str, list[str]]]) -> Response:
    pairs = [(name, value) for name, values in params for value in values]
    try:
        query = search.parse(pairs, base_url=_base_url(request), tz=timezone.get_current_timezone())
    except search.InvalidSearch as error:
        raise ParseError(str(error)) from None
    if query.unsupported and _strict(request):
        raise UnsupportedParameters(
            f"Not supported: {', '.join(query.unsupported)} (Prefer: handling=strict)."
        )
    patient = _patient(request.user, query.patient_id)
    series = series_for(patient)
    changed = _series_changed(patient)
    resources = [
        fhir.observation(
            draw,
            series.by_draw_id.get(draw.pk),
            patient=patient,
            cutoff=series.cutoff,
            last_updated=changed,
        )
        for draw in series.all_draws()
    ]
    found = [r for r in resources if query.matches(r)]
    if query.newest_first:
        found.reverse()
    audit.record(
        request,
        AccessAction.API_READ,
        patient=patient,
        target=f"FHIR Observation?patient={patient.pk}",
    )
    return Response(_bundle(request, query, patient, found))


def _bundle(
    request: Request, query: search.ObservationQuery, patient: Patient, found: list[dict[str, Any]]
) -> dict[str, Any]:
    count = 0 if query.summary_count else query.count
    page = found[query.offset : query.offset + count]
    entries = [(_absolute(request, "fhir:observation", r["id"]), r) for r in page]
    outcome = None
    if query.unsupported:
        outcome = fhir.outcome_of(
            [
                ("warning", "not-supported", f"Not supported, ignored: {name}.")
                for name in query.unsupported
            ]
        )
    links = _page_links(request, patient.pk, query, total=len(found))
    return fhir.searchset(entries, total=len(found), links=links, outcome=outcome)


def _strict(request: Request) -> bool:
    """`Prefer: handling=strict` (among any other preferences)."""
    preferences = request.META.get("HTTP_PREFER", "")
    return any(
        part.replace(" ", "").lower() == "handling=strict"
        for part in preferences.replace(";", ",").split(",")
    )


# --- conditional reads ---------------------------------------------------------------


def _read(request: Request, resource: dict[str, Any], changed: datetime) -> Response:
    """The resource with its `ETag` and `Last-Modified`, or 304 when the client's copy is current.

    The ETag is a digest of the resource as served, not its `versionId`: an
    Observation's interpretation can change (an earlier draw marked entered in
    error, the patient's cancer type) while the draw's own version does not.
    """
    digest = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).hexdigest()[:20]
    etag = f'W/"{digest}"'
    response = Response(status=304) if _not_modified(request, etag, changed) else Response(resource)
    response["ETag"] = etag
    response["Last-Modified"] = http_date(changed.timestamp())
    return response


def _not_modified(request: Request, etag: str, changed: datetime) -> bool:
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:  # wins over If-Modified-Since (RFC 9110 13.2.2)
        wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in wanted or etag.removeprefix("W/") in wanted
    since = parse_http_date_safe(request.META.get("HTTP_IF_MODIFIED_SINCE", ""))
    return since is not None and int(changed.timestamp()) <= since


def _patient_changed(patient: Patient) -> datetime:
    """The patient record's last change (its history), as `meta.lastUpdated`."""
    last = Patient.history.filter(id=patient.pk).aggregate(last=Max("history_date"))["last"]
    return last or timezone.now()  # no history (a bulk load): never "not modified"


def _series_changed(patient: Patient) -> datetime:
    """The last change to anything an Observation of `patient` is built from.

    The patient (cancer type: code and cut-off) and every draw of theirs
    (the interpretation follows the series): two queries, whatever the number
    of draws.
    """
    draws = CTCDraw.history.filter(patient_id=patient.pk).aggregate(last=Max("history_date"))
    return max(d for d in (_patient_changed(patient), draws["last"]) if d is not None)


# --- look-ups and links -----------------------------------------------------------------


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


def _page_links(
    request: Request, patient_id: int, query: search.ObservationQuery, *, total: int
) -> dict[str, str]:
    """`self`, `next` and `previous`: GET URLs with the parameters the search applied."""
    count, offset = query.count, query.offset

    def page(at: int) -> str:
        params = [("patient", patient_id), *query.applied, ("_count", count), ("_offset", at)]
        return f"{_absolute(request, 'fhir:observation-search')}?{urlencode(params)}"

    links = {"self": page(offset)}
    if query.summary_count:
        return links
    if count and offset + count < total:
        links["next"] = page(offset + count)
    if count and offset > 0:
        links["previous"] = page(max(offset - count, 0))
    return links


def _absolute(request: Request, name: str, *args: Any) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


def _base_url(request: Request) -> str:
    return _absolute(request, "fhir:metadata").removesuffix("metadata")
