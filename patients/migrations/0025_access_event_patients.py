"""The patients an access event showed, when it showed several: one row each.

The audit report filters by patient through them (an event of a list's page
names its patients only in its text). Append-only in the database, as the events
are (0005): the same triggers, on PostgreSQL the same function, so that only the
project's `flush`, with a row in `patients_audit_maintenance`, can empty them.

Events written before this migration name their patients in their text only
("worklist ...: patients 3, 7, 9", "...; patients 3, 7; to users 5"): their rows
are read from it here. Their hashes (chain format 2) do not cover these rows;
events written from now on (format 3) cover theirs.
"""
from __future__ import annotations

import re

import django.db.models.deletion
from django.db import migrations, models

# The patient list in an event's text, as every writer of several patients wrote it: at
# the end, or before "; to users ..." (an escalation). Only the successful events of the
# actions that wrote such lists: a refusal's text holds the path the client sent. The
# same rule as `patients.audit.chain.text_listed`, which verifies these rows (kept here
# as it stands today, as a migration must be).
LISTED = re.compile(r"(?:^|[:;] )patients (\d+(?:, \d+)*)(?:; to users [\d, ]+)?$")
LISTING_ACTIONS = (
    "worklist",
    "results",
    "patient_list",
    "api_read",
    "view",
    "import",
    "export",
    "escalation",
    "bulk_acknowledgement",
)

POSTGRESQL_INSTALL = [
    """
    CREATE TRIGGER accesseventpatient_no_update BEFORE UPDATE ON patients_accesseventpatient
    FOR EACH ROW EXECUTE FUNCTION patients_accessevent_append_only()
    """,
    """
    CREATE TRIGGER accesseventpatient_no_delete BEFORE DELETE ON patients_accesseventpatient
    FOR EACH ROW EXECUTE FUNCTION patients_accessevent_append_only()
    """,
    """
    CREATE TRIGGER accesseventpatient_no_truncate BEFORE TRUNCATE ON patients_accesseventpatient
    FOR EACH STATEMENT EXECUTE FUNCTION patients_accessevent_append_only()
    """,
]
POSTGRESQL_REMOVE = [
    "DROP TRIGGER accesseventpatient_no_truncate ON patients_accesseventpatient",
    "DROP TRIGGER accesseventpatient_no_delete ON patients_accesseventpatient",
    "DROP TRIGGER accesseventpatient_no_update ON patients_accesseventpatient",
]
SQLITE_INSTALL = [
    """
    CREATE TRIGGER accesseventpatient_no_update BEFORE UPDATE ON patients_accesseventpatient
    BEGIN SELECT RAISE(ABORT, 'The access log is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER accesseventpatient_no_delete BEFORE DELETE ON patients_accesseventpatient
    WHEN NOT EXISTS (SELECT 1 FROM patients_audit_maintenance)
    BEGIN SELECT RAISE(ABORT, 'The access log is append-only: DELETE refused'); END
    """,
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS accesseventpatient_no_delete",
    "DROP TRIGGER IF EXISTS accesseventpatient_no_update",
]
STATEMENTS = {
    "postgresql": (POSTGRESQL_INSTALL, POSTGRESQL_REMOVE),
    "sqlite": (SQLITE_INSTALL, SQLITE_REMOVE),
}


def _run(schema_editor, which: int) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(f"No append-only triggers for {vendor}: add them here first.")
    for sql in STATEMENTS[vendor][which]:
        schema_editor.execute(sql, params=None)


def install_triggers(apps, schema_editor) -> None:
    _run(schema_editor, 0)


def remove_triggers(apps, schema_editor) -> None:
    _run(schema_editor, 1)


def listed_patients(target: str) -> list[int]:
    """The patients an event's text lists, when it lists several."""
    found = LISTED.search(target)
    ids = sorted({int(pk) for pk in found[1].split(", ")}) if found else []
    return ids if len(ids) > 1 else []


def read_rows_from_text(apps, schema_editor) -> None:
    event_model = apps.get_model("patients", "AccessEvent")
    link_model = apps.get_model("patients", "AccessEventPatient")
    patient_ids = set(apps.get_model("patients", "Patient").objects.values_list("pk", flat=True))
    several = event_model.objects.filter(
        patient__isnull=True,
        action__in=LISTING_ACTIONS,
        outcome="success",
        target__contains="patients ",
    ).values_list("pk", "target")
    batch = []
    for event_id, target in several.iterator(chunk_size=2000):
        batch += [
            link_model(event_id=event_id, patient_id=pk)
            for pk in listed_patients(target)
            if pk in patient_ids
        ]
        if len(batch) >= 5000:
            link_model.objects.bulk_create(batch)
            batch = []
    link_model.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0024_access_event_key_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="AccessEventPatient",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="listed_patients",
                        to="patients.accessevent",
                    ),
                ),
                (
                    "patient",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="patients.patient",
                    ),
                ),
            ],
            options={
                "verbose_name": "patient an access event showed",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("patient", "event"), name="access_event_patient_once"
                    )
                ],
            },
        ),
        migrations.RunPython(install_triggers, remove_triggers),
        migrations.RunPython(read_rows_from_text, migrations.RunPython.noop),
    ]
