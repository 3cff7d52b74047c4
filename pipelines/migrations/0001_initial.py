# The revision models move here from the generation app. Their tables already exist: the state
# is created without touching the database (0002 renames the tables and adds the pipeline).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

STATUS_CHOICES = [
    ("proposed", "proposed"),
    ("approved", "approved"),
    ("canary", "canary"),
    ("active", "active"),
    ("retired", "retired"),
    ("rejected", "rejected"),
    ("rolled_back", "rolled back"),
]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("generation", "0003_canary_rollout_share"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Pipeline",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("slug", models.CharField(max_length=64, unique=True)),
                ("name", models.CharField(max_length=200)),
                ("description", models.TextField(blank=True)),
                ("renderer", models.CharField(blank=True, help_text="dotted path of an in-process renderer (module:function); blank when remote workers generate this pipeline's videos through the API", max_length=200)),
                ("registered_by", models.CharField(blank=True, help_text="who registered it: config, user:<name>, worker:<name>", max_length=100)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["slug"]},
        ),
        migrations.CreateModel(
            name="SchemaVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField()),
                ("parameters", models.JSONField(help_text="the JSON Schema of the parameters")),
                ("digest", models.CharField(help_text="sha256 of the canonical JSON", max_length=64)),
                ("created_by", models.CharField(blank=True, max_length=100)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("pipeline", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="versions", to="pipelines.pipeline")),
            ],
            options={
                "ordering": ["pipeline_id", "-number"],
                "constraints": [
                    models.UniqueConstraint(fields=("pipeline", "number"), name="schema_version_number"),
                    models.CheckConstraint(condition=models.Q(("number__gte", 1)), name="schema_version_positive"),
                ],
            },
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ConfigRevision",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("number", models.PositiveIntegerField(editable=False, unique=True)),
                        ("params", models.JSONField()),
                        ("model_variant", models.CharField(editable=False, max_length=32)),
                        ("source", models.CharField(choices=[("manual", "manual"), ("improver", "improver"), ("rollback", "rollback")], default="manual", max_length=16)),
                        ("status", models.CharField(choices=STATUS_CHOICES, default="proposed", max_length=16)),
                        ("rationale", models.TextField(blank=True)),
                        ("evidence", models.JSONField(blank=True, default=dict)),
                        ("predicted_impact", models.JSONField(blank=True, default=dict)),
                        ("rollout_share", models.FloatField(blank=True, help_text="while a canary: the fraction of new generations it gets", null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("created_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("parent", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="children", to="pipelines.configrevision")),
                    ],
                    options={
                        "db_table": "generation_configrevision",
                        "ordering": ["-number"],
                        "permissions": [("approve_configrevision", "Can approve, reject and roll back revisions")],
                        "constraints": [
                            models.UniqueConstraint(condition=models.Q(("status", "active")), fields=("status",), name="one_active_revision"),
                            models.CheckConstraint(condition=models.Q(("number__gte", 1)), name="revision_number_positive"),
                            models.UniqueConstraint(condition=models.Q(("status", "canary")), fields=("status",), name="one_canary_revision"),
                            models.CheckConstraint(condition=models.Q(("rollout_share__isnull", True), models.Q(("rollout_share__gt", 0), ("rollout_share__lt", 1)), _connector="OR"), name="rollout_share_between_0_and_1"),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="RevisionTransition",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("from_status", models.CharField(blank=True, max_length=16)),
                        ("to_status", models.CharField(choices=STATUS_CHOICES, max_length=16)),
                        ("note", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("actor", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                        ("revision", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="transitions", to="pipelines.configrevision")),
                    ],
                    options={"db_table": "generation_revisiontransition", "ordering": ["created_at", "id"]},
                ),
            ],
            database_operations=[],
        ),
    ]
