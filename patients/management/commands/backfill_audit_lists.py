"""`python manage.py backfill_audit_lists`: the rows of the patients earlier events listed.

An event about several patients keeps one row per patient (`AccessEventPatient`),
which the audit report finds the patient's reads by. Events written before chain
format 3 name them only in their text; migration 0025 read their rows from it.
Events the previous release writes while the app servers restart one at a time
after that migration get no rows, and `verify_audit` says so ("patients its text
names are missing"). Run this once every server runs the new release (docs/deployment.md):
it adds the rows their text names, and only those. Running it again adds nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from patients.audit import chain


class Command(BaseCommand):
    help = (
        "Give the access-log events written before chain format 3 the rows of the "
        "patients their text lists, where they lack them (after an upgrade's rolling restart)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        added = chain.backfill_text_listed()
        self.stdout.write(f"Added {added} row{'' if added == 1 else 's'} of listed patients.")
