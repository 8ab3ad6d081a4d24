"""The two-factor pages under /accounts/mfa/ (namespace "mfa"): the second sign-in
step, setting up the authenticator app, and the overview where a user makes new
recovery codes or turns two-factor sign-in off (each needs a fresh code).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.models import Device

from ctctrack.http import AuthenticatedHttpRequest
from patients.accounts.backends import count_failed_sign_in, is_locked_out, lockout_response
from patients.accounts.forms import CodeForm, EnrolmentCodeForm
from patients.accounts.mfa import (
    ENROLMENT_SESSION_KEY,
    confirm_totp,
    confirmed_totp,
    enrolment_needed,
    is_verified,
    pending_totp,
    qr_code_svg,
    recovery_codes_left,
    remove_second_factor,
    replace_recovery_codes,
    secret_text,
    use_enrolment,
)

GET_POST = require_http_methods(["GET", "HEAD", "POST"])


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
def verify(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The second sign-in step: a code from the app, or a recovery code."""
    user = request.user
    next_url = _next_url(request)
    if is_verified(user) or not user_has_device(user):
        return redirect(next_url)  # the middleware sends a user without a device to set-up
    form = CodeForm(request.POST or None, user=user)
    if request.method == "POST":
        if is_locked_out(request, user):
            return _end_locked_out_session(request)
        if form.is_valid():
            _complete_sign_in(request, form.device)
            return redirect(next_url)
        if not form.has_error("code", "required"):  # a code was tried: a failed sign-in
            count_failed_sign_in(request, user)
        if is_locked_out(request, user):
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
def setup(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Set up the authenticator app: scan, confirm with a first code, get recovery codes."""
    user = request.user
    if confirmed_totp(user) is not None:
        messages.info(request, "Two-factor sign-in is already set up.")
        return redirect("mfa:overview")
    if enrolment_needed(user) and ENROLMENT_SESSION_KEY not in request.session:
        return _enrolment(request)
    device = pending_totp(user)
    form = CodeForm(request.POST or None, user=user, device=device)
    if request.method == "POST" and form.is_valid():
        if enrolment_needed(user) and not use_enrolment(
            request.session.pop(ENROLMENT_SESSION_KEY, None), user
        ):
            messages.error(request, "Your enrolment code has expired: ask for a new one.")
            return redirect("mfa:setup")
        codes = confirm_totp(device)
        _complete_sign_in(request, device)
        return _recovery_codes_page(request, codes, next_url=_next_url(request))
    ctx = {
        "form": form,
        "uri": device.config_url,
        "secret": secret_text(device),
        "qr_svg": qr_code_svg(device.config_url),
        "next": _next_url(request),
    }
    return render(request, "accounts/mfa_setup.html", ctx, status=_status(request))


def _enrolment(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Ask for the enrolment code staff gave the user; only then show a secret to scan."""
    form = EnrolmentCodeForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if is_locked_out(request, request.user):
            return _end_locked_out_session(request)
        if form.is_valid():
            request.session[ENROLMENT_SESSION_KEY] = form.enrolment.pk
            return redirect(request.get_full_path())
        if not form.has_error("enrolment_code", "required"):  # a code was tried
            count_failed_sign_in(request, request.user)
        if is_locked_out(request, request.user):
            return _end_locked_out_session(request)
    ctx = {"form": form, "hours": settings.CTCTRACK_MFA_ENROLMENT_HOURS}
    return render(request, "accounts/mfa_enrol.html", ctx, status=_status(request))


def _recovery_codes_page(request: HttpRequest, codes: list[str], *, next_url: str) -> HttpResponse:
    # Shown once, in the answer to the POST that made them (never stored for later display).
    ctx = {"codes": codes, "next": next_url}
    return render(request, "accounts/recovery_codes.html", ctx)


@require_safe
@login_required
def overview(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The user's two-factor sign-in: its state, new recovery codes, turning it off."""
    return _overview_page(request)


def _overview_page(
    request: AuthenticatedHttpRequest,
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
def new_recovery_codes(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Ten new recovery codes for a fresh code; the old ones stop working."""
    form = CodeForm(request.POST, user=request.user, prefix="codes")
    if confirmed_totp(request.user) is None or not form.is_valid():
        return _overview_page(request, codes_form=form)
    codes = replace_recovery_codes(request.user)
    return _recovery_codes_page(request, codes, next_url=settings.LOGIN_REDIRECT_URL)


@require_POST
@login_required
def disable(request: AuthenticatedHttpRequest) -> HttpResponse:
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
