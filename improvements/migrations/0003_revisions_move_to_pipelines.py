# Experiments and analysis runs point at pipelines.ConfigRevision (same table; state only).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("improvements", "0002_experiments_and_improver_settings"),
        ("pipelines", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="analysisrun",
                    name="proposed",
                    field=models.ManyToManyField(blank=True, related_name="analysis_runs", to="pipelines.configrevision"),
                ),
                migrations.AlterField(
                    model_name="experiment",
                    name="candidate",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="experiments_as_candidate", to="pipelines.configrevision"),
                ),
                migrations.AlterField(
                    model_name="experiment",
                    name="control",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="experiments_as_control", to="pipelines.configrevision"),
                ),
            ],
            database_operations=[],
        ),
    ]
