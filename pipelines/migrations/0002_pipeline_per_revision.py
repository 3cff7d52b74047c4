# Every existing revision joins the built-in pipeline (schema v1 from its declaration file); the
# tables take this app's name; "one active revision" becomes "one active revision per pipeline";
# the renderer-specific model_variant column goes (it lives in params). Reversible.

import json
from pathlib import Path

import django.db.models.deletion
from django.db import migrations, models

import pipelines.models

BUILTIN_DECLARATION = Path(__file__).resolve().parent.parent / "builtin" / "parameters.json"


def _digest(declaration):
    import hashlib

    text = json.dumps(declaration, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fire_deferred_checks(schema_editor):
    """PostgreSQL checks foreign keys written here at commit; an ALTER TABLE later in this
    migration's transaction would fail with "pending trigger events". Check them now."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def move_content_types(apps, schema_editor, old="generation", new="pipelines"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("configrevision", "revisiontransition"):
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, old="pipelines", new="generation")


def revisions_join_builtin(apps, schema_editor):
    ConfigRevision = apps.get_model("pipelines", "ConfigRevision")
    if not ConfigRevision.objects.exists():
        return
    Pipeline = apps.get_model("pipelines", "Pipeline")
    SchemaVersion = apps.get_model("pipelines", "SchemaVersion")
    declaration = json.loads(BUILTIN_DECLARATION.read_text(encoding="utf-8"))
    declaration = {**declaration, "type": "object", "additionalProperties": False}
    pipeline, _ = Pipeline.objects.get_or_create(
        slug="builtin",
        defaults={
            "name": "Built-in renderer",
            "description": "The deterministic procedural renderer that ships with feedbackloop.",
            "renderer": "pipelines.builtin.renderer:render_video",
            "registered_by": "migration",
        },
    )
    version, _ = SchemaVersion.objects.get_or_create(
        pipeline=pipeline,
        number=1,
        defaults={"parameters": declaration, "digest": _digest(declaration), "created_by": "migration"},
    )
    ConfigRevision.objects.filter(pipeline__isnull=True).update(
        pipeline=pipeline, schema_version=version
    )
    fire_deferred_checks(schema_editor)


def model_variant_from_params(apps, schema_editor):
    ConfigRevision = apps.get_model("pipelines", "ConfigRevision")
    for revision in ConfigRevision.objects.all():
        variant = (revision.params or {}).get("model_variant", "")
        ConfigRevision.objects.filter(pk=revision.pk).update(model_variant=variant)
    fire_deferred_checks(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0001_initial"),
        ("generation", "0004_revisions_move_to_pipelines"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="configrevision", table=None),
        migrations.AlterModelTable(name="revisiontransition", table=None),
        migrations.RunPython(move_content_types, move_content_types_back),
        migrations.AddField(
            model_name="configrevision",
            name="pipeline",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="revisions", to="pipelines.pipeline"),
        ),
        migrations.AddField(
            model_name="configrevision",
            name="schema_version",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="revisions", to="pipelines.schemaversion"),
        ),
        migrations.RunPython(revisions_join_builtin, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="configrevision", name="one_active_revision"),
        migrations.RemoveConstraint(model_name="configrevision", name="one_canary_revision"),
        migrations.AlterField(
            model_name="configrevision",
            name="number",
            field=models.PositiveIntegerField(editable=False),
        ),
        migrations.AlterField(
            model_name="configrevision",
            name="pipeline",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="revisions", to="pipelines.pipeline"),
        ),
        migrations.AlterField(
            model_name="configrevision",
            name="schema_version",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="revisions", to="pipelines.schemaversion"),
        ),
        migrations.AddConstraint(
            model_name="configrevision",
            constraint=models.UniqueConstraint(fields=("pipeline", "number"), name="revision_number_per_pipeline"),
        ),
        migrations.AddConstraint(
            model_name="configrevision",
            constraint=models.UniqueConstraint(condition=models.Q(("status", "active")), fields=("pipeline",), name="one_active_revision_per_pipeline"),
        ),
        migrations.AddIndex(
            model_name="configrevision",
            index=models.Index(fields=["pipeline", "status"], name="revision_pipeline_status"),
        ),
        # Backwards, the column comes back on rows that exist: it needs a default to be added
        # (NOT NULL) before model_variant_from_params fills it in.
        migrations.AlterField(
            model_name="configrevision",
            name="model_variant",
            field=models.CharField(default="", editable=False, max_length=32),
        ),
        migrations.RunPython(migrations.RunPython.noop, model_variant_from_params),
        migrations.RemoveField(model_name="configrevision", name="model_variant"),
        migrations.AlterModelOptions(
            name="configrevision",
            options={
                "ordering": ["pipeline_id", "-number"],
                "permissions": [("approve_configrevision", "Can approve, reject and roll back revisions")],
            },
        ),
        migrations.AlterField(
            model_name="pipeline",
            name="slug",
            field=models.CharField(max_length=64, unique=True, validators=[pipelines.models.slug_validator]),
        ),
    ]
