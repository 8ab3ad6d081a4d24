"""The project's request middleware: session limits, two-factor enforcement,
no caching of patient data, and a plain 503 when the database is down.

Each class does one job; `settings.MIDDLEWARE` says where each sits and why.
Requests authenticated by an API token (`Authorization: Token ...`) never use
the session, so the session limits and the two-factor step do not apply to them
(a token is only issued after both factors, see `patients.accounts.obtain_token`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connection, connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect
from django.template import loader
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django_otp import device_classes

logger = logging.getLogger(__name__)

GetResponse = Callable[[HttpRequest], HttpResponseBase]

# Machine interfaces: they get JSON (or a status) rather than pages and redirects.
API_PREFIXES = ("/api/", "/fhir/")
SIGNED_IN_AT = "ctctrack.signed_in_at"
LAST_SEEN_AT = "ctctrack.last_seen_at"
# The last-activity time is stored at most this often. Storing it on every request
# would write (and commit) the session on every request, charts and all; the idle
# limit is checked against the stored time, so a session can end up to this much
# early, never late.
LAST_SEEN_GRANULARITY_SECONDS = 60
RETRY_AFTER_SECONDS = 30
DATABASE_DOWN = "The database is unavailable; try again shortly."


def uses_token(request: HttpRequest) -> bool:
    """True for API calls that authenticate with `Authorization: Token ...`.

    DRF's TokenAuthentication either accepts such a call or refuses it with 401;
    it never falls back to the session, so the session's state does not matter.
    """
    scheme = request.headers.get("Authorization", "").split(" ", 1)[0]
    return scheme.lower() == "token"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


# --- automatic logoff ------------------------------------------------------------------


def session_end(
    *,
    signed_in_at: float,
    last_seen_at: float,
    now: float,
    idle_seconds: int,
    max_age_seconds: int,
) -> str | None:
    """Why a session must end now: "max_age", "idle", or None while it may go on.

    Times are Unix seconds. A limit is reached at exactly its length (inclusive).
    """
    if now - signed_in_at >= max_age_seconds:
        return "max_age"
    if now - last_seen_at >= idle_seconds:
        return "idle"
    return None


def needs_last_seen_update(last_seen_at: float | None, now: float) -> bool:
    """Whether to store `now` as the last activity: when none is stored, or it is a
    minute or more old (`LAST_SEEN_GRANULARITY_SECONDS`)."""
    return last_seen_at is None or now - last_seen_at >= LAST_SEEN_GRANULARITY_SECONDS


def duration_text(seconds: int) -> str:
    """`900` -> "15 minutes", `43200` -> "12 hours", `1` -> "1 second"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def session_end_message(reason: str) -> str:
    if reason == "idle":
        idle = duration_text(settings.CTCTRACK_IDLE_TIMEOUT_SECONDS)
        return f"You were signed out after {idle} without activity."
    limit = duration_text(settings.CTCTRACK_SESSION_MAX_AGE_SECONDS)
    return f"You were signed out: a session ends {limit} after signing in. Please sign in again."


class SessionTimeoutMiddleware:
    """Sign a user out after the idle limit, and after the absolute limit in all.

    The sign-in and last-activity times live in the session (in the database), so
    every app server enforces the same limits. The last-activity time is stored
    once a minute at most, so most requests leave the session unwritten. A page
    request then goes to the login page with a message saying why; an API request
    by session gets 401.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if uses_token(request) or not request.user.is_authenticated:
            return self.get_response(request)
        now = time.time()
        session = request.session
        reason = session_end(
            signed_in_at=session.setdefault(SIGNED_IN_AT, now),
            last_seen_at=session.get(LAST_SEEN_AT, now),
            now=now,
            idle_seconds=settings.CTCTRACK_IDLE_TIMEOUT_SECONDS,
            max_age_seconds=settings.CTCTRACK_SESSION_MAX_AGE_SECONDS,
        )
        if reason is not None:
            return self._sign_out(request, reason)
        if needs_last_seen_update(session.get(LAST_SEEN_AT), now):
            session[LAST_SEEN_AT] = now
        return self.get_response(request)

    def _sign_out(self, request: HttpRequest, reason: str) -> HttpResponseBase:
        logout(request)  # flushes the session and tells the audit log
        message = session_end_message(reason)
        if is_api(request):
            return JsonResponse(
                {"detail": message}, status=401, headers={"WWW-Authenticate": "Token"}
            )
        messages.info(request, message)
        if request.method == "GET":
            return redirect_to_login(request.get_full_path())
        # The form that was posted is lost with the session: nothing of it is saved.
        return redirect(settings.LOGIN_URL)


# --- two-factor sign-in ------------------------------------------------------------------


def second_step(request: HttpRequest) -> str | None:
    """The URL name that completes this user's sign-in, or None when nothing is missing.

    "mfa:verify" when the user has a device but has not entered a code in this
    session (whether or not two-factor is required); "mfa:setup" when two-factor
    is required and the user has no device yet.
    """
    user = request.user
    if uses_token(request) or not user.is_authenticated:
        return None
    # django_otp's OTPMiddleware, before this one, gives the user is_verified().
    if user.is_verified():  # type: ignore[attr-defined]
        return None
    if has_device(user):
        return "mfa:verify"
    if settings.CTCTRACK_REQUIRE_MFA:
        return "mfa:setup"
    return None


def has_device(user: Any) -> bool:
    """Whether the user has a confirmed device of any type (authenticator app, recovery codes).

    What `django_otp.user_has_device` answers, in one query: it asks each device
    type's table in turn, which every request of a user without a device paid for.
    Plain SQL over the columns every django-otp device has (`user`, `confirmed`):
    the ORM's UNION cost more to build than the query took to run.
    """
    selects = [_confirmed_devices_sql(model) for model in device_classes()]
    if not selects:
        return False
    with connection.cursor() as cursor:
        # Table and column names come from the models, never from a request.
        cursor.execute(f"SELECT EXISTS ({' UNION ALL '.join(selects)})", [user.pk] * len(selects))
        (found,) = cursor.fetchone()
    return bool(found)


def _confirmed_devices_sql(model: Any) -> str:
    quote, meta = connection.ops.quote_name, model._meta
    user, confirmed = meta.get_field("user").column, meta.get_field("confirmed").column
    return f"SELECT 1 FROM {quote(meta.db_table)} WHERE {quote(user)} = %s AND {quote(confirmed)}"


class RequireMFAMiddleware:
    """Until a signed-in user has passed the second step, every page leads to it.

    Pages redirect to the step (keeping where the user was going); the API
    answers 403 to a session that has not passed it. Signing in and out stay open.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        step = second_step(request)
        if step is None or request.path in _open_paths(step):
            return self.get_response(request)
        if is_api(request):
            detail = "Two-factor sign-in is not complete: finish it in the browser first."
            return JsonResponse({"detail": detail}, status=403)
        return redirect_to_login(
            request.get_full_path() if request.method == "GET" else "/", reverse(step)
        )


def _open_paths(step: str) -> set[str]:
    return {reverse(step), reverse("login"), reverse("logout")}


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
    """A plain 503 that needs nothing from the database (no user, no session)."""
    if is_api(request):
        response: HttpResponse = JsonResponse({"detail": DATABASE_DOWN}, status=503)
    else:
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


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
