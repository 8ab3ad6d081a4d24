"""Check the access log's hash chain: `python manage.py verify_audit`.

Prints "Audit chain intact: N events" with the last event's id and hash, or
"Broken at event #ID: reason" and exits with status 1. Streams the log in
chunks, so millions of events take time but not memory; a progress bar goes
to stderr when the log is large and stderr is a terminal.

A hash chain cannot tell that its newest events were cut off. Keep the hash
this prints somewhere the database's administrators cannot write, and pass it
back with `--anchor HASH`: the check then fails unless that event is still
there. After archiving and removing old events (docs/audit.md), pass the last
archived hash with `--after HASH`.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max
from tqdm import tqdm

from patients.audit import chain
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

    def handle(self, *args: Any, anchor: str | None, after: str, **options: Any) -> None:
        # Events written while we check are left for the next run.
        last_id = AccessEvent.objects.aggregate(last=Max("id"))["last"]
        if anchor and not AccessEvent.objects.filter(hash=anchor, id__lte=last_id or 0).exists():
            raise CommandError(
                f"Broken: no event has the anchor hash {anchor}: events were removed", returncode=1
            )
        if last_id is None:
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
        head = AccessEvent.objects.filter(id=last_id).values_list("hash", flat=True).get()
        counted = f"{total} event" if total == 1 else f"{total} events"
        self.stdout.write(f"Audit chain intact: {counted}; last event #{last_id}, hash {head}")
