"""404 and 500 answers in the language of the caller: FHIR, the API, or a page.

Django answers a URL that matches nothing, and an exception no view handled,
with these handlers (`ctctrack/urls.py`). Under /fhir/r4/ the answer is an
OperationOutcome (`application/fhir+json`), under /api/ the API's JSON
(`{"detail": ...}`), elsewhere Django's HTML page (templates/404.html, 500.html).
Nothing about the request (no path, no exception text) is echoed back.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from patients.interop.fhir import resources as fhir

FHIR_PREFIX = "/fhir/r4/"
API_PREFIX = "/api/"


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    text = "Nothing is found at this address."
    if request.path_info.startswith(FHIR_PREFIX):
        return _fhir(fhir.operation_outcome("not-found", text), status=404)
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"detail": text}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    text = "An error on the server's side: the request was not completed."
    if request.path_info.startswith(FHIR_PREFIX):
        return _fhir(fhir.operation_outcome("exception", text, severity="fatal"), status=500)
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"detail": text}, status=500)
    return defaults.server_error(request)


def _fhir(outcome: dict[str, object], *, status: int) -> JsonResponse:
    return JsonResponse(outcome, status=status, content_type=fhir.CONTENT_TYPE)
