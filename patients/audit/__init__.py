"""The audit trail: who read what (the access log) and who changed what (change history).

The access log (`AccessEvent`) is append-only and hash-chained. `record()` is
the one function that writes it: every read of patient data and every sign-in
event calls it. Each row's hash covers its own fields and the hash of the row
before it, so a row edited, deleted, inserted or moved afterwards breaks the
chain at that point; `verify_chain()` (and `manage.py verify_audit`) finds the
first break. See docs/audit.md.

The change history comes from django-simple-history; `change_history()` lays
out one patient's history for the patient page.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import wraps
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed
from django.core import checks
from django.db import connection, models, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from patients.models import (
    AccessAction,
    AccessEvent,
    AccessOutcome,
    Acknowledgement,
    CTCDraw,
    ImagingAssessment,
    Patient,
    TherapyLine,
    TreatmentCycle,
)

# The first event chains to this instead of a previous event's hash.
GENESIS_HASH = "0" * 64
# The fields a hash covers, in the canonical payload (with `prev_hash`).
CHAIN_FIELDS = (
    "at",
    "user_id",
    "username",
    "patient_id",
    "action",
    "target",
    "outcome",
    "client_address",
    "prev_hash",
)
# Bump with a new payload layout; verification then needs to know both.
CHAIN_FORMAT = 1
# Any number unique among this database's advisory locks: the log's write lock.
ADVISORY_LOCK_KEY = 0x0C7C_A0D1
# The request attribute holding a request's events until its transaction has ended.
_PENDING = "_ctctrack_access_events"


# --- recording ----------------------------------------------------------------------


def record(
    request: Any,
    action: str,
    *,
    patient: Patient | int | None = None,
    target: str = "",
    outcome: str = AccessOutcome.SUCCESS,
    user: Any = None,
    username: str = "",
) -> AccessEvent:
    """Record one read of patient data or one sign-in event in the access log.

    `request` is Django's or DRF's request, or None outside a request. The user
    is `user`, else the request's authenticated user, else nobody (`username`
    then says who was typed). `target` names what was touched by ids and page
    names, never a patient's name or MRN.

    Inside a request that `AuditMiddleware` handles, the event is written when
    the view's transaction has ended, so the event of a refused request
    survives that request's rollback; the returned event gets its id then.
    Otherwise it is written now, in the current transaction.
    """
    if action not in AccessAction.values:
        raise ValueError(f"Unknown access action {action!r}: add it to AccessAction.")
    if outcome not in AccessOutcome.values:
        raise ValueError(f"Unknown access outcome {outcome!r}.")
    acting = user if user is not None else _authenticated_user(request)
    event = AccessEvent(
        at=timezone.now(),
        user=acting,
        username=(acting.get_username() if acting is not None else username)[:150],
        patient_id=patient.pk if isinstance(patient, Patient) else patient,
        action=action,
        target=target.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
        outcome=outcome,
        client_address=client_address(request) if request is not None else None,
    )
    pending = getattr(_django_request(request), _PENDING, None)
    if pending is None:
        append([event])
    else:
        pending.append(event)
    return event


def record_read(request: Any, action: str, *, patient_ids: Iterable[int], what: str) -> AccessEvent:
    """Record a read that showed these patients' data.

    One patient goes in the patient column; several are listed by id in the
    target (`"worklist 2026-11-26..2026-12-02: patients 3, 7, 9"`).
    """
    ids = sorted(set(patient_ids))
    if len(ids) > 1:
        what = f"{what}: patients {', '.join(str(pk) for pk in ids)}"
    return record(request, action, patient=ids[0] if len(ids) == 1 else None, target=what)


def records_patient_read(action: str, target: str) -> Callable[[Any], Any]:
    """Decorate a view of patient `pk`: record a read whenever it answers 200 or 304.

    For views whose answer may come from a conditional-GET decorator below
    this one (a 304 still tells the client its copy is current).
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, pk: int, *args: Any, **kwargs: Any) -> HttpResponse:
            response = view(request, pk, *args, **kwargs)
            if response.status_code == 304:
                record(request, action, patient=pk, target=f"{target} (not modified)")
            elif response.status_code == 200:
                record(request, action, patient=pk, target=target)
            return response

        return wrapped

    return decorator


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
        setattr(request, _PENDING, [])
        try:
            return self.get_response(request)
        finally:
            events = getattr(request, _PENDING)
            setattr(request, _PENDING, None)  # anything later is written at once
            if events:
                append(events)


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


def append(events: Sequence[AccessEvent]) -> None:
    """Chain and insert events, holding the log's write lock throughout.

    Without the lock two writers could read the same last hash and both chain
    to it (the unique `prev_hash` would then refuse the second).
    """
    with transaction.atomic(savepoint=False):
        _lock_log()
        prev = AccessEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        for event in events:
            event.prev_hash = prev or GENESIS_HASH
            event.hash = event_hash({f: getattr(event, f) for f in CHAIN_FIELDS})
            event.save()
            prev = event.hash


