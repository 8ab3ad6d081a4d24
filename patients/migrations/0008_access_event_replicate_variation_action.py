"""A `replicate_variation` action for the access log: the staff page of the estimate.

Only the field's choices change: no SQL on either database (`record()` checks the
action, not a constraint), so the access log is neither re-checked nor rebuilt.
"""


from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0007_treatmentcycle_review_rank'),
    ]

    operations = [
        migrations.AlterField(
            model_name='accessevent',
            name='action',
            field=models.CharField(choices=[('view', 'Patient record viewed'), ('chart', 'Chart'), ('report', 'Printable report'), ('export', 'Export'), ('import', 'Import'), ('api_read', 'API read'), ('worklist', 'Worklist'), ('patient_list', 'Patient list'), ('audit_report', 'Audit report'), ('replicate_variation', 'Replicate variation'), ('login', 'Sign-in'), ('logout', 'Sign-out'), ('login_failed', 'Failed sign-in'), ('permission_denied', 'Permission denied'), ('lockout', 'Account locked out')], max_length=20),
        ),
    ]
