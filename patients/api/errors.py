"""One shape for every API error: `{"field": ["message a clinician understands"]}`.

DRF already answers its own validation errors that way; this adds Django's
`ValidationError` raised by the services, edit conflicts (409) and edits that
name no version (428). Refusals
(401, 403) also go to the access log.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from patients import audit
from patients.audit.history import HistoryEntry
from patients.models import AccessAction, AccessOutcome
from patients.services import ConflictError, VersionRequired, describe_edit


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = _clinical_error_response(exc)
    if response is None:
        _record_refusal(exc, context["request"])
        return drf_exception_handler(exc, context)
    set_rollback()  # the services are atomic already; this also undoes the request's work
    return response


# Django's PermissionDenied too: a view may raise it, DRF answers it with 403.
_REFUSALS = (exceptions.NotAuthenticated, exceptions.PermissionDenied, PermissionDenied)


def _record_refusal(exc: Exception, request: Any) -> None:
    """Log a refused request; `AuditMiddleware` writes it after the request's rollback."""
    if isinstance(exc, exceptions.AuthenticationFailed):
        action, outcome = AccessAction.LOGIN_FAILED, AccessOutcome.FAILED
    elif isinstance(exc, _REFUSALS):
        action, outcome = AccessAction.PERMISSION_DENIED, AccessOutcome.DENIED
    else:
        return
    target = f"{request.method} {request.path}"
    if str(getattr(exc, "detail", "")).startswith("CSRF Failed"):
        target = f"{target} (CSRF check failed)"
    user = _session_user(request)
    requester = getattr(request, "user", None)
    if user is None and not (requester is not None and requester.is_authenticated):
        # Nobody to name (no credentials, or a key that matches none): counted per source.
        audit.record_anonymous_refusal(request, action, outcome=outcome, target=target)
        return
    audit.record(request, action, outcome=outcome, target=target, user=user)


def _session_user(request: Any) -> Any:
    """The session's user when DRF refused the request before taking it as theirs.

    DRF's session authentication refuses a session's unsafe request without a CSRF
    token and then sets the user to anonymous (on Django's request too), so the log
    would say nobody; the session still says who it was.
    """
    django_request = getattr(request, "_request", None)
    if django_request is None or not hasattr(django_request, "session"):
        return None
    user = get_user(django_request)
    return user if user.is_authenticated else None


def _clinical_error_response(exc: Exception) -> Response | None:
    if isinstance(exc, ValidationError):
        return Response(validation_error_body(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, VersionRequired):
        return Response({"version": [str(exc)]}, status=status.HTTP_428_PRECONDITION_REQUIRED)
    if isinstance(exc, ConflictError):
        body = {
            "version": [str(exc)],
            "current_version": exc.current,
            "changes_since_your_version": [_edit_body(edit) for edit in exc.edits],
        }
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ProtectedError):
        body = {"non_field_errors": ["Clinical records are never deleted."]}
        return Response(body, status=status.HTTP_409_CONFLICT)
    return None


def _edit_body(edit: HistoryEntry) -> dict[str, object]:
    return {
        "at": edit.at.isoformat(),
        "by": edit.by,
        "reason": edit.reason,
        "summary": describe_edit(edit),
        "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in edit.changes],
    }


def validation_error_body(exc: ValidationError) -> dict[str, list[str]]:
    if not hasattr(exc, "error_dict"):
        return {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    return {
        (api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else field): messages
        for field, messages in exc.message_dict.items()
    }
