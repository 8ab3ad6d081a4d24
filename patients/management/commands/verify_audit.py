"""Check the access log's hash chain: `python manage.py verify_audit`.

Prints "Audit chain intact: N events" with the last event's id and hash, or
"Broken at event #ID: reason" and exits with status 1. Streams the log in
chunks, so millions of events take time but not memory; a progress bar goes
to stderr when the log is large and stderr is a terminal.

A hash chain cannot tell that its newest events were cut off. The signed
checkpoints `audit_checkpoint` writes can: `--checkpoints FILE` (default
`CTCTRACK_AUDIT_CHECKPOINT_FILE`) checks every one of them against the log.
By hand, keep the hash this prints somewhere the database's administrators
cannot write, and pass it back with `--anchor HASH`: the check then fails
unless that event is still there. After archiving and removing old events
(docs/audit.md), pass the last archived hash with `--after HASH`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Max, Min
from tqdm import tqdm

from patients.audit import chain, checkpoints
from patients.models import AccessEvent

# Below this many events the check takes about a second: no progress bar.
PROGRESS_FROM = 50_000


class Command(BaseCommand):
    help = "Verify the access log's hash chain; exit status 1 at the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            metavar="HASH",
            help="a hash printed by an earlier run: fail unless that event is still in the log",
        )
        parser.add_argument(
            "--after",
            metavar="HASH",
            default=chain.GENESIS_HASH,
            help="the last hash of archived and removed events (default: none were removed)",
        )
        parser.add_argument(
            "--checkpoints",
            dest="checkpoint_file",
            metavar="FILE",
            default=settings.CTCTRACK_AUDIT_CHECKPOINT_FILE,
            help="signed checkpoints to check the log against "
            "(default: CTCTRACK_AUDIT_CHECKPOINT_FILE)",
        )

    def handle(
        self,
        *args: Any,
        anchor: str | None,
        after: str,
        checkpoint_file: str = "",
        **options: Any,
    ) -> None:
        written = _read_checkpoints(checkpoint_file) if checkpoint_file else None
        # Events written while we check are left for the next run.
        last_id = AccessEvent.objects.aggregate(last=Max("id"))["last"]
        if anchor and not AccessEvent.objects.filter(hash=anchor, id__lte=last_id or 0).exists():
            raise CommandError(
                f"Broken: no event has the anchor hash {anchor}: events were removed", returncode=1
            )
        if last_id is None:
            if written:
                raise CommandError(
                    f"Broken: the log is empty, but {written[-1]} saw events", returncode=1
                )
            self.stdout.write("Audit chain intact: 0 events")
            return
        total = AccessEvent.objects.filter(id__lte=last_id).count()
        rows = tqdm(
            chain.chain_rows(up_to_id=last_id),
            total=total,
            unit=" events",
            file=sys.stderr,
            disable=None if total >= PROGRESS_FROM else True,  # None: only on a terminal
        )
        broken = chain.first_broken_link(rows, after=after)
        rows.close()
        if broken is not None:
            raise CommandError(str(broken), returncode=1)
        for checkpoint in written or []:
            problem = _contradiction(checkpoint, last_id)
            if problem:
                raise CommandError(f"Broken: {problem}", returncode=1)
        head = AccessEvent.objects.filter(id=last_id).values_list("hash", flat=True).get()
        counted = f"{total} event" if total == 1 else f"{total} events"
        self.stdout.write(f"Audit chain intact: {counted}; last event #{last_id}, hash {head}")
        unkeyed = AccessEvent.objects.filter(id__lte=last_id, chain_format__isnull=True)
        if (before_key := unkeyed.aggregate(last=Max("id"))["last"]) is not None:
            self.stdout.write(
                f"Events up to #{before_key} were written before the chain was keyed: "
                "only a checkpoint or an anchor kept since protects them from a rewrite."
            )
        for line in _key_report(last_id):
            self.stdout.write(line)
        if written is not None:
            self.stdout.write(
                f"Checkpoints: all {len(written)} agree with the log"
                + (f"; the latest is {written[-1]}" if written else "")
            )


def _read_checkpoints(path: str) -> list[checkpoints.Checkpoint]:
    file = Path(path)
    if not file.exists():
        raise CommandError(f"The checkpoint file {path} does not exist.", returncode=1)
    try:
        return checkpoints.read_file(file)
    except checkpoints.CheckpointError as exc:
        raise CommandError(f"Broken: {exc}", returncode=1) from exc


def _contradiction(checkpoint: checkpoints.Checkpoint, last_id: int) -> str | None:
    return checkpoints.contradiction(checkpoint, up_to_id=last_id)


def _key_report(last_id: int) -> list[str]:
    """Once the key has been rotated: which key signs which events, and which retired key
    signs none still in the log (docs/audit.md, "Rotating the audit key")."""
    retired = chain.retired_keys()
    keyed = (
        AccessEvent.objects.filter(id__lte=last_id, chain_format__in=chain.KEYED_FORMATS)
        .values("key_id")
        .annotate(first=Min("id"), last=Max("id"), events=Count("id"))
        .order_by("first")
    )
    spans = [(row["key_id"] or "", row["first"], row["last"], row["events"]) for row in keyed]
    if not retired and all(label == "" for label, *_ in spans):
        return []  # never rotated: one key, nothing to say
    lines = [
        f"Keyed with the audit key labelled {label!r}: "
        f"{'1 event' if events == 1 else f'{events} events'}, #{first} to #{last}."
        for label, first, last, events in spans
    ]
    used = {label for label, *_ in spans}
    lines += [
        f"The retired audit key labelled {label!r} keys no event left in the log; "
        "keep it while an archive of its events may need verifying."
        for label in retired
        if label not in used
    ]
    return lines