def _lock_log() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Held to the end of the transaction; the next statement's snapshot
            # then sees every event committed before we got the lock.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        elif connection.vendor == "sqlite":
            # Any write takes SQLite's one write lock until the transaction ends;
            # this one changes nothing.
            cursor.execute("UPDATE patients_audit_maintenance SET id = id WHERE 0")


def client_address(request: Any) -> str | None:
    """The client's IP address: REMOTE_ADDR, or X-Forwarded-For behind trusted proxies.

    With `CTCTRACK_TRUSTED_PROXY_COUNT = n` (n proxies of ours in front of the
    app, each appending the address it received from), the client is the n-th
    address from the right; anything left of it was sent by the client and is
    not trusted. With 0 (the default), X-Forwarded-For is ignored.
    """
    meta = _django_request(request).META
    address = meta.get("REMOTE_ADDR", "")
    proxies = getattr(settings, "CTCTRACK_TRUSTED_PROXY_COUNT", 0)
    if proxies > 0:
        hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= proxies:
            address = hops[-proxies]
    return normalised_address(address)


def normalised_address(text: str) -> str | None:
    """The address as the database gives it back (the hash must match), or None."""
    try:
        parsed = ipaddress.ip_address(text.strip().split("%")[0])
    except ValueError:
        return None
    return str(parsed) if parsed.version == 4 else clean_ipv6_address(str(parsed))


def _django_request(request: Any) -> Any:
    """Django's HttpRequest behind a DRF Request (the middleware sees only Django's)."""
    return getattr(request, "_request", request)


def _authenticated_user(request: Any) -> Any:
    # DRF's request.user is the token's user; Django's would be anonymous.
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


# --- sign-in events -----------------------------------------------------------------


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


# --- the hash chain -----------------------------------------------------------------


