"""`/healthz`: the load balancer's (and the benchmark's) question "is this server up?".

It answers anyone, because a load balancer has no account, and says nothing but
"ok": no patient data, no session, no database query. `HealthCheckMiddleware`
answers it near the top of the middleware, so sessions, sign-in, CSRF and the
access log below never run for it (an idle browser tab polling it cannot keep a
session alive). docs/security.md records it as the one anonymous exception
besides signing in and static files.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.http import require_safe

# ctctrack/urls.py builds its route from this, so the two cannot drift apart.
HEALTHZ_PATH = "/healthz"


@require_safe
@transaction.non_atomic_requests  # ATOMIC_REQUESTS would open a database connection
def healthz(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("ok", content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """Answers `/healthz` itself; every other request goes on down the middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info == HEALTHZ_PATH:
            return healthz(request)
        return self.get_response(request)
