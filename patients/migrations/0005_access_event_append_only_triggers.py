"""The access log is append-only in the database itself, not only in the model.

Triggers refuse every UPDATE of `patients_accessevent`, and every DELETE (and,
on PostgreSQL, TRUNCATE) unless the one-row table `patients_audit_maintenance`
holds a row in the same transaction. Only the project's `flush` command
(patients/management/commands/flush.py) writes that row, around the wipe it
exists for; the application never does. So raw SQL from the application
cannot rewrite the log; someone with the database owner's rights can still
disable the triggers, which is what the hash chain and `verify_audit` detect.

SQLite drops a table's triggers when a migration rebuilds the table: a later
migration that alters AccessEvent must create them again (see 0006).
"""

from __future__ import annotations

from django.db import migrations

MESSAGE = "The access log is append-only: {} refused"

POSTGRESQL_INSTALL = [
    """
    CREATE TABLE patients_audit_maintenance (
        id integer PRIMARY KEY CHECK (id = 1),
        purpose text NOT NULL
    )
    """,
    f"""
    CREATE FUNCTION patients_accessevent_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'UPDATE' AND EXISTS (SELECT 1 FROM patients_audit_maintenance) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION '{MESSAGE.format("%")}', TG_OP USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER accessevent_no_update BEFORE UPDATE ON patients_accessevent
    FOR EACH ROW EXECUTE FUNCTION patients_accessevent_append_only()
    """,
    """
    CREATE TRIGGER accessevent_no_delete BEFORE DELETE ON patients_accessevent
    FOR EACH ROW EXECUTE FUNCTION patients_accessevent_append_only()
    """,
    # TRUNCATE fires no row trigger: it needs its own statement trigger.
    """
    CREATE TRIGGER accessevent_no_truncate BEFORE TRUNCATE ON patients_accessevent
    FOR EACH STATEMENT EXECUTE FUNCTION patients_accessevent_append_only()
    """,
]

POSTGRESQL_REMOVE = [
    "DROP TRIGGER accessevent_no_truncate ON patients_accessevent",
    "DROP TRIGGER accessevent_no_delete ON patients_accessevent",
    "DROP TRIGGER accessevent_no_update ON patients_accessevent",
    "DROP FUNCTION patients_accessevent_append_only()",
    "DROP TABLE patients_audit_maintenance",
]

SQLITE_INSTALL = [
    """
    CREATE TABLE patients_audit_maintenance (
        id integer PRIMARY KEY CHECK (id = 1),
        purpose text NOT NULL
    )
    """,
    # RAISE(ABORT) is a constraint error: IntegrityError, as on PostgreSQL.
    f"""
    CREATE TRIGGER accessevent_no_update BEFORE UPDATE ON patients_accessevent
    BEGIN SELECT RAISE(ABORT, '{MESSAGE.format("UPDATE")}'); END
    """,
    f"""
    CREATE TRIGGER accessevent_no_delete BEFORE DELETE ON patients_accessevent
    WHEN NOT EXISTS (SELECT 1 FROM patients_audit_maintenance)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE.format("DELETE")}'); END
    """,
]

SQLITE_REMOVE = [
    # IF EXISTS: a later migration that rebuilt the table may have dropped them.
    "DROP TRIGGER IF EXISTS accessevent_no_delete",
    "DROP TRIGGER IF EXISTS accessevent_no_update",
    "DROP TABLE patients_audit_maintenance",
]

STATEMENTS = {
    "postgresql": (POSTGRESQL_INSTALL, POSTGRESQL_REMOVE),
    "sqlite": (SQLITE_INSTALL, SQLITE_REMOVE),
}


def _run(schema_editor, which: int) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(
            f"No append-only triggers for {vendor}: add them to this migration first."
        )
    for sql in STATEMENTS[vendor][which]:
        # No parameters: the SQL goes to the database as written, % and all.
        schema_editor.execute(sql, params=None)


def install_triggers(apps, schema_editor) -> None:
    _run(schema_editor, 0)


def remove_triggers(apps, schema_editor) -> None:
    _run(schema_editor, 1)


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0004_access_event"),
    ]

    operations = [
        migrations.RunPython(install_triggers, remove_triggers),
    ]
