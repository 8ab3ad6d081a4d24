"""The project's request middleware: no caching of patient data, the SVG chart's
own Content-Security-Policy, and a plain 503 when the database is down.

Each class does one job; `settings.MIDDLEWARE` says where each sits and why.
`is_api` tells the machine interfaces (JSON answers) from the pages. The sign-in
session's middleware (automatic logoff, the two-factor step) is in
patients/accounts/middleware.py.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.template import loader
from django.urls import Resolver404, get_resolver, resolve
from django.utils.cache import add_never_cache_headers

logger = logging.getLogger(__name__)

GetResponse = Callable[[HttpRequest], HttpResponseBase]

# Machine interfaces: they get JSON (or a status) rather than pages and redirects.
API_PREFIXES = ("/api/", "/fhir/")
RETRY_AFTER_SECONDS = 30
DATABASE_DOWN = "The database is unavailable; try again shortly."


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


# --- caching ----------------------------------------------------------------------------


class NoStoreMiddleware:
    """`Cache-Control: no-store` (and no-cache, private) on every answer from Django.

    Pages, charts, reports, API answers and error pages may all show patient data,
    and must not stay in a browser's or proxy's cache on a shared workstation.
    Static files are answered by WhiteNoise before this and keep their caching.
    Conditional requests still work: a chart's ETag gets a 304 from its view.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        add_never_cache_headers(response)
        return response


class SvgDocumentPolicyMiddleware:
    """A Content-Security-Policy of its own for SVG answers (the trend chart).

    Matplotlib's SVG styles its shapes with inline `style` attributes, which the
    site's policy forbids. Opened on its own (not as an <img>), the chart still
    renders under this policy, which allows those styles and nothing else: no
    script, no loads, no framing. django-csp leaves a policy that is already set.
    """

    POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("image/svg+xml"):
            response["Content-Security-Policy"] = self.POLICY
        return response


# --- database outages ----------------------------------------------------------------------


def is_database_outage(exc: BaseException | None) -> bool:
    """True when a database connection could not be opened or was lost.

    A bad query raises the same exception classes on an open connection: that is
    a bug and stays a 500, rather than telling users to wait for nothing.
    """
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    return any(_unreachable(conn) for conn in connections.all(initialized_only=True))


def _unreachable(conn: Any) -> bool:
    """A connection that is closed and cannot be opened again.

    Closed alone is not enough: with a replica configured, a thread's replica
    connection may simply have been closed at the end of an earlier request
    while the query that failed ran, open, on the primary. So a closed one is
    tried once more (only on this error path).
    """
    if conn.connection is not None and not getattr(conn.connection, "closed", 0):
        return False
    try:
        conn.close()
        conn.ensure_connection()
    except (OperationalError, InterfaceError):
        return True
    return False


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """A plain 503 that needs nothing from the database (no user, no session).

    A view may give its own (the HL7 endpoint answers HL7): a callable set as its
    `answer_database_outage` attribute, taking the request.
    """
    own = _own_outage_answer(request)
    if own is not None:
        return own(request)
    if is_api(request):
        response: HttpResponse = JsonResponse({"detail": DATABASE_DOWN}, status=503)
    else:
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _own_outage_answer(request: HttpRequest) -> Callable[[HttpRequest], HttpResponse] | None:
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return None
    return getattr(match.func, "answer_database_outage", None)


class DatabaseUnavailableMiddleware:
    """Answer 503 with a plain message when the database is down.

    A view's exception arrives in `process_exception`. Sessions and
    authentication query the database in the middleware below this one, where
    Django turns an exception into a 500 before it reaches here; the
    `got_request_exception` receiver marks such a request, and the 500 becomes
    the same 503.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if getattr(request, "_ctctrack_database_down", False):
            return database_unavailable_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_database_outage(exception):
            return None
        logger.error("Database unavailable (%s): answered 503", type(exception).__name__)
        return database_unavailable_response(request)


def _mark_database_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Runs inside Django's exception handling, where sys.exc_info() is the exception.
    if request is not None and is_database_outage(sys.exc_info()[1]):
        request._ctctrack_database_down = True  # type: ignore[attr-defined]


got_request_exception.connect(_mark_database_outage, dispatch_uid="ctctrack.database_outage")


class AppErrorPagesMiddleware:
    """With DEBUG on (`make run`), show the app's own 404 and 500 pages, as production does.

    Django answers a missing page or a crash with its technical pages whenever DEBUG
    is on; they show settings and code, and are not what a ward sees. This puts the
    app's pages in their place (the traceback is still logged to the console).
    Installed only with DEBUG on and `CTCTRACK_TECHNICAL_ERROR_PAGES` off, so a
    developer can ask for the technical pages back (see README). 403 and 400 use
    the app's pages with DEBUG on already; the interfaces keep their JSON.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        html = response.get("Content-Type", "").startswith("text/html")
        if response.status_code not in (404, 500) or not html or is_api(request):
            return response
        handler: Callable[..., HttpResponseBase] = get_resolver().resolve_error_handler(
            response.status_code
        )
        if response.status_code == 404:
            return handler(request, exception=None)
        return handler(request)
