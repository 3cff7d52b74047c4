from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generation", "0005_worker_token_pipelines")]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="dispatched_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="metricsrun",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, help_text="written while measuring; stale means the worker died", null=True),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(fields=["status", "dispatched_at"], name="generation_dispatch_idx"),
        ),
    ]
