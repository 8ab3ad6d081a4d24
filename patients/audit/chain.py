"""The access log's writing and its hash chain.

`record()` is the one function that writes the access log (`AccessEvent`):
every read of patient data and every sign-in event calls it, directly or
through `record_read()` and the `records_patient_read` decorator. Inside a
request that `AuditMiddleware` (patients/audit/middleware.py) handles, events
wait on the request until the view's transaction has ended; `append()` then
chains and inserts them under the log's write lock.

Each row's hash covers its own fields and the hash of the row before it, so a
row edited, deleted, inserted or moved afterwards breaks the chain at that
point; `verify_chain()` (and `manage.py verify_audit`) finds the first break.

The hash is an HMAC-SHA256 keyed with `CTCTRACK_AUDIT_KEY`, a secret held
outside the database: whoever can write the table but does not hold the key
cannot re-chain the rows after an event they rewrote. Events written before
the chain was keyed (format 1, plain SHA-256) still verify as they were; no
format-1 event may follow a keyed one.

The key can be rotated: each event keeps the label of the key it was keyed with
(`CTCTRACK_AUDIT_KEY_ID`), and the keys retired stay configured, by label, so
that their events still verify (`CTCTRACK_AUDIT_RETIRED_KEYS`, oldest first). No
event may be keyed with a key older than one before it: whoever still holds a
retired key (the reason to rotate) cannot write events after the rotation, and
the events before it are pinned by the checkpoint written at the rotation. See
docs/audit.md.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from functools import wraps
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from patients.models import AccessAction, AccessEvent, AccessEventPatient, AccessOutcome, Patient

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
# Bump with a new payload layout; verification then needs to know every one.
# 1: plain SHA-256 (before the chain was keyed); 2: HMAC-SHA256 with the audit key;
# 3: as 2, and the payload also holds the patients the event listed (`AccessEventPatient`).
CHAIN_FORMAT = 3
UNKEYED_FORMAT = 1
KEYED_FORMATS = (2, 3)
LISTING_FORMAT = 3
# The longest label of an audit key (`CTCTRACK_AUDIT_KEY_ID`): `AccessEvent.key_id`.
KEY_ID_LENGTH = 40
# Any number unique among this database's advisory locks: the log's write lock.
ADVISORY_LOCK_KEY = 0x0C7C_A0D1
# Events read at a time when the chain is verified.
CHAIN_CHUNK = 2000
# The request attribute holding a request's events until its transaction has ended.
_PENDING = "_ctctrack_access_events"


# --- recording ----------------------------------------------------------------------


def record(
    request: Any,
    action: AccessAction,
    *,
    patient: Patient | int | None = None,
    target: str = "",
    outcome: str = AccessOutcome.SUCCESS,
    user: Any = None,
    username: str = "",
    address: str | None = None,
    listed: Iterable[int] = (),
) -> AccessEvent:
    """Record one read of patient data or one sign-in event in the access log.

    `request` is Django's or DRF's request, or None outside a request. The user
    is `user`, else the request's authenticated user, else nobody (`username`
    then says who was typed). `target` names what was touched by ids and page
    names, never a patient's name or MRN. The client's address is the
    request's, or `address` when there is no request (a lab's connection to
    the MLLP listener). `listed`: the patients a list showed (a page of a list,
    an export, a message; `target` names them too when they are several, see
    `patients_text`, and `patient` is the one when it is one): kept as
    `AccessEventPatient` rows, which the audit report filters by. A list writes
    its rows whether it showed one patient or many, so its statements do not
    depend on how many.

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
        client_address=(
            client_address(request) if request is not None else normalised_address(address or "")
        ),
    )
    shown = sorted(set(listed))
    if shown and event.patient_id is not None and shown != [event.patient_id]:
        raise ValueError("An event names one patient or lists patients, not another one.")
    event.listed_ids = shown  # type: ignore[attr-defined]
    pending = getattr(_django_request(request), _PENDING, None)
    if pending is None:
        append([event])
    else:
        pending.append(event)
    return event


# Refusals of anonymous requests cost the sender nothing, and each would be a row kept for
# years: per source address and minute, only the 1st, 10th, 100th... are written, each
# with the count so far, so a flood of N requests writes about log10(N) rows.
ANONYMOUS_REFUSALS_KEY = "ctctrack:anonymous-refusals:{address}:{minute}"


