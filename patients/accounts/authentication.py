"""API tokens that expire, as sessions do.

DRF's tokens live until deleted; a token copied into a script or a log would
then open the record for ever. A token here is refused once it is older than
`CTCTRACK_API_TOKEN_MAX_AGE_SECONDS` (12 hours by default, the same as a
session's absolute limit); asking `/api/v1/auth/token/` again issues a new one.

Its own module, importing nothing of DRF's views: DRF imports the authentication
classes named in the settings while `rest_framework.views` loads.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


def is_expired(token: Token) -> bool:
    age = timezone.now() - token.created
    return age > timedelta(seconds=settings.CTCTRACK_API_TOKEN_MAX_AGE_SECONDS)


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        user, token = super().authenticate_credentials(key)
        if is_expired(token):
            raise exceptions.AuthenticationFailed(
                "This token has expired. Ask /api/v1/auth/token/ for a new one."
            )
        return user, token


class BearerTokenAuthentication(ExpiringTokenAuthentication):
    """The same tokens sent as `Authorization: Bearer <key>`, as FHIR clients send theirs."""

    keyword = "Bearer"
