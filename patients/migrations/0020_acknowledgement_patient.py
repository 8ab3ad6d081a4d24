"""Each acknowledgement names its patient: the cycle's line's patient, or the draw's.

A page found its patients' acknowledgements through the cycles' and the draws'
tables (an `OR` across two joins). No index serves that: at 100,000 patients every
page read all the clinic's cycles, and where the statistics said the tables were
empty every acknowledgement joined every cycle. With the patient on the row, a page
reads its own acknowledgements through one index.

The column is added empty, filled from each row's cycle or draw (history rows too,
so the change history shows whose it was); the next migration requires it (a
migration of its own: PostgreSQL does not alter a table with the fill's foreign-key
checks still pending).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill_patients(apps, schema_editor):
    cycles = apps.get_model("patients", "TreatmentCycle").objects
    draws = apps.get_model("patients", "CTCDraw").objects
    for name in ("Acknowledgement", "HistoricalAcknowledgement"):
        rows = apps.get_model("patients", name).objects
        rows.filter(cycle__isnull=False).update(
            patient_id=Subquery(
                cycles.filter(pk=OuterRef("cycle_id")).values("therapy_line__patient_id")[:1]
            )
        )
        rows.filter(draw__isnull=False).update(
            patient_id=Subquery(draws.filter(pk=OuterRef("draw_id")).values("patient_id")[:1])
        )


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0019_patient_search_trigram_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="acknowledgement",
            name="patient",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="acknowledgements",
                to="patients.patient",
            ),
        ),
        migrations.AddField(
            model_name="historicalacknowledgement",
            name="patient",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="patients.patient",
            ),
        ),
        migrations.RunPython(fill_patients, migrations.RunPython.noop, elidable=False),
    ]