def record_anonymous_refusal(
    request: Any, action: AccessAction, *, target: str, outcome: str = AccessOutcome.DENIED
) -> AccessEvent | None:
    """Record a refused request that no user can be named for, unless the source floods.

    Returns the event, or None when this refusal was only counted. When the cache
    cannot count, every refusal is written: losing a row is worse than a big log.
    """
    address = client_address(request) or "unknown"
    minute = timezone.now().strftime("%Y%m%d%H%M")
    key = ANONYMOUS_REFUSALS_KEY.format(address=address, minute=minute)
    try:
        count = 1 if cache.add(key, 1, timeout=120) else cache.incr(key)
    except Exception:  # noqa: BLE001 (any cache failure: write the row)
        count = 1
    if count > 1 and not _is_power_of_ten(count):
        return None
    if count > 1:
        target = f"{target} (refusal {count} from this address this minute)"
    return record(request, action, outcome=outcome, target=target)


def _is_power_of_ten(n: int) -> bool:
    while n % 10 == 0 and n > 1:
        n //= 10
    return n == 1


def record_read(
    request: Any,
    action: AccessAction,
    *,
    patient_ids: Iterable[int],
    what: str,
    user: Any = None,
    address: str | None = None,
) -> AccessEvent:
    """Record a read that showed these patients' data.

    One patient goes in the patient column; several are listed by id in the
    target (`"worklist 2026-11-26..2026-12-02: patients 3, 7, 9"`); either way
    each has an `AccessEventPatient` row.
    """
    ids = sorted(set(patient_ids))
    if len(ids) > 1:
        what = f"{what}: {patients_text(ids)}"
    patient = ids[0] if len(ids) == 1 else None
    return record(
        request, action, patient=patient, target=what, user=user, address=address, listed=ids
    )


def patients_text(ids: Iterable[int]) -> str:
    """How an event's target names several patients: "patients 3, 7, 9"."""
    return f"patients {', '.join(str(pk) for pk in sorted(set(ids)))}"


def records_patient_read(action: AccessAction, target: str) -> Callable[[Any], Any]:
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


# --- writing: a request's queue, the write lock -------------------------------------


def queue_events(request: HttpRequest) -> None:
    """From now on, `record()` keeps this request's events until `write_queued()`."""
    setattr(request, _PENDING, [])


def write_queued(request: HttpRequest) -> None:
    """Write the request's queued events; anything recorded later is written at once."""
    events = getattr(request, _PENDING)
    setattr(request, _PENDING, None)
    if events:
        append(events)


def append(events: Sequence[AccessEvent]) -> None:
    """Chain and insert events, holding the log's write lock throughout.

    Without the lock two writers could read the same last hash and both chain
    to it (the unique `prev_hash` would then refuse the second).
    """
    with transaction.atomic(savepoint=False):
        prev = _lock_log_and_read_last_hash()
        key, label = audit_key(), audit_key_id()
        listed: list[AccessEventPatient] = []
        for event in events:
            shown = getattr(event, "listed_ids", [])
            event.prev_hash = prev or GENESIS_HASH
            event.chain_format = CHAIN_FORMAT
            event.key_id = label or None
            fields = {f: getattr(event, f) for f in CHAIN_FIELDS}
            event.hash = event_hash({**fields, "patients": shown}, key=key)
            event.save()
            listed += [AccessEventPatient(event_id=event.pk, patient_id=pk) for pk in shown]
            prev = event.hash
        if listed:
            AccessEventPatient.objects.bulk_create(listed)


def _lock_log_and_read_last_hash() -> str | None:
    """Take the log's write lock, then read the last event's hash (None: no event yet)."""
    last = AccessEvent.objects.order_by("-id").values_list("hash", flat=True)[:1]
    sql, params = last.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The lock is held to the end of the transaction. Two statements in one
            # round trip (every page writes an event): each takes its own snapshot, so
            # the second sees every event committed before the lock was granted.
            cursor.execute(f"SELECT pg_advisory_xact_lock(%s); {sql}", [ADVISORY_LOCK_KEY, *params])
        else:
            if connection.vendor == "sqlite":
                # Any write takes SQLite's one write lock until the transaction ends;
                # this one changes nothing.
                cursor.execute("UPDATE patients_audit_maintenance SET id = id WHERE 0")
            cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


