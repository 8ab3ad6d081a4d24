"""API tokens: issued after both factors, kept as a hash, shown once, revocable.

A key is 32 random bytes (43 URL-safe characters). The database keeps only its
first 8 characters (to find it and to tell tokens apart on the owner's page and
in admin) and its SHA-256 digest: a copy of the database, a backup or an admin
screen never yields a key that works. A slow password hash would add nothing
for a key of 256 random bits and would cost every API request.

A token ends when it expires (`CTCTRACK_API_TOKEN_MAX_AGE_SECONDS`), when it is
revoked, or when its owner's password changes by any means (their own form,
admin, `changepassword`): it carries a keyed digest of the password hash it was
issued under. The access log records issuing and revoking
(patients/audit/signals.py, on the model's saves), with the client's address when
`issue` and `revoke` are given the request that asked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from patients.models import ApiToken

KEY_BYTES = 32
PREFIX_LENGTH = 8


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    PASSWORD_CHANGED = "ended by a password change"
    ACCOUNT_INACTIVE = "account deactivated"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def password_stamp(user: Any) -> str:
    """A keyed digest of the user's password hash: changes whenever the password does."""
    return salted_hmac("ctctrack.api-token.password", user.password or "").hexdigest()


def issue(
    user: Any, *, name: str = "", now: datetime | None = None, request: Any = None
) -> tuple[ApiToken, str]:
    """A new token for `user` (after both factors) and its key, which is never stored.

    `request`: the request that asked for it, whose client the access log names.
    """
    now = now or timezone.now()
    for _ in range(5):  # a prefix already taken: 1 in 2**48 per token; try another key
        key = secrets.token_urlsafe(KEY_BYTES)
        try:
            with transaction.atomic():
                token = ApiToken(
                    user=user,
                    prefix=key[:PREFIX_LENGTH],
                    digest=digest(key),
                    name=name.strip()[:100],
                    created_at=now,
                    expires_at=now + timedelta(seconds=settings.CTCTRACK_API_TOKEN_MAX_AGE_SECONDS),
                    password_stamp=password_stamp(user),
                )
                token.audit_request = request
                token.save(force_insert=True)
        except IntegrityError:
            continue
        return token, key
    raise RuntimeError("Could not draw an unused token prefix.")  # pragma: no cover


def find(key: str) -> ApiToken | None:
    """The token this key belongs to, whatever its state; None for a key never issued."""
    token = (
        ApiToken.objects.select_related("user").filter(prefix=key[:PREFIX_LENGTH]).first()
        if len(key) > PREFIX_LENGTH
        else None
    )
    if token is None or not hmac.compare_digest(token.digest, digest(key)):
        return None
    return token


def state(token: ApiToken, *, now: datetime | None = None) -> TokenState:
    if token.revoked_at is not None:
        return TokenState.REVOKED
    if not token.user.is_active:
        return TokenState.ACCOUNT_INACTIVE
    if not hmac.compare_digest(token.password_stamp, password_stamp(token.user)):
        return TokenState.PASSWORD_CHANGED
    if (now or timezone.now()) >= token.expires_at:
        return TokenState.EXPIRED
    return TokenState.ACTIVE


def revoke(token: ApiToken, *, by: Any, now: datetime | None = None, request: Any = None) -> bool:
    """Revoke a token (its owner, or staff); False when it was revoked already.

    `request`: the request that asked, whose client the access log names.
    """
    if token.revoked_at is not None:
        return False
    token.revoked_at = now or timezone.now()
    token.revoked_by = by
    token.audit_request = request
    token.save(update_fields=["revoked_at", "revoked_by"])
    return True


def tokens_of(user: Any) -> QuerySet[ApiToken]:
    """The user's tokens, newest first, for their account page."""
    return ApiToken.objects.filter(user=user).select_related("user", "revoked_by")
