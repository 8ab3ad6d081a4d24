"""API tokens as DRF authentication: `Authorization: Token <key>` or `Bearer <key>`.

The key is looked up by its prefix and compared by its digest
(patients/accounts/api_tokens.py); a token that has expired, was revoked, or
whose owner's password changed since it was issued is refused with 401 and a
message saying which. `Bearer` is accepted for FHIR clients, which send it.

Its own module, importing nothing of DRF's views: DRF imports the authentication
classes named in the settings while `rest_framework.views` loads.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from patients.accounts import api_tokens
from patients.accounts.api_tokens import TokenState
from patients.models import ApiToken

SCHEMES = (b"token", b"bearer")

REFUSALS = {
    TokenState.EXPIRED: "This token has expired. Ask /api/v1/auth/token/ for a new one.",
    TokenState.REVOKED: "This token was revoked. Ask /api/v1/auth/token/ for a new one.",
    TokenState.PASSWORD_CHANGED: (
        "This token ended when the account's password changed. "
        "Ask /api/v1/auth/token/ for a new one."
    ),
    TokenState.ACCOUNT_INACTIVE: "User inactive or deleted.",
}


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in SCHEMES:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: give the scheme, one space and the key."
            )
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        token = api_tokens.find(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        refused = REFUSALS.get(api_tokens.state(token))
        if refused:
            raise exceptions.AuthenticationFailed(refused)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return "Token"


class BearerTokenAuthentication(ApiTokenAuthentication):
    """The same tokens, for FHIR clients: a 401 asks for `Bearer`, as they expect."""

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"