# --- who and from where -------------------------------------------------------------


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


# --- the hash chain -----------------------------------------------------------------


def audit_key() -> bytes:
    """The chain's secret: `CTCTRACK_AUDIT_KEY`, else one derived from `SECRET_KEY`.

    Either way it lives outside the database. A key of its own is better (a
    deploy check says so): rotating `SECRET_KEY` would then not strand the log.
    """
    configured = getattr(settings, "CTCTRACK_AUDIT_KEY", "")
    if configured:
        return configured.encode()
    return _derived_key()


def _derived_key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), b"ctctrack.audit-chain", hashlib.sha256).digest()


def audit_key_id() -> str:
    """The label of the key events are keyed with now ("": the key from before labels)."""
    return str(getattr(settings, "CTCTRACK_AUDIT_KEY_ID", ""))


class AuditKeys(NamedTuple):
    """Every key an event may be keyed with, by label, and their order, oldest first."""

    by_label: dict[str, bytes]
    order: dict[str, int]


def audit_keys() -> AuditKeys:
    """The current key and the retired ones (`CTCTRACK_AUDIT_RETIRED_KEYS`, oldest first).

    The label "" is the key in use before keys had labels: the retired keys' "" if
    given, else the key derived from `SECRET_KEY` (a deployment that never set
    `CTCTRACK_AUDIT_KEY` keyed its first events with it). It is the oldest.
    """
    retired = retired_keys()
    current = audit_key_id()
    labels = ["", *[label for label in retired if label not in ("", current)], current]
    by_label = {"": _derived_key()} | {label: key.encode() for label, key in retired.items()}
    by_label[current] = audit_key()
    return AuditKeys(by_label, {label: rank for rank, label in enumerate(labels)})


def retired_keys() -> dict[str, str]:
    """`CTCTRACK_AUDIT_RETIRED_KEYS`: a JSON object of labels to keys, oldest first.

    Raises ImproperlyConfigured, naming the setting, when it is not one (the deploy
    check `ctctrack.E009` says so at start).
    """
    text = str(getattr(settings, "CTCTRACK_AUDIT_RETIRED_KEYS", "") or "").strip()
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"CTCTRACK_AUDIT_RETIRED_KEYS is not JSON: {exc}.") from None
    if not isinstance(found, dict) or not all(
        isinstance(label, str) and len(label) <= KEY_ID_LENGTH and isinstance(key, str) and key
        for label, key in found.items()
    ):
        raise ImproperlyConfigured(
            "CTCTRACK_AUDIT_RETIRED_KEYS must be a JSON object of labels (up to "
            f'{KEY_ID_LENGTH} characters) to keys, oldest first: {{"": "<the first key>", '
            '"2027-01": "<the next>"}.'
        )
    return found


