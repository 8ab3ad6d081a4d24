"""Sign-in events in the access log: sign-in, sign-out, failed sign-in and lockout,
and API tokens issued and revoked.

Django's auth signals, django-axes' `user_locked_out` and the API token's saves
are connected to `record()` once, at start-up (`PatientsConfig.ready` calls
`connect_signals`). Tokens are recorded on their saves, so that every way of
issuing or revoking one (the API, the owner's page, admin) is in the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save

from patients.audit.chain import record
from patients.models import AccessAction, AccessOutcome, ApiToken


def _on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(request, AccessAction.LOGIN, user=user)


def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:  # logging out without a session is no event
        record(request, AccessAction.LOGOUT, user=user)


def _on_login_failed(
    sender: Any, credentials: Mapping[str, Any], request: Any = None, **kwargs: Any
) -> None:
    typed = str(credentials.get(get_user_model().USERNAME_FIELD, ""))
    record(request, AccessAction.LOGIN_FAILED, outcome=AccessOutcome.FAILED, username=typed)


def _on_lockout(sender: Any, request: Any, username: str, **kwargs: Any) -> None:
    record(request, AccessAction.LOCKOUT, outcome=AccessOutcome.DENIED, username=username or "")


def _on_token_saved(
    sender: Any, instance: ApiToken, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    what = f"API token {instance.prefix} of user #{instance.user_id}"
    # Set by `api_tokens.issue` / `revoke` when a request asked: its client goes in the log.
    request = instance.audit_request
    if created:
        record(request, AccessAction.TOKEN_ISSUED, user=instance.user, target=what)
    elif update_fields and "revoked_at" in update_fields:
        record(request, AccessAction.TOKEN_REVOKED, user=instance.revoked_by, target=what)


def connect_signals() -> None:
    """Record every sign-in, sign-out, failed sign-in and lockout (called once, at start-up)."""
    user_logged_in.connect(_on_login, dispatch_uid="ctctrack-audit-login")
    user_logged_out.connect(_on_logout, dispatch_uid="ctctrack-audit-logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="ctctrack-audit-login-failed")
    # django-axes locks a username and address out after repeated failures.
    user_locked_out.connect(_on_lockout, dispatch_uid="ctctrack-audit-lockout")
    post_save.connect(_on_token_saved, sender=ApiToken, dispatch_uid="ctctrack-audit-token")
