import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("reviews", "0005_rating_dimension_per_pipeline")]

    operations = [
        migrations.CreateModel(
            name="FeedbackSubmission",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("kind", models.CharField(choices=[("review", "review"), ("comparison", "comparison")], default="review", max_length=16)),
                ("payload", models.JSONField(help_text="the feedback as given, already checked")),
                ("status", models.CharField(choices=[("pending", "pending"), ("recorded", "recorded"), ("failed", "failed")], default="pending", max_length=16)),
                ("error", models.TextField(blank=True)),
                ("result_id", models.CharField(blank=True, help_text="the review or comparison", max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["-created_at", "id"],
                "indexes": [models.Index(fields=["status", "created_at"], name="submission_status")],
            },
        ),
    ]
