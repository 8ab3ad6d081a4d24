"""Signing in beyond the password: two-factor sign-in, lockout, API tokens.

Two-factor sign-in (django-otp) uses an authenticator app (TOTP) with ten
one-time recovery codes for when the phone is lost. Its pages live under
/accounts/mfa/ (namespace "mfa"). Turning it off or making new recovery codes
needs a fresh code, so a stolen session alone cannot remove the second factor;
staff reset a user who lost both in Django admin by deleting their devices.
Who must pass the second step on which request is decided by
`ctctrack.middleware.RequireMFAMiddleware`.

Lockout (django-axes): `LoginThrottleBackend` refuses sign-ins while a username
and address are locked, `lockout_response` says until when. A wrong second-factor
code counts as a failed sign-in too.

API tokens: `obtain_token` (POST /api/v1/auth/token/) asks for the second factor
of a user who has one (and refuses users without one when it is required), so a
token is only ever issued after both factors. Requests made with the token are
then not asked again: the token is the interface's credential; staff revoke it
in admin.
"""

from __future__ import annotations

import re
from base64 import b32encode
from datetime import datetime
from typing import Any

import qrcode
import qrcode.image.svg
from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from ctctrack.middleware import is_api
from patients.api.authentication import is_expired
from patients.web.forms import focus_first_error

TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
RECOVERY_CODE_COUNT = 10
GET_POST = require_http_methods(["GET", "POST"])


# --- lockout ---------------------------------------------------------------------------------


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


def _count_failed_sign_in(request: HttpRequest, user: AbstractBaseUser) -> None:
    """A wrong second-factor code is a failed sign-in: axes counts it (and may lock)."""
    credentials = {"username": user.get_username()}
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)


def _is_locked_out(request: HttpRequest, user: AbstractBaseUser) -> bool:
    if getattr(request, "axes_locked_out", False):
        return True
    return AxesProxyHandler.is_locked(request, {"username": user.get_username()})


# --- devices and codes -------------------------------------------------------------------------


def confirmed_totp(user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).first()


def pending_totp(user: AbstractBaseUser) -> TOTPDevice:
    """The app being set up: the same secret until confirmed, so a retry can rescan it."""
    pending = TOTPDevice.objects.devices_for_user(user, confirmed=False).order_by("-pk").first()
    return pending or TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)


def recovery_codes_left(user: AbstractBaseUser) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def replace_recovery_codes(user: AbstractBaseUser) -> list[str]:
    """Ten new one-time recovery codes; the old ones stop working."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


@transaction.atomic
def confirm_totp(device: TOTPDevice) -> list[str]:
    """Make the app being set up the user's second factor; returns new recovery codes."""
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
    return replace_recovery_codes(device.user)


def remove_second_factor(user: AbstractBaseUser) -> None:
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


def check_code(user: AbstractBaseUser, raw: str, *, device: TOTPDevice | None = None) -> Device:
    """The device that accepts this code, or ValidationError saying why none did.

    With `device` (an app being set up) only that device is asked. Otherwise six
    digits go to the user's authenticator app and anything else to the recovery
    codes, each of which works once. After a wrong code a device refuses further
    codes for a growing delay (django-otp's throttling).
    """
    code = re.sub(r"[\s-]", "", raw).lower()
    if device is not None:
        candidates = TOTPDevice.objects.filter(pk=device.pk)
    elif code.isdigit():
        candidates = TOTPDevice.objects.devices_for_user(user, confirmed=True)
    else:
        candidates = StaticDevice.objects.devices_for_user(user, confirmed=True)
    locked_until: datetime | None = None
    # The failure count must be saved even though the code is refused: no raise inside.
    with transaction.atomic():
        for candidate in candidates.select_for_update():
            allowed, info = candidate.verify_is_allowed()
            if not allowed:
                locked_until = (info or {}).get("locked_until")
            elif candidate.verify_token(code):
                return candidate
    if locked_until is not None:
        wait = timezone.localtime(locked_until)
        message = f"Too many wrong codes: try again after {wait:%H:%M:%S}."
        raise ValidationError(message, code="throttled")
    raise ValidationError(
        "This code is not valid. Enter the current 6-digit code from your authenticator app "
        "(check that the phone's clock is right), or an unused recovery code.",
        code="invalid",
    )


