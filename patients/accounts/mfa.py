"""The second factor's devices and codes (django-otp): an authenticator app (TOTP)
and ten one-time recovery codes.

Setting the app up, checking a code against a user's devices, replacing the
recovery codes, removing the second factor, and the QR code that carries the
app's secret. No requests here: the pages (views.py) and the token endpoint
(tokens.py) use these.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from base64 import b32encode
from datetime import datetime, timedelta
from typing import Any

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from patients.models import MfaEnrolment

TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
RECOVERY_CODE_COUNT = 10


def is_verified(user: AbstractBaseUser) -> bool:
    """Whether the signed-in user has passed the second step in this session."""
    # django-otp's OTPMiddleware adds `is_verified()` to request.user at runtime;
    # no user class declares it, so the type checker cannot know of it.
    return user.is_verified()  # type: ignore[attr-defined]


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


def secret_text(device: TOTPDevice) -> str:
    """The app's secret in groups of four, to type in when the QR code cannot be scanned."""
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# --- enrolment codes: the first app set up with a code given out of band -----------------

ENROLMENT_SESSION_KEY = "ctctrack.mfa_enrolment"
# No 0/O, 1/I/L: read out over the phone without confusion.
ENROLMENT_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def _enrolment_digest(code: str) -> str:
    return hashlib.sha256(code.strip().upper().replace("-", "").encode()).hexdigest()


def issue_enrolment_code(user: Any, *, by: Any) -> str:
    """A new one-time enrolment code for `user` (earlier unused ones stop working)."""
    now = timezone.now()
    MfaEnrolment.objects.filter(user=user, used_at__isnull=True).update(expires_at=now)
    raw = "".join(secrets.choice(ENROLMENT_ALPHABET) for _ in range(12))
    code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
    MfaEnrolment.objects.create(
        user=user,
        digest=_enrolment_digest(code),
        issued_by=by,
        issued_at=now,
        expires_at=now + timedelta(hours=settings.CTCTRACK_MFA_ENROLMENT_HOURS),
    )
    return code


def valid_enrolment(user: Any, code: str) -> MfaEnrolment | None:
    """The user's unused, unexpired enrolment with this code, if there is one."""
    return MfaEnrolment.objects.filter(
        user=user,
        digest=_enrolment_digest(code),
        used_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).first()


def enrolment_needed(user: Any) -> bool:
    """Whether setting up an app needs an enrolment code first (the first app, when required)."""
    return settings.CTCTRACK_MFA_ENROLMENT_REQUIRED and confirmed_totp(user) is None


def use_enrolment(enrolment_id: int | None, user: Any) -> bool:
    """Spend the enrolment that opened this set-up; False if it is no longer valid."""
    if enrolment_id is None:
        return False
    spent = MfaEnrolment.objects.filter(
        pk=enrolment_id, user=user, used_at__isnull=True, expires_at__gt=timezone.now()
    ).update(used_at=timezone.now())
    return spent == 1
