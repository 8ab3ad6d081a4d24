"""The load balancer's two probes: `/healthz` (liveness) and `/readyz` (readiness).

`/healthz` asks "is this process up?" and answers "ok" without touching the
database: a load balancer or supervisor restarts a server that fails it.
`/readyz` asks "can this server do its work now?": the database answers and the
access log can be written (every page read writes to it, so a server that
cannot is of no use). It answers "ready", or 503 "unavailable" with Retry-After,
and a load balancer sends no traffic to a server that fails it until it passes.

Both answer anyone, because a load balancer has no account, and say nothing but
that one word: no patient data, no session, no detail of what failed (that goes
to the log). `HealthCheckMiddleware` answers them near the top of the
middleware, so sessions, sign-in, CSRF and the access log below never run for
them (an idle browser tab polling one cannot keep a session alive).
docs/security.md records them as the anonymous exceptions besides signing in
and static files; docs/deployment.md says which probe a load balancer uses how.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.http import require_safe

from ctctrack.middleware import RETRY_AFTER_SECONDS
from patients.models import AccessEvent, AccessEventPatient

logger = logging.getLogger(__name__)

# ctctrack/urls.py builds its routes from these, so they cannot drift apart.
HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"


def _plain(text: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8", status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_safe
@transaction.non_atomic_requests  # ATOMIC_REQUESTS would open a database connection
def healthz(request: HttpRequest) -> HttpResponse:
    return _plain("ok")


@require_safe
@transaction.non_atomic_requests  # the check runs its own transaction
def readyz(request: HttpRequest) -> HttpResponse:
    try:
        check_access_log_writable()
    except DatabaseError as exc:
        # The class only: a database's message can quote values or name hosts.
        logger.warning("Not ready: the access log cannot be written (%s)", type(exc).__name__)
        response = _plain("unavailable", status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return _plain("ready")


def check_access_log_writable() -> None:
    """Raise DatabaseError unless the database answers and would take an access-log row.

    An INSERT that selects no row: the database checks it as it checks any
    insert (the connection, the role's INSERT privilege, a read-only standby or
    transaction, a read-only SQLite file) and adds nothing. A real row, even
    rolled back, would not do: the append-only log would grow with every probe,
    or (rolled back) PostgreSQL would still spend an id from the sequence, and
    every probe would leave a gap in the log's ids; it would also wait for the
    log's write lock behind real writers. What this cannot foresee (a full disk)
    still fails the page that writes, with a 500.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # The events, and the patients a list's event names (every list page writes both).
        for model in (AccessEvent, AccessEventPatient):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE 1 = 0")


class HealthCheckMiddleware:
    """Answers `/healthz` and `/readyz` itself; every other request goes on down."""

    PROBES = {HEALTHZ_PATH: healthz, READYZ_PATH: readyz}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        probe = self.PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)
