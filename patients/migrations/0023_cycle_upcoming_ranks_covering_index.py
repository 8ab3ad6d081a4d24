"""The worklist's counts read from an index alone on PostgreSQL (issue 17: 100,000 patients).

Every worklist page counts the cycles due in its range per (rank, day 1) group
(`assessment.worklist.DueCycles`: its number of pages and where each page
starts), and every page's header counts the unacknowledged ones. Both read only
the cycle's day 1, status, the window's opening and its three stored ranks, but
`cycle_upcoming_day_1` holds day 1 alone, so PostgreSQL visited the table for
every cycle due: at 100,000 patients a week holds 31,090 cycles on about 7,400
pages, and the count took 24 ms of the page's 70. This index holds those
columns as well (`INCLUDE`, with the id the header's capped count selects), so
both counts are index-only scans: 14 ms and under 1 ms there.

Ranks and the window's opening are now indexed columns, so storing a changed
rank is no longer a heap-only (HOT) update: each also writes the table's index
entries. Ranks change when a patient's data does, a few cycles at a time.

Like the trigram indexes (0019), it is not declared on the model: SQLite has no
covering index, and Django would warn on every migrate there.
`cycle_upcoming_day_1` stays (declared on the model); the planner takes this one
for the counts. `docs/architecture.md` lists the indexes outside the models.
"""

from django.db import migrations

INDEX = "cycle_upcoming_ranks"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f'CREATE INDEX "{INDEX}" ON "patients_treatmentcycle" ("scheduled_date") '
        'INCLUDE ("id", "window_opens", "rank_before_window", "rank_in_window", '
        '"rank_after_day_1") '
        "WHERE \"status\" IN ('planned', 'delayed')"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0022_patient_search_trigram_indexes_without_pending_list"),
    ]

    operations = [migrations.RunPython(create, drop)]
