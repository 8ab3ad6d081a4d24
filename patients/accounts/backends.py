"""Sign-in lockout (django-axes): the backend that refuses a locked sign-in, and
what the locked-out client is told.

`LoginThrottleBackend` comes first in AUTHENTICATION_BACKENDS; `lockout_response`
is AXES_LOCKOUT_CALLABLE. A wrong second-factor code counts as a failed sign-in
too (`count_failed_sign_in`), on the web page and at the token endpoint alike.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from ctctrack.middleware import is_api


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check, first in AUTHENTICATION_BACKENDS.

    Every authenticate() that comes with a request (the sign-in form, admin's,
    the API token endpoint) is refused while its username and address are
    locked. One without a request is no client's attempt and has no address to
    lock (the test client's `login()`); it is passed on instead of raising.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """What a locked-out sign-in gets (AXES_LOCKOUT_CALLABLE): 429 and when to try again.

    The same for every username, existing or not, so it reveals none.
    """
    cool_off = settings.AXES_COOLOFF_TIME
    minutes = int(cool_off.total_seconds() // 60)
    retry_at = timezone.localtime(timezone.now() + cool_off)
    message = (
        f"Too many failed sign-in attempts. Try again in {minutes} minutes, after {retry_at:%H:%M}."
    )
    if is_api(request):
        response: HttpResponse = JsonResponse({"detail": message}, status=429)
    else:
        ctx = {"message": message, "minutes": minutes, "retry_at": retry_at}
        response = render(request, "accounts/locked_out.html", ctx, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response


def count_failed_sign_in(request: HttpRequest, user: AbstractBaseUser) -> None:
    """A wrong second-factor code is a failed sign-in: axes counts it (and may lock)."""
    credentials = {"username": user.get_username()}
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)


def is_locked_out(request: HttpRequest, user: AbstractBaseUser) -> bool:
    """Whether this request was locked out, or the user's sign-ins from its address are."""
    if getattr(request, "axes_locked_out", False):
        return True
    return AxesProxyHandler.is_locked(request, {"username": user.get_username()})
