"""The revision lifecycle per pipeline: numbers, one active revision each (the database's
rule), canaries and their traffic, and what one pipeline's steps leave alone in another."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from feedbackloop.errors import Conflict, InvalidInput, NotFound
from generation.services.requests import generation_request
from pipelines.models import ConfigRevision, ImmutableRevisionError
from pipelines.selectors import (
    canary_bucket,
    revision_active,
    revision_for_new_generation,
    revision_get,
)
from pipelines.services.registration import pipeline_register
from pipelines.services.revisions import (
    revision_approve_and_activate,
    revision_canary_shares,
    revision_canary_start,
    revision_create,
    revision_rollback_to,
)
from tests.factories import RevisionFactory
from tests.pipelines.conftest import DIFFUSERS

pytestmark = pytest.mark.django_db
S = ConfigRevision.Status


@pytest.fixture
def diffusers(db):
    return pipeline_register(slug="diffusers", name="Diffusers", parameters=DIFFUSERS).pipeline


def propose(pipeline, **params):
    active = revision_active(pipeline=pipeline)
    return revision_create(pipeline=pipeline, params={**active.params, **params}, parent=active)


def test_revisions_are_numbered_within_their_pipeline(builtin_pipeline, diffusers):
    builtin_two = propose(builtin_pipeline, crf=20)
    diffusers_two = propose(diffusers, num_frames=24)
    diffusers_three = propose(diffusers, num_frames=32)
    assert (builtin_two.number, diffusers_two.number, diffusers_three.number) == (2, 2, 3)
    assert revision_get(pipeline=diffusers, number=2) == diffusers_two
    assert revision_get(pipeline=builtin_pipeline, number=2) == builtin_two
    with pytest.raises(NotFound, match="pipeline 'builtin' has no revision 3"):
        revision_get(pipeline=builtin_pipeline, number=3)


def test_the_database_refuses_a_second_number_in_one_pipeline(builtin_pipeline, diffusers):
    with pytest.raises(IntegrityError), transaction.atomic():
        RevisionFactory(pipeline=builtin_pipeline, number=1)
    assert RevisionFactory(pipeline=diffusers, number=7).number == 7


def test_the_database_refuses_a_second_active_revision_in_one_pipeline(builtin_pipeline, diffusers):
    with pytest.raises(IntegrityError), transaction.atomic():
        RevisionFactory(pipeline=builtin_pipeline, status=S.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConfigRevision.objects.filter(pk=propose(builtin_pipeline, crf=20).pk).update(
            status=S.ACTIVE
        )
    assert ConfigRevision.objects.filter(status=S.ACTIVE).count() == 2  # one per pipeline
    assert {r.pipeline.slug for r in ConfigRevision.objects.filter(status=S.ACTIVE)} == {
        "builtin",
        "diffusers",
    }


def test_another_pipeline_may_have_its_own_active_revision(builtin_pipeline):
    other = pipeline_register(slug="other", name="Other", parameters=DIFFUSERS).pipeline
    builtin_active = revision_active(pipeline=builtin_pipeline)
    other_active = revision_active(pipeline=other)
    assert builtin_active.status == other_active.status == S.ACTIVE
    replaced = revision_approve_and_activate(revision=propose(other, num_frames=24))
    builtin_active.refresh_from_db()
    assert replaced.status == S.ACTIVE and builtin_active.status == S.ACTIVE


def test_a_revisions_pipeline_and_schema_version_never_change(builtin_pipeline, diffusers):
    revision = revision_active(pipeline=builtin_pipeline)
    with pytest.raises(ImmutableRevisionError):
        ConfigRevision.objects.filter(pk=revision.pk).update(pipeline=diffusers)
    with pytest.raises(ImmutableRevisionError):
        ConfigRevision.objects.filter(pk=revision.pk).update(
            schema_version=diffusers.versions.get()
        )
    revision.pipeline = diffusers
    with pytest.raises(ImmutableRevisionError):
        revision.save()
    revision.refresh_from_db()
    revision.schema_version = diffusers.versions.get()
    with pytest.raises(ImmutableRevisionError):
        revision.save()
    revision.refresh_from_db()
    assert revision.pipeline == builtin_pipeline
    assert revision.schema_version == builtin_pipeline.versions.get()


def test_a_parent_from_another_pipeline_is_refused(builtin_pipeline, diffusers):
    with pytest.raises(InvalidInput, match="another pipeline"):
        revision_create(
            pipeline=diffusers, params={}, parent=revision_active(pipeline=builtin_pipeline)
        )
    assert diffusers.revisions.count() == 1


def test_approve_and_activate_is_refused_while_a_canary_runs_in_that_pipeline_only(
    builtin_pipeline, diffusers
):
    canary = revision_canary_start(revision=propose(builtin_pipeline, crf=20), share=0.2)
    waiting = propose(builtin_pipeline, crf=18)
    with pytest.raises(Conflict) as exc:
        revision_approve_and_activate(revision=waiting)
    assert exc.value.code == "experiment_running" and "builtin" in exc.value.message
    waiting.refresh_from_db()
    assert waiting.status == S.PROPOSED and waiting.transitions.count() == 1
    elsewhere = revision_approve_and_activate(revision=propose(diffusers, num_frames=24))
    assert elsewhere.status == S.ACTIVE
    canary.refresh_from_db()
    assert canary.status == S.CANARY


def test_canaries_share_traffic_and_always_leave_some_for_the_active_revision(builtin_pipeline):
    first = revision_canary_start(revision=propose(builtin_pipeline, crf=20), share=0.3)
    second = revision_canary_start(revision=propose(builtin_pipeline, crf=18), share=0.3)
    third = propose(builtin_pipeline, crf=16)
    with pytest.raises(Conflict) as exc:
        revision_canary_start(revision=third, share=0.4)
    assert exc.value.code == "no_share_left"
    third.refresh_from_db()
    assert third.status == S.PROPOSED
    with pytest.raises(InvalidInput):
        revision_canary_shares(pipeline=builtin_pipeline, shares={first.pk: 0.5, second.pk: 0.5})
    with pytest.raises(InvalidInput):
        revision_canary_shares(pipeline=builtin_pipeline, shares={third.pk: 0.1})
    revision_canary_shares(pipeline=builtin_pipeline, shares={first.pk: 0.1, second.pk: 0.2})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.rollout_share, second.rollout_share) == (0.1, 0.2)


def test_new_generations_are_split_between_canaries_by_cumulative_share(builtin_pipeline):
    active = revision_active(pipeline=builtin_pipeline)
    first = revision_canary_start(revision=propose(builtin_pipeline, crf=20), share=0.25)
    second = revision_canary_start(revision=propose(builtin_pipeline, crf=18), share=0.25)
    for i in range(200):
        revision, arm = revision_for_new_generation(pipeline=builtin_pipeline, key=f"k{i}")
        bucket = canary_bucket(f"k{i}")
        expected = first if bucket < 0.25 else second if bucket < 0.5 else active
        assert revision == expected
        assert arm == ("control" if expected == active else "candidate")
    assert revision_for_new_generation(pipeline=builtin_pipeline) == (active, "control")


def test_a_canary_in_one_pipeline_leaves_the_other_pipelines_generations_alone(
    builtin_pipeline, diffusers
):
    revision_canary_start(revision=propose(builtin_pipeline, crf=20), share=0.5)
    active = revision_active(pipeline=diffusers)
    made = [
        generation_request(pipeline=diffusers, prompt=f"clip {i}", backend="remote")[0]
        for i in range(20)
    ]
    assert {g.revision_id for g in made} == {active.pk}
    assert {g.experiment_arm for g in made} == {""}
    assert all(g.params == active.params for g in made)


def test_a_rollback_in_one_pipeline_drops_only_its_own_canaries(builtin_pipeline, diffusers):
    builtin_first = revision_active(pipeline=builtin_pipeline)
    newer = revision_approve_and_activate(revision=propose(builtin_pipeline, crf=30))
    theirs = revision_canary_start(revision=propose(diffusers, num_frames=24), share=0.2)
    ours = revision_canary_start(revision=propose(builtin_pipeline, crf=20), share=0.2)
    restored = revision_rollback_to(target=builtin_first)
    ours.refresh_from_db()
    theirs.refresh_from_db()
    newer.refresh_from_db()
    assert restored.pipeline == builtin_pipeline and restored.params == builtin_first.params
    assert (ours.status, newer.status, theirs.status) == (S.ROLLED_BACK, S.ROLLED_BACK, S.CANARY)
    assert revision_rollback_to(target=builtin_first) == restored  # a repeat changes nothing
