"""`python manage.py import_hl7 FILE... [--dry-run] [--user NAME]`: lab results from HL7 v2 files.

Each ORU^R01 message in the files is processed as the endpoint
`POST /api/v1/hl7/oru/` would: stored all-or-nothing on its own, and reported
on one line (control ID, AA/AE/AR, what happened or why not). The command
fails (non-zero exit) when any message was not accepted. With `--dry-run`
every message is checked against the record, earlier messages of the same run
included, and then nothing is saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import transaction
from tqdm import tqdm

from patients import services
from patients.interop.hl7 import parse as hl7_in
from patients.interop.hl7.ack import AckCode
from patients.interop.hl7.receive import (
    LAB_INTERFACE_ACCOUNT,
    Receipt,
    receive_hl7,
    record_import,
)
from patients.wording import how_many

# Fewer messages than this print their lines without a progress bar.
PROGRESS_FROM = 20


class Command(BaseCommand):
    help = "Import CTC results from HL7 v2 ORU^R01 files (each message all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check every message; save nothing."
        )
        parser.add_argument(
            "--user",
            default=LAB_INTERFACE_ACCOUNT,
            help=f"Who the draws are entered by (default: the '{LAB_INTERFACE_ACCOUNT}' "
            "account, which cannot sign in).",
        )

    def handle(
        self, *args: Any, files: list[Path], dry_run: bool, user: str, **options: Any
    ) -> None:
        bodies = [(file, _read(file)) for file in files]
        # A dry run stores nothing, so it logs no import: its events would be rolled back.
        self._logs_imports = not dry_run
        if dry_run:
            # One transaction for the run, rolled back: later messages see earlier ones.
            with transaction.atomic():
                receipts = self._import_all(bodies, user)
                transaction.set_rollback(True)
        else:
            receipts = self._import_all(bodies, user)
        refused = [r for r in receipts if r.code is not AckCode.ACCEPT]
        summary = f"{len(receipts) - len(refused)} of {how_many(len(receipts), 'message')} accepted"
        if dry_run:
            summary += " (dry run: nothing saved)"
        if refused:
            raise CommandError(f"{summary}; {len(refused)} not accepted (AE/AR), see above.")
        self.stdout.write(self.style.SUCCESS(f"{summary}."))

    def _import_all(self, bodies: list[tuple[Path, bytes]], user: str) -> list[Receipt]:
        by = services.system_user(user) if user == LAB_INTERFACE_ACCOUNT else _existing(user)
        return [receipt for file, body in bodies for receipt in self._import(file, body, by)]

    def _import(self, file: Path, body: bytes, by: Any) -> list[Receipt]:
        messages = hl7_in.split_body(body).messages
        receipts = []
        with tqdm(
            total=len(messages),
            desc=file.name,
            unit="message",
            file=_Unterminated(self.stderr),
            disable=len(messages) < PROGRESS_FROM,
        ) as bar:
            # Each message is received on its own: a bad one never holds back the others.
            for text in messages or [""]:
                for receipt in receive_hl7(text, by=by).receipts:
                    if self._logs_imports:
                        # The endpoint's access-log event, as the account entering the draws.
                        record_import(receipt, by=by)
                    self.stdout.write(_line(file, receipt))
                    receipts.append(receipt)
                bar.update(1)
        return receipts


def _line(file: Path, receipt: Receipt) -> str:
    control_id = receipt.header.control_id or "(no control ID)"
    lines = [f"{file.name}: {control_id} {receipt.code} {receipt.text}"]
    lines += [f"    {p.location}: {p.text}" for p in receipt.problems[1:]]
    return "\n".join(lines)


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {file}: {exc.strerror}") from exc


def _existing(username: str) -> Any:
    try:
        return get_user_model().objects.get(username=username, is_active=True)
    except get_user_model().DoesNotExist as exc:
        raise CommandError(f"No active user named {username!r}.") from exc


class _Unterminated:
    """Lets tqdm redraw its bar in place: the command's stderr would end every write
    with a newline."""

    def __init__(self, out: OutputWrapper) -> None:
        self._out = out

    def write(self, text: str) -> None:
        self._out.write(text, ending="")

    def flush(self) -> None:
        self._out.flush()