def qr_code_svg(uri: str) -> SafeString:
    """The otpauth URI as a QR code, drawn here (no outside service sees the secret)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, border=4)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308 (our own SVG, no input)


def _secret_text(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# --- forms -------------------------------------------------------------------------------------


class CodeForm(forms.Form):
    """One code field, checked against the user's devices (or one device being set up)."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        error_messages={"required": "Enter a code."},
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
    )

    def __init__(
        self, *args: Any, user: AbstractBaseUser, device: TOTPDevice | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.pending = device
        self.device: Device | None = None
        if device is not None:  # setting up: only the new app's code confirms it
            self.fields["code"].help_text = "The 6-digit code your authenticator app shows now."

    def full_clean(self) -> None:
        super().full_clean()
        focus_first_error(self)  # the page opens on the code field, its error read out

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        self.device = check_code(self.user, code, device=self.pending)
        return code


# --- pages ---------------------------------------------------------------------------------------


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe and target else settings.LOGIN_REDIRECT_URL


def _complete_sign_in(request: HttpRequest, device: Device) -> None:
    # A new session key now that the user is fully signed in (no session fixation).
    request.session.cycle_key()
    otp_login(request, device)


@GET_POST
@login_required
def verify(request: HttpRequest) -> HttpResponse:
    """The second sign-in step: a code from the app, or a recovery code."""
    user = request.user
    next_url = _next_url(request)
    if user.is_verified() or not user_has_device(user):
        return redirect(next_url)  # the middleware sends a user without a device to set-up
    form = CodeForm(request.POST or None, user=user)
    if request.method == "POST":
        if _is_locked_out(request, user):
            return _end_locked_out_session(request)
        if form.is_valid():
            _complete_sign_in(request, form.device)
            return redirect(next_url)
        if not form.has_error("code", "required"):  # a code was tried: a failed sign-in
            _count_failed_sign_in(request, user)
        if _is_locked_out(request, user):
            return _end_locked_out_session(request)
    ctx = {"form": form, "next": next_url}
    return render(request, "accounts/mfa_verify.html", ctx, status=_status(request))


def _end_locked_out_session(request: HttpRequest) -> HttpResponse:
    # The password step is locked now; the half-signed-in session ends with it.
    logout(request)
    return lockout_response(request)


def _status(request: HttpRequest) -> int:
    """A page shown again after a POST is showing errors: answer 400."""
    return 400 if request.method == "POST" else 200


@GET_POST
@login_required
def setup(request: HttpRequest) -> HttpResponse:
    """Set up the authenticator app: scan, confirm with a first code, get recovery codes."""
    user = request.user
    if confirmed_totp(user) is not None:
        messages.info(request, "Two-factor sign-in is already set up.")
        return redirect("mfa:overview")
    device = pending_totp(user)
    form = CodeForm(request.POST or None, user=user, device=device)
    if request.method == "POST" and form.is_valid():
        codes = confirm_totp(device)
        _complete_sign_in(request, device)
        return _recovery_codes_page(request, codes, next_url=_next_url(request))
    ctx = {
        "form": form,
        "uri": device.config_url,
        "secret": _secret_text(device),
        "qr_svg": qr_code_svg(device.config_url),
        "next": _next_url(request),
    }
    return render(request, "accounts/mfa_setup.html", ctx, status=_status(request))


def _recovery_codes_page(request: HttpRequest, codes: list[str], *, next_url: str) -> HttpResponse:
    # Shown once, in the answer to the POST that made them (never stored for later display).
    ctx = {"codes": codes, "next": next_url}
    return render(request, "accounts/recovery_codes.html", ctx)


@require_http_methods(["GET"])
@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """The user's two-factor sign-in: its state, new recovery codes, turning it off."""
    return _overview_page(request)


def _overview_page(
    request: HttpRequest,
    *,
    codes_form: CodeForm | None = None,
    disable_form: CodeForm | None = None,
) -> HttpResponse:
    user = request.user
    ctx = {
        "totp": confirmed_totp(user),
        "codes_left": recovery_codes_left(user),
        "required": settings.CTCTRACK_REQUIRE_MFA,
        "codes_form": codes_form or CodeForm(user=user, prefix="codes"),
        "disable_form": disable_form or CodeForm(user=user, prefix="disable"),
    }
    failed = codes_form is not None or disable_form is not None
    return render(request, "accounts/mfa_overview.html", ctx, status=400 if failed else 200)


@require_POST
@login_required
def new_recovery_codes(request: HttpRequest) -> HttpResponse:
    """Ten new recovery codes for a fresh code; the old ones stop working."""
    form = CodeForm(request.POST, user=request.user, prefix="codes")
    if confirmed_totp(request.user) is None or not form.is_valid():
        return _overview_page(request, codes_form=form)
    codes = replace_recovery_codes(request.user)
    return _recovery_codes_page(request, codes, next_url=settings.LOGIN_REDIRECT_URL)


@require_POST
@login_required
def disable(request: HttpRequest) -> HttpResponse:
    """Turn two-factor sign-in off (or reset it, where it is required) for a fresh code."""
    form = CodeForm(request.POST, user=request.user, prefix="disable")
    if not form.is_valid():
        return _overview_page(request, disable_form=form)
    remove_second_factor(request.user)
    if settings.CTCTRACK_REQUIRE_MFA:
        messages.info(request, "Your authenticator was removed. Set up the new one now.")
        return redirect("mfa:setup")
    messages.success(request, "Two-factor sign-in is off. Your recovery codes no longer work.")
    return redirect("mfa:overview")


app_name = "mfa"
urlpatterns = [
    path("", overview, name="overview"),
    path("setup/", setup, name="setup"),
    path("verify/", verify, name="verify"),
    path("recovery-codes/", new_recovery_codes, name="recovery-codes"),
    path("disable/", disable, name="disable"),
]


# --- API token ---------------------------------------------------------------------------------


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False)
    otp_token = serializers.CharField(required=False, allow_blank=True, default="")