def event_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an event's canonical payload: `CHAIN_FIELDS` as sorted JSON.

    The time is written in UTC to the microsecond, so the hash of a row read
    back from either database equals the hash computed before it was written.
    """
    payload = {name: fields[name] for name in CHAIN_FIELDS}
    payload["at"] = fields["at"].astimezone(UTC).isoformat(timespec="microseconds")
    payload["format"] = CHAIN_FORMAT
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    """The first event at which the chain does not hold, and why."""

    event_id: int
    reason: str

    def __str__(self) -> str:
        return f"Broken at event #{self.event_id}: {self.reason}"


def chain_rows(up_to_id: int | None = None) -> Iterator[dict[str, Any]]:
    """The events in chain order, streamed in chunks (the log may hold millions)."""
    events = AccessEvent.objects.order_by("id")
    if up_to_id is not None:
        events = events.filter(id__lte=up_to_id)
    return events.values("id", "hash", *CHAIN_FIELDS).iterator(chunk_size=2000)


def first_broken_link(
    rows: Iterable[Mapping[str, Any]], *, after: str = GENESIS_HASH
) -> BrokenLink | None:
    """Walk the chain in order; the first event whose link or hash does not hold.

    `after` is the hash the first row chains to: the genesis, or the last hash
    of events archived and removed from the table.
    """
    expected_prev, prev_id = after, None
    for row in rows:
        if row["prev_hash"] != expected_prev:
            return BrokenLink(row["id"], _link_reason(prev_id, after))
        if event_hash(row) != row["hash"]:
            return BrokenLink(
                row["id"],
                "its recorded values no longer match its hash: the row was changed "
                "after it was written",
            )
        expected_prev, prev_id = row["hash"], row["id"]
    return None


def _link_reason(prev_id: int | None, after: str) -> str:
    if prev_id is None and after == GENESIS_HASH:
        return "it is the first event but does not start the chain: earlier events were deleted"
    if prev_id is None:
        return "it is the first event but does not follow the archived events' last hash"
    return (
        f"it does not follow event #{prev_id}: an event between them was deleted, "
        "events were inserted or reordered, or the event before it was changed"
    )


def verify_chain() -> BrokenLink | None:
    """The first broken link of the whole access log, or None when it is intact."""
    return first_broken_link(chain_rows())


# --- change history for the patient page ----------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    """One saved version of a clinical row: when, by whom, what changed and why."""

    at: datetime
    by: str
    what: str
    kind: str
    changes: tuple[FieldChange, ...]
    reason: str


_KINDS = {"+": "created", "~": "changed", "-": "deleted"}


def change_history(patient: Patient) -> list[HistoryEntry]:
    """Every saved change to the patient and its lines, cycles, draws, imaging and
    acknowledgements, newest first.

    Six queries however long the history, one per history table, and a
    seventh when a changed field refers to users (to show their names).
    """
    lines = _history(TherapyLine, patient_id=patient.pk)
    # Lines and cycles are never deleted, so joining the current rows finds them all.
    cycles = _history(TreatmentCycle, therapy_line__patient_id=patient.pk)
    groups = [
        _history(Patient, id=patient.pk),
        lines,
        cycles,
        _history(CTCDraw, patient_id=patient.pk),
        _history(ImagingAssessment, patient_id=patient.pk),
        _history(Acknowledgement, cycle__therapy_line__patient_id=patient.pk),
    ]
    rows = [(new, _delta(new, old)) for group in groups for new, old in _with_previous(group)]
    names = _user_names(rows)
    line_numbers = {h.id: h.line_number for h in lines}
    cycle_numbers = {h.id: h.number for h in cycles}
    entries = [
        HistoryEntry(
            at=new.history_date,
            by=new.history_user.get_username() if new.history_user else "",
            what=_describe(new, line_numbers, cycle_numbers),
            kind=_KINDS.get(new.history_type, new.history_type),
            changes=tuple(_field_change(new, change, names) for change in delta),
            reason=new.history_change_reason or "",
        )
        for new, delta in rows
    ]
    return sorted(entries, key=lambda e: e.at, reverse=True)


def edits_since(instance: models.Model, version: int) -> list[HistoryEntry]:
    """The saved edits of one versioned row after `version`, oldest first.

    This is what a second editor did not see when they opened the form: who
    changed what, when and why. Two queries (history, and user names when a
    changed field holds a user).
    """
    records = _history(type(instance), id=instance.pk)
    rows = [
        (new, [c for c in _delta(new, old) if c.field not in _BOOKKEEPING])
        for new, old in _with_previous(records)
        if new.version > version
    ]
    names = _user_names(rows)
    return [
        HistoryEntry(
            at=new.history_date,
            by=new.history_user.get_username() if new.history_user else "",
            what=str(instance._meta.verbose_name).capitalize(),
            kind=_KINDS.get(new.history_type, new.history_type),
            changes=tuple(_field_change(new, change, names) for change in delta),
            reason=new.history_change_reason or "",
        )
        for new, delta in rows
    ]


# Fields the services maintain themselves; an editor did not change them.
_BOOKKEEPING = frozenset({"version"})


def _history(model: type[models.Model], **lookup: Any) -> list[Any]:
    return list(
        model.history.filter(**lookup)  # type: ignore[attr-defined]
        .select_related("history_user")
        .order_by("history_date", "history_id")
    )


def _with_previous(records: list[Any]) -> list[tuple[Any, Any]]:
    """Each historical record with the one before it of the same row (or None)."""
    last: dict[int, Any] = {}
    pairs = []
    for row in records:
        pairs.append((row, last.get(row.id)))
        last[row.id] = row
    return pairs


def _delta(new: Any, old: Any) -> list[Any]:
    """The fields an edit changed (simple-history compares the two versions; no query)."""
    if old is None or new.history_type != "~":
        return []
    return new.diff_against(old).changes


def _field_change(new: Any, change: Any, names: Mapping[int, str]) -> FieldChange:
    field = new.instance_type._meta.get_field(change.field)
    return FieldChange(
        field=str(field.verbose_name),
        old=_shown(field, change.old, names),
        new=_shown(field, change.new, names),
    )


def _user_names(rows: Sequence[tuple[Any, list[Any]]]) -> dict[int, str]:
    """Usernames for every user id that a changed field holds: one query, or none."""
    ids: set[int] = set()
    for new, delta in rows:
        for change in delta:
            if _is_user_field(new.instance_type._meta.get_field(change.field)):
                ids.update(v for v in (change.old, change.new) if v is not None)
    if not ids:
        return {}
    User = get_user_model()
    return dict(User.objects.filter(pk__in=ids).values_list("pk", User.USERNAME_FIELD))


def _is_user_field(field: Any) -> bool:
    return field.is_relation and field.related_model is get_user_model()


def _shown(field: Any, value: Any, names: Mapping[int, str]) -> str:
    """A stored value as a person reads it."""
    if value is None or value == "":
        return "—"
    if _is_user_field(field):
        return names.get(value, f"user #{value}")
    if field.is_relation:
        return f"#{value}"
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _describe(h: Any, line_numbers: Mapping[int, int], cycle_numbers: Mapping[int, int]) -> str:
    """The row a historical record belongs to, from its own values (no query)."""
    model = h.instance_type
    if model is Patient:
        return "Patient details"
    if model is TherapyLine:
        return f"Therapy line {h.line_number}"
    if model is TreatmentCycle:
        return f"Cycle {h.number} of line {line_numbers.get(h.therapy_line_id, '?')}"
    if model is CTCDraw:
        return f"CTC draw of {timezone.localtime(h.drawn_at):%Y-%m-%d %H:%M}"
    if model is ImagingAssessment:
        return f"Imaging of {h.performed_on.isoformat()}"
    return f"Acknowledgement of cycle {cycle_numbers.get(h.cycle_id, '?')}"
