"""The move to pipelines as a migration: existing revisions, generations and experiments join
the built-in pipeline, and migrating back restores them as they were."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# The state just before revisions moved out of generation (issue 9).
BEFORE = [
    ("generation", "0003_canary_rollout_share"),
    ("improvements", "0002_experiments_and_improver_settings"),
    ("reviews", "0004_reviewer_exclusion"),
    ("pipelines", None),
]


def migrate(targets):
    """Migrate the test database to ``targets``; the historical apps of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    nodes = [target for target in targets if target[1] is not None]  # (app, None): unapplied
    return MigrationExecutor(connection).loader.project_state(nodes).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def old_world(apps) -> dict:
    """Three revisions (r1 retired, r2 active, r3 a canary), generations of each, and two
    experiments (r2 promoted over r1, r3 running against r2), made with the old models."""
    User = apps.get_model("auth", "User")
    Revision = apps.get_model("generation", "ConfigRevision")
    Generation = apps.get_model("generation", "Generation")
    Experiment = apps.get_model("improvements", "Experiment")
    Decision = apps.get_model("improvements", "ExperimentDecision")
    admin = User.objects.create(username="old-admin", is_staff=True)
    base = {"crf": 23, "model_variant": "standard", "width": 640, "height": 360}
    r1 = Revision.objects.create(
        number=1, params=base, model_variant="standard", status="retired", created_by=admin
    )
    r2 = Revision.objects.create(
        number=2,
        parent=r1,
        params={**base, "crf": 20, "model_variant": "hq"},
        model_variant="hq",
        status="active",
        rationale="sharper",
    )
    r3 = Revision.objects.create(
        number=3,
        parent=r2,
        params={**base, "model_variant": "draft"},
        model_variant="draft",
        status="canary",
        rollout_share=0.2,
    )
    generations = {
        f"{revision.number}-{i}": Generation.objects.create(
            prompt=f"old clip {revision.number}.{i}",
            revision=revision,
            params=revision.params,
            status="succeeded",
            video=f"generations/old-{revision.number}-{i}.mp4",
            experiment_arm="candidate" if revision.number == 3 else "",
        ).pk
        for revision in (r1, r2, r3)
        for i in range(2)
    }
    done = Experiment.objects.create(
        candidate=r2,
        control=r1,
        share=0.3,
        status="promoted",
        alpha=0.05,
        min_effect=0.25,
        min_ratings_per_arm=20,
        result={"decision": "promote", "lower": 0.4},
        started_by=admin,
    )
    Decision.objects.create(experiment=done, kind="promote", reason="better", lower=0.4)
    running = Experiment.objects.create(
        candidate=r3,
        control=r2,
        share=0.2,
        status="running",
        alpha=0.05,
        min_effect=0.25,
        min_ratings_per_arm=20,
    )
    return {
        "revisions": {r.pk: (r.number, r.params, r.model_variant, r.status) for r in (r1, r2, r3)},
        "generations": generations,
        "experiments": {
            done.pk: (r2.pk, r1.pk, 0.3, "promoted", done.result),
            running.pk: (r3.pk, r2.pk, 0.2, "running", {}),
        },
        "decision_of": {done.pk: "promote"},
    }


@pytest.mark.django_db(transaction=True)
def test_the_move_puts_everything_under_builtin_and_migrating_back_restores_it():
    try:
        apps = migrate(BEFORE)
        world = old_world(apps)

        apps = migrate(latest())
        Pipeline = apps.get_model("pipelines", "Pipeline")
        Revision = apps.get_model("pipelines", "ConfigRevision")
        Generation = apps.get_model("generation", "Generation")
        Experiment = apps.get_model("improvements", "Experiment")
        builtin = Pipeline.objects.get()
        assert builtin.slug == "builtin" and builtin.renderer
        [version] = builtin.versions.all()
        assert version.number == 1 and "crf" in version.parameters["properties"]
        revisions = Revision.objects.all()
        assert {r.pk for r in revisions} == set(world["revisions"])
        for revision in revisions:
            number, params, _variant, status = world["revisions"][revision.pk]
            assert revision.pipeline_id == builtin.pk
            assert revision.schema_version_id == version.pk
            assert (revision.number, revision.params, revision.status) == (number, params, status)
        assert Revision.objects.filter(pipeline=builtin, status="active").get().number == 2
        generations = Generation.objects.select_related("revision")
        assert {str(g.pk) for g in generations} == {str(pk) for pk in world["generations"].values()}
        assert all(g.revision.pipeline_id == builtin.pk for g in generations)
        experiments = Experiment.objects.all()
        assert {e.pk for e in experiments} == set(world["experiments"])
        for experiment in experiments:
            candidate, control, share, status, result = world["experiments"][experiment.pk]
            assert experiment.pipeline_id == builtin.pk and experiment.control_id == control
            [arm] = experiment.arms.all()
            assert (arm.revision_id, arm.share) == (candidate, share)
            assert arm.status == status and arm.result == result
            assert experiment.status == ("running" if status == "running" else "finished")
            for decision in experiment.decisions.all():
                assert decision.arm_id == arm.pk

        apps = migrate(BEFORE)
        Revision = apps.get_model("generation", "ConfigRevision")
        Generation = apps.get_model("generation", "Generation")
        Experiment = apps.get_model("improvements", "Experiment")
        restored = {
            r.pk: (r.number, r.params, r.model_variant, r.status) for r in Revision.objects.all()
        }
        assert restored == world["revisions"]
        generations = dict(Generation.objects.values_list("pk", "revision__number"))
        assert {str(pk): n for pk, n in generations.items()} == {
            str(pk): int(key.split("-")[0]) for key, pk in world["generations"].items()
        }
        experiments = {
            e.pk: (e.candidate_id, e.control_id, e.share, e.status, e.result)
            for e in Experiment.objects.all()
        }
        assert experiments == world["experiments"]
        assert [d.kind for d in Experiment.objects.get(status="promoted").decisions.all()] == [
            "promote"
        ]
    finally:
        migrate(latest())
    assert not MigrationExecutor(connection).migration_plan(latest())