@api_view(["POST"])
@authentication_classes([])
@permission_classes([])
def obtain_token(request: Request) -> Response:
    """POST `username`, `password` and, once two-factor is set up, `otp_token` -> `{"token"}`.

    Every refusal is answered, never raised: a raised error would roll back the
    request's transaction, and with it the failed attempt that axes recorded.
    """
    given = TokenRequestSerializer(data=request.data)
    if not given.is_valid():
        return Response(given.errors, status=400)
    # The Django request, where axes marks a lockout for its middleware to answer.
    django_request = request._request
    data = given.validated_data
    user = authenticate(django_request, username=data["username"], password=data["password"])
    if user is None:
        return Response({"non_field_errors": ["Unable to sign in with these credentials."]}, 400)
    refused = _token_second_factor(django_request, user, data["otp_token"])
    if refused is not None:
        return refused
    token = _fresh_token(user)
    # A successful sign-in: resets the failure count, updates last_login, is audited.
    user_logged_in.send(sender=type(user), request=django_request, user=user)
    return Response({"token": token.key})


def _fresh_token(user: AbstractBaseUser) -> Token:
    """The user's token, replaced by a new one once it has expired."""
    token, created = Token.objects.get_or_create(user=user)
    if not created and is_expired(token):
        token.delete()  # a credential, not a clinical record
        token = Token.objects.create(user=user)
    return token


def _token_second_factor(
    request: HttpRequest, user: AbstractBaseUser, code: str
) -> Response | None:
    if not user_has_device(user):
        if settings.CTCTRACK_REQUIRE_MFA:
            detail = "Set up two-factor sign-in in the web app before asking for a token."
            return Response({"detail": detail}, status=403)
        return None
    if not code:
        return Response({"otp_token": ["Enter a code from your authenticator app."]}, status=400)
    try:
        check_code(user, code)
    except ValidationError as exc:
        _count_failed_sign_in(request, user)
        return Response({"otp_token": exc.messages}, status=400)
    return None
