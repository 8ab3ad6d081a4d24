"""Signed checkpoints of the access log, kept where the database's role cannot write.

The keyed chain (patients/audit/chain.py) stops anyone without the audit key
from rewriting an event and re-chaining the rest. Two things it cannot show
alone: that the newest events were not cut off, and that the whole log was not
replaced by someone holding the key. A checkpoint records the last event's id
and hash at a moment, signed with a key derived from the audit key, and goes to
a place the database cannot change (`manage.py audit_checkpoint`: a file on
another host's mount, a write-once bucket synced from it, or a syslog target).
`verify_audit --checkpoints FILE` then checks every checkpoint against the log.

A checkpoint is one line of JSON (a syslog line carries it after a prefix):

    {"event_id": 48211, "events": 48211, "hash": "39af...", "key_id": "2027-01",
     "kind": "ctctrack-audit-checkpoint", "signature": "…", "version": 2,
     "written_at": "2026-12-03T13:45:00.000000+00:00"}

`key_id` is the label of the audit key that signed it (`CTCTRACK_AUDIT_KEY_ID`), so
that a checkpoint signed before the key was rotated still verifies with the retired
key; version 1, without it, was signed with the key from before labels ("").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db.models import Max, Min
from django.utils import timezone

from patients.audit import chain
from patients.models import AccessEvent

KIND = "ctctrack-audit-checkpoint"
VERSION = 2
# What each version signs: version 1 (before audit keys had labels) had no `key_id`.
SIGNED_FIELDS = {
    1: ("event_id", "events", "hash", "kind", "version", "written_at"),
    2: ("event_id", "events", "hash", "key_id", "kind", "version", "written_at"),
}


@dataclass(frozen=True)
class Checkpoint:
    """The log's last event at a moment: its id and hash, and how many events there were."""

    event_id: int
    hash: str
    events: int
    written_at: datetime

    def payload(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "events": self.events,
            "hash": self.hash,
            "key_id": chain.audit_key_id(),
            "kind": KIND,
            "version": VERSION,
            "written_at": self.written_at.astimezone(UTC).isoformat(timespec="microseconds"),
        }

    def line(self) -> str:
        """The checkpoint as one signed line of JSON, signed with the current audit key."""
        payload = self.payload()
        payload["signature"] = _signature(payload, chain.audit_key())
        return json.dumps(payload, sort_keys=True, separators=(",", ":"))

    def __str__(self) -> str:
        return f"the checkpoint of {self.written_at:%Y-%m-%d %H:%M} UTC (event #{self.event_id})"


class CheckpointError(Exception):
    """A checkpoint that is unreadable, unsigned or contradicted by the log."""


def _signature(payload: dict[str, Any], audit_key: bytes) -> str:
    # Signed with a key of its own, derived from the audit key: a checkpoint is never a
    # valid event hash.
    signing_key = hmac.new(audit_key, b"ctctrack.audit-checkpoint", hashlib.sha256).digest()
    fields = SIGNED_FIELDS[payload["version"]]
    text = json.dumps(
        {name: payload[name] for name in fields}, sort_keys=True, separators=(",", ":")
    )
    return hmac.new(signing_key, text.encode(), hashlib.sha256).hexdigest()


# --- writing --------------------------------------------------------------------------


def current(now: datetime | None = None) -> Checkpoint | None:
    """A checkpoint of the log as it is now; None while the log is empty."""
    last = AccessEvent.objects.order_by("-id").values("id", "hash").first()
    if last is None:
        return None
    count = AccessEvent.objects.filter(id__lte=last["id"]).count()
    return Checkpoint(last["id"], last["hash"], count, now or timezone.now())


# --- reading --------------------------------------------------------------------------


def read_file(path: Path) -> list[Checkpoint]:
    """The checkpoints of a file, in order (`parse`); CheckpointError for a bad line.

    Read as ASCII, anything else replaced: a checkpoint is ASCII, and other lines
    of a syslog file are only skipped. The caller says what a missing file means.
    """
    with path.open(encoding="ascii", errors="replace") as lines:
        return list(parse(lines))


def parse(lines: Iterable[str]) -> Iterator[Checkpoint]:
    """The checkpoints of a file, in order; a line that is not a valid one raises.

    Lines without a checkpoint (a syslog file holds other messages) are skipped;
    a line that holds one whose signature does not verify is an error, because
    it means the file was changed or another key signed it.
    """
    keys = chain.audit_keys().by_label
    for number, line in enumerate(lines, start=1):
        if KIND not in line:
            continue
        # A syslog line wraps it in a priority prefix and a NUL terminator.
        start, end = line.find("{"), line.rfind("}")
        try:
            payload = json.loads(line[start : end + 1]) if 0 <= start < end else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("kind") != KIND:
            raise CheckpointError(f"Line {number} of the checkpoints is not a checkpoint.")
        fields = SIGNED_FIELDS.get(payload.get("version"))  # type: ignore[arg-type]
        if fields is None or not all(f in payload for f in fields):
            raise CheckpointError(f"Line {number} of the checkpoints has an unknown layout.")
        label = str(payload.get("key_id", ""))
        if label not in keys:
            raise CheckpointError(
                f"Line {number} of the checkpoints is signed with the audit key labelled "
                f"{label!r}, which is not configured: add it to CTCTRACK_AUDIT_RETIRED_KEYS."
            )
        if not hmac.compare_digest(
            str(payload.get("signature", "")), _signature(payload, keys[label])
        ):
            raise CheckpointError(
                f"Line {number} of the checkpoints is not signed with this deployment's "
                "audit key: the file was changed, or CTCTRACK_AUDIT_KEY is not the one "
                "that signed it."
            )
        yield Checkpoint(
            event_id=int(payload["event_id"]),
            hash=str(payload["hash"]),
            events=int(payload["events"]),
            written_at=datetime.fromisoformat(payload["written_at"]),
        )


def contradiction(checkpoint: Checkpoint, *, up_to_id: int | None = None) -> str | None:
    """What in the log contradicts this checkpoint, or None when it holds.

    Events up to `up_to_id` only (events written during a check are left for
    the next). An event removed by archiving (below the first event still
    there) cannot be compared and is not a contradiction.
    """
    bounds = AccessEvent.objects.aggregate(first=Min("id"), last=Max("id"))
    last = bounds["last"] if up_to_id is None else up_to_id
    if bounds["first"] is not None and checkpoint.event_id < bounds["first"]:
        return None
    if last is None or checkpoint.event_id > last:
        return (
            f"{checkpoint} saw event #{checkpoint.event_id}, which is no longer in the log: "
            "its newest events were removed"
        )
    found = AccessEvent.objects.filter(id=checkpoint.event_id).values_list("hash", flat=True)
    stored = found.first()
    if stored is None:
        return f"event #{checkpoint.event_id} of {checkpoint} is no longer in the log"
    if not hmac.compare_digest(stored, checkpoint.hash):
        return (
            f"event #{checkpoint.event_id} no longer has the hash {checkpoint} signed: "
            "the log was rewritten"
        )
    return None
