# Experiments and analyses belong to a pipeline; an experiment has several arms (each a
# candidate revision). Each old single-canary experiment becomes an experiment with one arm.
# Reversible while every experiment has exactly one arm.

import django.db.models.deletion
from django.db import migrations, models

ARM_STATUS = {"running": "running", "promoted": "promoted", "rolled_back": "rolled_back"}


def _builtin(apps):
    Pipeline = apps.get_model("pipelines", "Pipeline")
    pipeline = Pipeline.objects.filter(slug="builtin").first()
    if pipeline is None:
        pipeline = Pipeline.objects.create(
            slug="builtin", name="Built-in renderer", registered_by="migration",
            renderer="pipelines.builtin.renderer:render_video",
        )
    return pipeline


def fire_deferred_checks(schema_editor):
    """PostgreSQL checks foreign keys written here at commit; an ALTER TABLE later in this
    migration's transaction would fail with "pending trigger events". Check them now."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def arms_from_candidates(apps, schema_editor):
    Experiment = apps.get_model("improvements", "Experiment")
    ExperimentArm = apps.get_model("improvements", "ExperimentArm")
    ExperimentDecision = apps.get_model("improvements", "ExperimentDecision")
    AnalysisRun = apps.get_model("improvements", "AnalysisRun")
    if AnalysisRun.objects.filter(pipeline__isnull=True).exists():
        AnalysisRun.objects.filter(pipeline__isnull=True).update(pipeline=_builtin(apps))
    for experiment in Experiment.objects.select_related("candidate").all():
        arm = ExperimentArm.objects.create(
            experiment=experiment,
            revision_id=experiment.candidate_id,
            status=ARM_STATUS.get(experiment.status, "aborted"),
            share=experiment.share,
            alpha=experiment.alpha,
            decided_at=experiment.finished_at,
            result=experiment.result,
        )
        ExperimentArm.objects.filter(pk=arm.pk).update(started_at=experiment.started_at)
        ExperimentDecision.objects.filter(experiment=experiment).update(arm=arm)
        experiment.pipeline_id = experiment.candidate.pipeline_id
        experiment.status = "running" if experiment.status == "running" else "finished"
        experiment.save(update_fields=["pipeline", "status"])
    fire_deferred_checks(schema_editor)


def candidates_from_arms(apps, schema_editor):
    Experiment = apps.get_model("improvements", "Experiment")
    for experiment in Experiment.objects.all():
        arms = list(experiment.arms.order_by("id"))
        if len(arms) != 1:
            raise RuntimeError(
                f"experiment {experiment.pk} has {len(arms)} arms; only one-arm experiments "
                "can go back to the single-canary schema"
            )
        arm = arms[0]
        experiment.candidate_id = arm.revision_id
        experiment.share = arm.share
        if experiment.status != "running":
            experiment.status = {"promoted": "promoted", "rolled_back": "rolled_back",
                                 "dropped": "rolled_back"}.get(arm.status, "aborted")
        experiment.save(update_fields=["candidate", "share", "status"])
    fire_deferred_checks(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("improvements", "0003_revisions_move_to_pipelines"),
        ("pipelines", "0002_pipeline_per_revision"),
    ]

    operations = [
        migrations.CreateModel(
            name="ExperimentArm",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(choices=[("challenger", "challenger"), ("explorer", "explorer")], default="challenger", max_length=16)),
                ("alpha", models.FloatField(default=0.05, help_text="the level of this arm's always-valid promotion test")),
                ("status", models.CharField(choices=[("running", "running"), ("promoted", "promoted"), ("dropped", "dropped"), ("rolled_back", "rolled back"), ("carried_over", "carried over"), ("aborted", "aborted")], default="running", max_length=16)),
                ("share", models.FloatField(help_text="the fraction of new generations it gets while running")),
                ("reason", models.TextField(blank=True, help_text="why it ended")),
                ("result", models.JSONField(blank=True, default=dict, help_text="the latest numbers")),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                ("experiment", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="arms", to="improvements.experiment")),
                ("revision", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="arms", to="pipelines.configrevision")),
            ],
            options={"ordering": ["experiment_id", "id"]},
        ),
        migrations.AddField(
            model_name="experiment",
            name="pipeline",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="experiments", to="pipelines.pipeline"),
        ),
        migrations.AddField(
            model_name="analysisrun",
            name="pipeline",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="analysis_runs", to="pipelines.pipeline"),
        ),
        migrations.AddField(
            model_name="experimentdecision",
            name="arm",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="decisions", to="improvements.experimentarm"),
        ),
        migrations.AlterField(
            model_name="experiment",
            name="status",
            field=models.CharField(choices=[("running", "running"), ("finished", "finished"), ("promoted", "promoted"), ("rolled_back", "rolled back"), ("aborted", "aborted")], default="running", max_length=16),
        ),
        migrations.AlterField(
            model_name="experimentdecision",
            name="kind",
            field=models.CharField(choices=[("continue", "continue"), ("promote", "promote"), ("drop", "drop"), ("rollback", "roll back"), ("abort", "abort")], max_length=16),
        ),
        migrations.RemoveConstraint(model_name="experiment", name="one_running_experiment"),
        migrations.RemoveConstraint(model_name="experiment", name="experiment_share_in_range"),
        migrations.RemoveConstraint(model_name="experiment", name="experiment_two_revisions"),
        migrations.AlterField(
            model_name="experiment",
            name="candidate",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="experiments_as_candidate", to="pipelines.configrevision"),
        ),
        migrations.AlterField(
            model_name="experiment",
            name="share",
            field=models.FloatField(null=True),
        ),
        migrations.RunPython(arms_from_candidates, candidates_from_arms),
        migrations.RemoveField(model_name="experiment", name="candidate"),
        migrations.RemoveField(model_name="experiment", name="share"),
        migrations.AlterField(
            model_name="experiment",
            name="status",
            field=models.CharField(choices=[("running", "running"), ("finished", "finished")], default="running", max_length=16),
        ),
        migrations.AlterField(
            model_name="experiment",
            name="pipeline",
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="experiments", to="pipelines.pipeline"),
        ),
        migrations.AlterField(
            model_name="analysisrun",
            name="pipeline",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="analysis_runs", to="pipelines.pipeline"),
        ),
        migrations.AddConstraint(
            model_name="experiment",
            constraint=models.UniqueConstraint(condition=models.Q(("status", "running")), fields=("pipeline",), name="one_running_experiment_per_pipeline"),
        ),
        migrations.AddConstraint(
            model_name="experiment",
            constraint=models.CheckConstraint(condition=models.Q(("alpha__gt", 0), ("alpha__lt", 0.5)), name="experiment_alpha_in_range"),
        ),
        migrations.AddConstraint(
            model_name="experimentarm",
            constraint=models.UniqueConstraint(fields=("experiment", "revision"), name="arm_once_per_experiment"),
        ),
        migrations.AddConstraint(
            model_name="experimentarm",
            constraint=models.UniqueConstraint(condition=models.Q(("status", "running")), fields=("revision",), name="revision_runs_in_one_arm"),
        ),
        migrations.AddConstraint(
            model_name="experimentarm",
            constraint=models.CheckConstraint(condition=models.Q(("share__gt", 0), ("share__lt", 1)), name="arm_share_in_range"),
        ),
        migrations.AddIndex(
            model_name="analysisrun",
            index=models.Index(fields=["pipeline", "-id"], name="analysis_run_pipeline"),
        ),
    ]
