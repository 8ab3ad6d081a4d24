"""`python manage.py import_ctc FILE.csv [--dry-run] [--user NAME]`: CTC draws from a spreadsheet.

All or nothing: one bad row rejects the whole file, and every bad row is
reported by line number and field (the first few hundred are listed). Importing
the same file again changes nothing: rows already on record (same accession,
or same patient, time and result) are recognised and left alone. The file is
read exactly as the upload page reads it (`importer`); the page's same-day
warnings are printed, so run with --dry-run first to see them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from patients import services, wording
from patients.interop.csv import importer
from patients.interop.csv.imports import CsvFileError

IMPORT_ACCOUNT = "csv-import"


class Command(BaseCommand):
    help = "Import CTC draws from a CSV file (all rows or none)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="Check and report only.")
        parser.add_argument(
            "--user",
            default=IMPORT_ACCOUNT,
            help=f"Who the draws are entered by (default: the '{IMPORT_ACCOUNT}' account).",
        )

    def handle(self, *args: Any, file: Path, dry_run: bool, user: str, **options: Any) -> None:
        try:
            text, encoding = importer.read_file(file.read_bytes())
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        except CsvFileError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        # Who imports: the file is read against the patients of their care teams.
        by = services.system_user(user) if user == IMPORT_ACCOUNT else _existing_user(user)
        plan = importer.plan_csv(text, by=by, encoding=encoding)
        self.stdout.write(
            f"{file.name}: {len(plan.new)} to add, {len(plan.unchanged)} already recorded, "
            f"{wording.how_many(len(plan.error_lines()), 'bad row')}. Read as {plan.read_as}."
        )
        if not plan.ok:
            listed = "\n".join(f"  {e}" for e in plan.errors_listed)
            if plan.errors_not_listed:
                more = wording.how_many(plan.errors_not_listed, "more problem")
                listed += f"\n  ... and {more} not listed."
            if plan.stopped:
                listed += f"\n  {plan.stopped}"
            raise CommandError(f"Nothing imported. Fix these rows and try again:\n{listed}")
        if plan.warnings:
            self.stdout.write("Check (same day as another draw of the patient):")
            for warning in plan.warnings_listed:
                self.stdout.write(self.style.WARNING(f"  {warning}"))
            if plan.warnings_not_listed:
                self.stdout.write(f"  ... and {plan.warnings_not_listed} more not listed.")
        if dry_run or not plan.new:
            self.stdout.write("Dry run: nothing saved." if dry_run else "Nothing new to import.")
            return
        with tqdm(total=len(plan.new), desc="Importing", unit="draw", file=self.stderr) as bar:

            def advance(count: int) -> None:
                bar.update(count)  # its answer (whether the bar was redrawn) is of no use here

            importer.import_plan(
                plan,
                by=by,
                source=file.name,
                channel=f"import_ctc {file.name}",
                progress=advance,
            )
        self.stdout.write(
            self.style.SUCCESS(f"Imported {wording.how_many(len(plan.new), 'draw')}.")
        )


def _existing_user(username: str) -> AbstractBaseUser:
    try:
        return get_user_model().objects.get(username=username, is_active=True)
    except get_user_model().DoesNotExist as exc:
        raise CommandError(f"No active user named {username!r}.") from exc
