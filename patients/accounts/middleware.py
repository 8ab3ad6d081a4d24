"""The sign-in session's middleware: automatic logoff and the two-factor step.

`SessionTimeoutMiddleware` ends a session after the idle limit and after the
absolute limit; `RequireMFAMiddleware` sends a signed-in user who has not
passed the second step to it. `settings.MIDDLEWARE` says where each sits and
why. Requests authenticated by an API token (`Authorization: Token ...`) never
use the session, so neither applies to them (a token is only issued after both
factors, see `patients.accounts.tokens.obtain_token`).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import device_classes

from ctctrack.middleware import GetResponse, is_api
from patients.accounts.mfa import is_verified

# Session keys: when the user signed in, and was last active (Unix seconds).
SIGNED_IN_AT = "ctctrack.signed_in_at"
LAST_SEEN_AT = "ctctrack.last_seen_at"
# The last-activity time is stored at most this often. Storing it on every request
# would write (and commit) the session on every request, charts and all; the idle
# limit is checked against the stored time, so a session can end up to this much
# early, never late.
LAST_SEEN_GRANULARITY_SECONDS = 60


def uses_token(request: HttpRequest) -> bool:
    """True for API calls that authenticate with `Authorization: Token ...` (or `Bearer`).

    The token authentication (patients/accounts/authentication.py) either accepts
    such a call or refuses it with 401; it never falls back to the session, so the
    session's state does not matter.
    """
    scheme = request.headers.get("Authorization", "").split(" ", 1)[0]
    return scheme.lower() in ("token", "bearer")


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
    if uses_token(request) or not user.is_authenticated or is_verified(user):
        return None
    if has_device(user):
        return "mfa:verify"
    if settings.CTCTRACK_REQUIRE_MFA:
        return "mfa:setup"
    return None


def has_device(user: AbstractBaseUser) -> bool:
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