def event_hash(
    fields: Mapping[str, Any], *, chain_format: int = CHAIN_FORMAT, key: bytes | None = None
) -> str:
    """The hash (hex) of an event's canonical payload: `CHAIN_FIELDS` as sorted JSON.

    Format 3 (every event written now) adds `patients`, the ids of the patients the
    event listed (`AccessEventPatient`, none when it named one or none), and is
    HMAC-SHA256 with `key`, else the current `audit_key()`, as format 2 was; format
    1, plain SHA-256, only verifies events written before the chain was keyed. The
    time is written in UTC to the microsecond, so the hash of a row read back from
    either database equals the hash computed before it was written.
    """
    payload = {name: fields[name] for name in CHAIN_FIELDS}
    payload["at"] = fields["at"].astimezone(UTC).isoformat(timespec="microseconds")
    payload["format"] = chain_format
    if chain_format >= LISTING_FORMAT:
        payload["patients"] = sorted(fields.get("patients", ()))
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if chain_format == UNKEYED_FORMAT:
        return hashlib.sha256(text.encode("ascii")).hexdigest()
    if chain_format not in KEYED_FORMATS:
        raise ValueError(f"Unknown chain format {chain_format!r}.")
    return hmac.new(key or audit_key(), text.encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    """The first event at which the chain does not hold, and why."""

    event_id: int
    reason: str

    def __str__(self) -> str:
        return f"Broken at event #{self.event_id}: {self.reason}"


def chain_rows(
    up_to_id: int | None = None, *, after_id: int | None = None
) -> Iterator[dict[str, Any]]:
    """The events in chain order, streamed in chunks (the log may hold millions), each
    with `patients`: the ids of the patients it listed (`AccessEventPatient`), sorted;
    an event from before chain format 3 also with `text_patients`, those its text names
    (`text_listed`) of the patients on record, which its rows must be."""
    events = AccessEvent.objects.order_by("id")
    if up_to_id is not None:
        events = events.filter(id__lte=up_to_id)
    fields = ("id", "hash", "chain_format", "key_id", *CHAIN_FIELDS)
    last = after_id or 0  # by id, a chunk a query: no cursor held open between chunks
    while chunk := list(events.filter(id__gt=last).values(*fields)[:CHAIN_CHUNK]):
        last = chunk[-1]["id"]
        listed = listed_patients([row["id"] for row in chunk])
        earlier = [r for r in chunk if (r["chain_format"] or UNKEYED_FORMAT) < LISTING_FORMAT]
        named = _named_on_record(earlier)
        for row in chunk:
            row["patients"] = listed.get(row["id"], [])
            if row["id"] in named:
                row["text_patients"] = named[row["id"]]
            yield row


def listed_patients(event_ids: Collection[int]) -> dict[int, list[int]]:
    """The patients each of these events listed (`AccessEventPatient`), sorted: one query."""
    listed: defaultdict[int, list[int]] = defaultdict(list)
    rows = AccessEventPatient.objects.filter(event__in=event_ids).order_by("patient_id")
    for event_id, patient_id in rows.values_list("event_id", "patient_id"):
        listed[event_id].append(patient_id)
    return listed


def first_broken_link(
    rows: Iterable[Mapping[str, Any]], *, after: str = GENESIS_HASH, keyed: bool = False
) -> BrokenLink | None:
    """Walk the chain in order; the first event whose link or hash does not hold.

    `after` is the hash the first row chains to: the genesis, or the last hash
    of events archived and removed from the table, or of a checkpointed event
    (then `keyed` says whether that event was keyed). Each keyed event is checked
    with the key its label names, and none may be keyed with a key older than
    an event before it (from the first row given).
    """
    keys = audit_keys()
    expected_prev, prev_id, newest = after, None, -1
    for row in rows:
        if row["prev_hash"] != expected_prev:
            return BrokenLink(row["id"], _link_reason(prev_id, after))
        row_format = row.get("chain_format") or UNKEYED_FORMAT
        if keyed and row_format == UNKEYED_FORMAT:
            return BrokenLink(
                row["id"],
                "it is not keyed but follows keyed events: the chain was recomputed "
                "without the audit key",
            )
        if row_format not in (UNKEYED_FORMAT, *KEYED_FORMATS):
            return BrokenLink(row["id"], f"its chain format {row_format!r} is unknown")
        if row_format < LISTING_FORMAT:
            # Its hash does not cover its rows: they were read from its text (migration
            # 0025, `manage.py backfill_audit_lists`), and must be what the text names.
            named = row["text_patients"] if "text_patients" in row else text_listed(row)
            if problem := _rows_against_text(row.get("patients", []), named):
                return BrokenLink(row["id"], problem)
        key = None
        if row_format in KEYED_FORMATS:
            label = row.get("key_id") or ""
            if label not in keys.by_label:
                return BrokenLink(
                    row["id"],
                    f"it was keyed with the audit key labelled {label!r}, which is not "
                    "configured: add it to CTCTRACK_AUDIT_RETIRED_KEYS to verify its events",
                )
            if keys.order[label] < newest:
                return BrokenLink(
                    row["id"],
                    f"it is keyed with the retired audit key labelled {label!r} but follows "
                    "events keyed with a newer one: events were written with a retired key",
                )
            key, newest = keys.by_label[label], keys.order[label]
        if not hmac.compare_digest(event_hash(row, chain_format=row_format, key=key), row["hash"]):
            return BrokenLink(
                row["id"],
                "its recorded values (or the patients listed as shown by it) no longer match "
                "its hash: the row was changed after it was written, or the audit key is not "
                "the one it was written with",
            )
        keyed = keyed or row_format in KEYED_FORMATS
        expected_prev, prev_id = row["hash"], row["id"]
    return None


# How the events before chain format 3 named several patients: at the end of their text,
# or before "; to users ..." (an escalation). Only the successful events of the actions
# that wrote such lists are read: a refusal's text holds the path the client sent.
_TEXT_LISTED = re.compile(r"(?:^|[:;] )patients (\d+(?:, \d+)*)(?:; to users [\d, ]+)?$")
LISTING_ACTIONS = frozenset(
    {
        AccessAction.WORKLIST,
        AccessAction.RESULTS,
        AccessAction.PATIENT_LIST,
        AccessAction.API_READ,
        AccessAction.VIEW,
        AccessAction.IMPORT,
        AccessAction.EXPORT,
        AccessAction.ESCALATION,
        AccessAction.BULK_ACKNOWLEDGEMENT,
    }
)


def text_listed(row: Mapping[str, Any]) -> list[int]:
    """The patients an event from before chain format 3 names in its text, when it names
    several and no single patient (migration 0025 reads the same, then keeps the ids of
    patients on record: `text_patients` in `chain_rows`)."""
    if (
        row.get("patient_id") is not None
        or row.get("action") not in LISTING_ACTIONS
        or row.get("outcome") != AccessOutcome.SUCCESS
    ):
        return []
    found = _TEXT_LISTED.search(row.get("target") or "")
    ids = sorted({int(pk) for pk in found[1].split(", ")}) if found else []
    return ids if len(ids) > 1 else []


def _rows_against_text(rows: Sequence[int], named: Sequence[int]) -> str | None:
    if set(rows) - set(named):
        return "patients were added to those it showed (its rows name patients its text does not)"
    if set(named) - set(rows):
        return (
            "patients its text names are missing from those it showed: rows were removed, "
            "or it was written by the previous release during the upgrade (run "
            "`manage.py backfill_audit_lists`, which restores them from its text)"
        )
    return None


def backfill_text_listed(*, batch: int = CHAIN_CHUNK) -> int:
    """Give the events from before chain format 3 the rows their text names, where they
    lack them (`manage.py backfill_audit_lists`; migration 0025 did the same at the
    upgrade). Only inserts, as the triggers allow. How many rows it added."""
    added, last = 0, 0
    earlier = AccessEvent.objects.filter(
        Q(chain_format__isnull=True) | Q(chain_format__lt=LISTING_FORMAT)
    ).order_by("id")
    while chunk := list(earlier.filter(id__gt=last).values("id", *CHAIN_FIELDS)[:batch]):
        last = chunk[-1]["id"]
        named = _named_on_record(chunk)
        have = listed_patients(list(named))
        missing = [
            AccessEventPatient(event_id=event_id, patient_id=pk)
            for event_id, ids in named.items()
            for pk in set(ids) - set(have.get(event_id, []))
        ]
        AccessEventPatient.objects.bulk_create(missing)
        added += len(missing)
    return added


def _named_on_record(rows: Iterable[Mapping[str, Any]]) -> dict[int, list[int]]:
    """For events from before chain format 3, the patients their text names (`text_listed`)
    that are on record, by event id: the rows they must have. One query."""
    named = {row["id"]: text_listed(row) for row in rows}
    on_record = _patients_on_record({pk for ids in named.values() for pk in ids})
    return {event_id: [pk for pk in ids if pk in on_record] for event_id, ids in named.items()}


def _patients_on_record(wanted: set[int]) -> set[int]:
    if not wanted:
        return set()
    return set(Patient.objects.filter(pk__in=wanted).values_list("pk", flat=True))


def _link_reason(prev_id: int | None, after: str) -> str:
    if prev_id is None and after == GENESIS_HASH:
        return "it is the first event but does not start the chain: earlier events were deleted"
    if prev_id is None:
        return (
            "it is the first event checked but does not follow the hash it must follow "
            "(the archived events' last hash, or a checkpoint's)"
        )
    return (
        f"it does not follow event #{prev_id}: an event between them was deleted, "
        "events were inserted or reordered, or the event before it was changed"
    )


def verify_chain() -> BrokenLink | None:
    """The first broken link of the whole access log, or None when it is intact."""
    return first_broken_link(chain_rows())
