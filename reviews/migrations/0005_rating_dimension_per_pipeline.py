# A rating dimension may belong to one pipeline (rated only for its videos); blank = global.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0004_reviewer_exclusion"),
        ("pipelines", "0002_pipeline_per_revision"),
    ]

    operations = [
        migrations.AddField(
            model_name="ratingdimension",
            name="pipeline",
            field=models.ForeignKey(blank=True, help_text="blank: rated for every pipeline", null=True, on_delete=django.db.models.deletion.CASCADE, related_name="rating_dimensions", to="pipelines.pipeline"),
        ),
    ]
