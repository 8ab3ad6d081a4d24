"""400, 404 and 500 answers in the language of the caller: FHIR, the API, or a page.

Django answers a request it cannot read, a URL that matches nothing, and an
exception no view handled, with these handlers (`ctctrack/urls.py`). Under
/fhir/r4/ the answer is an OperationOutcome (`application/fhir+json`), under
/api/ the API's JSON (`{"detail": ...}`), elsewhere an HTML page
(templates/400.html, 404.html, 413.html, 500.html). Nothing about the request
(no path, no exception text) is echoed back.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from patients.interop.fhir import resources as fhir

FHIR_PREFIX = "/fhir/r4/"
API_PREFIX = "/api/"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A request Django could not read; a form over `DATA_UPLOAD_MAX_MEMORY_SIZE` is a 413
    that names the limit (Django would answer a bare 400)."""
    if isinstance(exception, RequestDataTooBig):
        return _too_large(request)
    text = "The request could not be read."
    if request.path_info.startswith(FHIR_PREFIX):
        return _fhir(fhir.operation_outcome("invalid", text), status=400)
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"detail": text}, status=400)
    return defaults.bad_request(request, exception)


def form_limit_text() -> str:
    """What a form may send at most, in words: "2.5 MB" by Django's default."""
    megabytes = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) / (1024 * 1024)
    return (
        f"The form sent is larger than {megabytes:g} MB, the most a form may send "
        "(files chosen in a file field do not count towards it)."
    )


def _too_large(request: HttpRequest) -> HttpResponse:
    text = form_limit_text()
    if request.path_info.startswith(FHIR_PREFIX):
        return _fhir(fhir.operation_outcome("too-long", text), status=413)
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"detail": text}, status=413)
    return render(request, "413.html", {"text": text}, status=413)


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
