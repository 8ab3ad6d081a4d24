"""The patient search's trigram indexes (0019) without a pending list.

A GIN index, by default (`fastupdate`), keeps new entries in an unsorted
pending list that every search reads through, until a VACUUM or autovacuum's
ANALYZE (not a plain ANALYZE) merges them into the index. After the benchmark
loaded 10,000 patients, a search by name took 28 ms against 20 ms once the
table was vacuumed (bench/README.md). Patients are registered one at a time,
a few a day: inserting each one's trigrams straight into the index costs
nothing anyone waits for, and a search then never reads a pending list. The
entries already pending are merged now (`gin_clean_pending_list`, allowed to
the index's owner, who runs the migrations). SQLite has no such index.
"""

from django.db import migrations

INDEXES = ("patient_mrn_trgm", "patient_given_name_trgm", "patient_family_name_trgm")


def without_pending_list(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for index in INDEXES:
        schema_editor.execute(f'ALTER INDEX "{index}" SET (fastupdate = off)')
        schema_editor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])


def with_pending_list(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for index in INDEXES:
        schema_editor.execute(f'ALTER INDEX "{index}" RESET (fastupdate)')


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0021_acknowledgement_patient_required"),
    ]

    operations = [migrations.RunPython(without_pending_list, with_pending_list)]
