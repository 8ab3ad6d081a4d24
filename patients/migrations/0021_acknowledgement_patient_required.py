"""Every acknowledgement names its patient (filled by 0020)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0020_acknowledgement_patient"),
    ]

    operations = [
        migrations.AlterField(
            model_name="acknowledgement",
            name="patient",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="acknowledgements",
                to="patients.patient",
            ),
        ),
    ]
