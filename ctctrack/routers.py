"""Reads from the optional replica (DATABASE_REPLICA_URL): what may go there, and when.

The replica is a streaming standby of the primary and lags it by a little. So it
serves only what tolerates a moment's lag and dominates the load: GET and HEAD
requests of the worklist, the patient list, the patient page and the charts, and
of those only the reads of clinical tables (patients, lines, cycles, draws,
imaging, acknowledgements and their change history). Everything else reads and
writes the primary:

- every write, and every read that locks (`select_for_update`) or is part of a
  write (`get_or_create`): Django sends those through `db_for_write`;
- sign-in, sessions, permissions, two-factor devices and lockouts (other apps);
- the access log (its hash chain must see the latest event);
- every other page, the API and FHIR (programs that write then read at once,
  with no cookie to carry the pin below), management commands, and anything
  else that runs outside a request.

Read-your-writes: after a browser's unsafe request (POST, PUT, PATCH, DELETE),
`ReadYourWritesMiddleware` gives it a signed cookie that pins its reads to the
primary for `CTCTRACK_READ_YOUR_WRITES_SECONDS`, so the page a form redirects to
shows what was just saved, even while the replica is behind.

Without DATABASE_REPLICA_URL neither the router nor the middleware is active.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.signing import BadSignature
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase

PRIMARY = "default"
REPLICA = "replica"
ROUTER = "ctctrack.routers.ReplicaRouter"

# The clinical tables that list pages and charts read; their history tables go with them.
REPLICA_MODELS = frozenset(
    {
        "patients.patient",
        "patients.therapyline",
        "patients.treatmentcycle",
        "patients.ctcdraw",
        "patients.imagingassessment",
        "patients.acknowledgement",
    }
)
# The pages whose clinical reads may come from the replica (URL names).
REPLICA_VIEWS = frozenset(
    {
        "patients:worklist",
        "patients:list",
        "patients:detail",
        "patients:chart-svg",
        "patients:chart-png",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD"})
PIN_SALT = "ctctrack.read-your-writes"

# True only while a view that may read the replica runs; False everywhere else
# (other views, middleware, commands, threads without a request).
_replica_allowed: ContextVar[bool] = ContextVar("ctctrack_replica_allowed", default=False)


def replica_model(model: type[Model]) -> bool:
    # simple-history's Historical<X> models name their tracked model in `instance_type`.
    tracked = getattr(model, "instance_type", model)
    return tracked._meta.label_lower in REPLICA_MODELS


class ReplicaRouter:
    """Clinical reads of the list pages and charts to the replica, all else to the primary.

    It always names an alias, never None: Django would otherwise fall back to the
    database an instance was read from, and a user or device reached through a
    patient read from the replica would come from there too.
    """

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        if _replica_allowed.get() and replica_model(model):
            return REPLICA
        return PRIMARY

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        return True  # the same data: the replica is a copy of the primary

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == PRIMARY  # the replica gets the schema by replication


def pin_cookie_name() -> str:
    # "__Host-" wherever cookies are HTTPS-only: then only this host, over HTTPS, can set it.
    return ("__Host-" if settings.SESSION_COOKIE_SECURE else "") + "ctctrack-primary"


def pinned_to_primary(request: HttpRequest) -> bool:
    """True while this browser's last write is more recent than the read-your-writes window."""
    try:
        value = request.get_signed_cookie(
            pin_cookie_name(),
            default=None,
            salt=PIN_SALT,
            max_age=settings.CTCTRACK_READ_YOUR_WRITES_SECONDS,
        )
    except BadSignature:
        return False
    return value is not None


class ReadYourWritesMiddleware:
    """Lets the replica serve the views in REPLICA_VIEWS, except just after a write.

    The decision is made in `process_view`, once the URL is resolved; the sign-in
    and session lookups of the middleware above have gone to the primary by then.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        if ROUTER not in settings.DATABASE_ROUTERS:
            raise MiddlewareNotUsed("No read replica configured.")
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        token = _replica_allowed.set(False)
        try:
            response = self.get_response(request)
        finally:
            _replica_allowed.reset(token)
        if request.method not in SAFE_METHODS:
            seconds = settings.CTCTRACK_READ_YOUR_WRITES_SECONDS
            response.set_signed_cookie(
                pin_cookie_name(),
                "1",
                salt=PIN_SALT,
                max_age=seconds,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        match = request.resolver_match
        allowed = (
            request.method in SAFE_METHODS
            and match is not None
            and match.view_name in REPLICA_VIEWS
            and not pinned_to_primary(request)
        )
        _replica_allowed.set(allowed)
