# ConfigRevision and RevisionTransition now belong to the pipelines app; only Django's model
# state changes here, the tables stay (pipelines 0002 renames them).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0003_canary_rollout_share"),
        ("pipelines", "0001_initial"),
        ("improvements", "0003_revisions_move_to_pipelines"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="generation",
                    name="revision",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="generations", to="pipelines.configrevision"),
                ),
                migrations.DeleteModel(name="RevisionTransition"),
                migrations.DeleteModel(name="ConfigRevision"),
            ],
            database_operations=[],
        ),
    ]
