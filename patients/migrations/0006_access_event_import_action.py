"""An `import` action for the access log, and no database check on `action` any more.

`record()` checks the action. A CHECK constraint would make every new action
re-check every row of the log on PostgreSQL (under a lock that stops all
writes), and rebuild the table on SQLite.

On SQLite, removing the constraint rebuilds `patients_accessevent`, which drops
its append-only triggers (migration 0005): they are created again here, after
the rebuild, and (when this migration is unapplied) after the rebuild that
restores the constraint.
"""

from __future__ import annotations

from django.db import migrations, models

MESSAGE = "The access log is append-only: {} refused"

SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER IF NOT EXISTS accessevent_no_update BEFORE UPDATE ON patients_accessevent
    BEGIN SELECT RAISE(ABORT, '{MESSAGE.format("UPDATE")}'); END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS accessevent_no_delete BEFORE DELETE ON patients_accessevent
    WHEN NOT EXISTS (SELECT 1 FROM patients_audit_maintenance)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE.format("DELETE")}'); END
    """,
]


def restore_sqlite_triggers(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL keeps its triggers: nothing was rebuilt
    for sql in SQLITE_TRIGGERS:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0005_access_event_append_only_triggers"),
    ]

    operations = [
        # Unapplied last: after the rebuild that brings the constraint back.
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_triggers),
        migrations.RemoveConstraint(
            model_name="accessevent",
            name="access_event_action_valid",
        ),
        migrations.AlterField(
            model_name="accessevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("view", "Patient record viewed"),
                    ("chart", "Chart"),
                    ("report", "Printable report"),
                    ("export", "Export"),
                    ("import", "Import"),
                    ("api_read", "API read"),
                    ("worklist", "Worklist"),
                    ("patient_list", "Patient list"),
                    ("audit_report", "Audit report"),
                    ("login", "Sign-in"),
                    ("logout", "Sign-out"),
                    ("login_failed", "Failed sign-in"),
                    ("permission_denied", "Permission denied"),
                    ("lockout", "Account locked out"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(restore_sqlite_triggers, migrations.RunPython.noop),
    ]
