"""Django's `flush`, able to empty the append-only access log too.

The triggers of migration 0005 refuse every DELETE and TRUNCATE of the access
log unless `patients_audit_maintenance` holds a row in the same transaction.
Emptying the whole database (what `flush` is for: test runs, resetting a demo)
is the one operation that may do that: this command writes the row, flushes,
and removes the row, all in one transaction, so the guard is never lifted for
anyone else. The application itself never writes that table.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections, transaction

MAINTENANCE_TABLE = "patients_audit_maintenance"


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        connection = connections[options["database"]]
        if MAINTENANCE_TABLE not in connection.introspection.table_names():
            super().handle(**options)  # not migrated yet: no log, no guard
            return
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {MAINTENANCE_TABLE} (id, purpose) VALUES (1, %s)", ["flush"]
            )
            super().handle(**options)
            cursor.execute(f"DELETE FROM {MAINTENANCE_TABLE}")
