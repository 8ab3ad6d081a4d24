"""Sign-in events in the access log: sign-in, sign-out, failed sign-in and lockout.

Django's auth signals and django-axes' `user_locked_out` are connected to
`record()` once, at start-up (`PatientsConfig.ready` calls `connect_signals`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed

from patients.audit.chain import record
from patients.models import AccessAction, AccessOutcome


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


def connect_signals() -> None:
    """Record every sign-in, sign-out, failed sign-in and lockout (called once, at start-up)."""
    user_logged_in.connect(_on_login, dispatch_uid="ctctrack-audit-login")
    user_logged_out.connect(_on_logout, dispatch_uid="ctctrack-audit-logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="ctctrack-audit-login-failed")
    # django-axes locks a username and address out after repeated failures.
    user_locked_out.connect(_on_lockout, dispatch_uid="ctctrack-audit-lockout")
