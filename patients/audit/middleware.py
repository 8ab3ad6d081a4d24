"""The access log's middleware, and the system check that it is installed.

`AuditMiddleware` holds a request's access events until the view's transaction
has ended (patients/audit/chain.py queues them), so that the event of a
refused, rolled-back request is written too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import checks
from django.http import HttpRequest, HttpResponse

from patients.audit import chain


class AuditMiddleware:
    """Writes a request's access events once the view's transaction has ended.

    Views run in a transaction (ATOMIC_REQUESTS) that is rolled back when they
    fail or are refused, and an event written inside it would vanish with the
    refusal it records. So `record()` queues events on the request and this
    writes them after the view, committed or not. If the log cannot be
    written, the request fails (500) rather than answer without its record.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chain.queue_events(request)
        try:
            return self.get_response(request)
        finally:
            chain.write_queued(request)


@checks.register(checks.Tags.security)
def check_audit_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Without the middleware, record() writes inside the view's transaction."""
    if f"{__name__}.AuditMiddleware" in settings.MIDDLEWARE:
        return []
    return [
        checks.Error(
            f"{__name__}.AuditMiddleware is not in MIDDLEWARE.",
            hint="Without it, the access-log event of a refused request is rolled back "
            "with the request.",
            id="patients.E001",
        )
    ]
