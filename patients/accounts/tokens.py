"""The API's token endpoint: POST /api/v1/auth/token/ (`obtain_token`).

It asks for the second factor of a user who has one (and refuses users without
one when it is required), so a token is only ever issued after both factors.
Requests made with the token are then not asked again: the token is the
interface's credential, expiring like a session. Each request issues a new
token, whose key is in this answer only (patients/accounts/api_tokens.py keeps
its hash); its owner sees and revokes their tokens on their account page, staff
revoke any in admin.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django_otp import user_has_device
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from patients.accounts import api_tokens
from patients.accounts.backends import count_failed_sign_in
from patients.accounts.mfa import check_code


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False)
    otp_token = serializers.CharField(required=False, allow_blank=True, default="")
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)


@api_view(["POST"])
@authentication_classes([])
@permission_classes([])
def obtain_token(request: Request) -> Response:
    """POST `username`, `password`, `otp_token` once two-factor is set up, and an optional
    `name` (what the token is for) -> `{"token", "prefix", "expires_at"}`.

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
    token, key = api_tokens.issue(user, name=data["name"], request=django_request)
    # A successful sign-in: resets the failure count, updates last_login, is audited.
    user_logged_in.send(sender=type(user), request=django_request, user=user)
    return Response(
        {"token": key, "prefix": token.prefix, "expires_at": token.expires_at.isoformat()}
    )


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
        count_failed_sign_in(request, user)
        return Response({"otp_token": exc.messages}, status=400)
    return None
