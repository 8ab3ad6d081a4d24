"""Write a signed checkpoint of the access log: `python manage.py audit_checkpoint`.

Run it on a schedule (docs/audit.md: a systemd timer or cron, hourly) with a
destination the database's role cannot change:

    python manage.py audit_checkpoint --file /mnt/audit/ctctrack-checkpoints.jsonl
    python manage.py audit_checkpoint --syslog /dev/log      # or --syslog loghost:514

The file (default `CTCTRACK_AUDIT_CHECKPOINT_FILE`) is appended to, never
rewritten. Before signing, the chain written since the file's last checkpoint
is verified (the whole chain when there is none), so a checkpoint never vouches
for a log that was already broken: then it writes nothing and exits 1.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max

from patients.audit import chain, checkpoints
from patients.models import AccessEvent


class Command(BaseCommand):
    help = "Verify the access log since the last checkpoint and append a signed checkpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            metavar="PATH",
            default=settings.CTCTRACK_AUDIT_CHECKPOINT_FILE,
            help="append the checkpoint to this file (default: CTCTRACK_AUDIT_CHECKPOINT_FILE)",
        )
        parser.add_argument(
            "--syslog",
            metavar="ADDRESS",
            help="also send it to syslog: a socket path (/dev/log) or host:port (UDP)",
        )

    def handle(self, *args: Any, file: str, syslog: str | None, **options: Any) -> None:
        if not file and not syslog:
            raise CommandError(
                "Say where the checkpoint goes: --file PATH, --syslog ADDRESS, or set "
                "CTCTRACK_AUDIT_CHECKPOINT_FILE."
            )
        path = Path(file) if file else None
        last_id = AccessEvent.objects.aggregate(last=Max("id"))["last"]
        if last_id is None:
            self.stdout.write("The access log is empty: no checkpoint written.")
            return
        previous = _last_checkpoint(path) if path is not None else None
        self._verify_since(previous, last_id)
        checkpoint = checkpoints.current()
        assert checkpoint is not None  # the log is not empty
        line = checkpoint.line()
        if path is not None:
            with path.open("a", encoding="ascii") as out:
                out.write(line + "\n")
        if syslog:
            _send_to_syslog(syslog, line)
        self.stdout.write(
            f"Checkpoint written: event #{checkpoint.event_id}, {checkpoint.events} events, "
            f"hash {checkpoint.hash}"
        )

    def _verify_since(self, previous: checkpoints.Checkpoint | None, last_id: int) -> None:
        if previous is None:
            broken = chain.first_broken_link(chain.chain_rows(up_to_id=last_id))
        else:
            problem = checkpoints.contradiction(previous, up_to_id=last_id)
            if problem:
                raise CommandError(f"No checkpoint written: {problem}.", returncode=1)
            # From the checkpointed event itself: its hash is pinned by the checkpoint,
            # and its fields must still match that hash.
            # (Archived and removed since: from the first event still there.)
            start = (
                AccessEvent.objects.filter(id__gte=previous.event_id)
                .order_by("id")
                .values("id", "prev_hash")
                .first()
            )
            broken = start and chain.first_broken_link(
                chain.chain_rows(up_to_id=last_id, after_id=start["id"] - 1),
                after=start["prev_hash"],
            )
        if broken is not None:
            raise CommandError(f"No checkpoint written: {broken}", returncode=1)


def _last_checkpoint(path: Path) -> checkpoints.Checkpoint | None:
    if not path.exists():
        return None
    try:
        found = checkpoints.read_file(path)
    except checkpoints.CheckpointError as exc:
        raise CommandError(f"No checkpoint written: {exc}", returncode=1) from exc
    return found[-1] if found else None


class _RaisingSysLogHandler(logging.handlers.SysLogHandler):
    """A syslog handler that lets a failed send fail the command (logging swallows it)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        raise  # noqa: PLE0704 (called from emit's except block: re-raise what failed)


def _send_to_syslog(address: str, line: str) -> None:
    host, _, port = address.rpartition(":")
    target: str | tuple[str, int] = (host, int(port)) if host and port.isdigit() else address
    try:
        handler = _RaisingSysLogHandler(
            address=target, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV
        )
        record = logging.makeLogRecord(
            {
                "name": "ctctrack.audit",
                "levelno": logging.INFO,
                "levelname": "INFO",
                "msg": "%s %s",
                "args": (checkpoints.KIND, line),
            }
        )
        try:
            handler.emit(record)
        finally:
            handler.close()
    except OSError as exc:
        raise CommandError(f"Could not send the checkpoint to syslog at {address}: {exc}") from exc
