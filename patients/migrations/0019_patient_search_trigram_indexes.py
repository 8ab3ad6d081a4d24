"""Trigram indexes for the patient search on PostgreSQL (issue 17: 100,000 patients).

`PatientQuerySet.search` keeps a patient whose MRN, given or family name
contains every word searched, case-insensitively: Django's `icontains`, which
PostgreSQL runs as `UPPER(column::text) LIKE UPPER('%word%')`. No B-tree index
serves a pattern with a leading wildcard, so every search read and upper-cased
all three columns of every patient: at 100,000 patients a search by name took
several times as long as at 1,000. A GIN index of the trigrams of exactly those
expressions (`pg_trgm`'s `gin_trgm_ops`) lets PostgreSQL find the rows holding
the word's trigrams, one bitmap index scan per column, OR-ed; it rechecks the
`LIKE` on those rows, so what is found is unchanged. Words of fewer than three
characters have no trigram to look up and are still answered by reading the
table.

`pg_trgm` ships with PostgreSQL and is a trusted extension (PostgreSQL 13 and
newer): the owner of the database, who runs the migrations, may create it
without being a superuser, and a dump restored by an ordinary owner restores it.
SQLite (one machine, a small clinic) has no such index: nothing is done there.

The indexes are not declared on the model (a `GinIndex` there would be created
on SQLite too): `docs/architecture.md` lists them with the others.
"""

from django.db import migrations

COLUMNS = ("mrn", "given_name", "family_name")


def _index(column: str) -> str:
    return f"patient_{column}_trgm"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        # The very expression Django's icontains compares: UPPER("column"::text).
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{_index(column)}" ON "patients_patient" '
            f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{_index(column)}"')
    # The extension stays: something else may use it, and it costs nothing.


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0018_access_event_bulk_acknowledgement_action"),
    ]

    operations = [migrations.RunPython(create, drop)]
