import pytest
from django.db import IntegrityError, transaction

from feedbackloop.errors import Conflict, InvalidInput
from generation.services.requests import generation_request
from pipelines.builtin.declaration import DEFAULT_PARAMS, builtin_params
from pipelines.declarations import InvalidParams
from pipelines.models import ConfigRevision, ImmutableRevisionError
from pipelines.selectors import canary_bucket, revision_for_new_generation
from pipelines.services.revisions import (
    revision_create,
    revision_ensure_active,
    revision_transition,
)
from tests.factories import PipelineFactory, RevisionFactory, UserFactory

S = ConfigRevision.Status
pytestmark = pytest.mark.django_db


def test_revision_params_cannot_change_after_creation(active_revision):
    active_revision.params = {**active_revision.params, "crf": 30}
    with pytest.raises(ImmutableRevisionError):
        active_revision.save()
    with pytest.raises(ImmutableRevisionError):
        ConfigRevision.objects.filter(pk=active_revision.pk).update(params={"crf": 1})
    active_revision.refresh_from_db()
    assert active_revision.params["crf"] == DEFAULT_PARAMS["crf"]


def test_database_refuses_a_second_active_revision(active_revision):
    with pytest.raises(IntegrityError), transaction.atomic():
        RevisionFactory(pipeline=active_revision.pipeline, status=S.ACTIVE)


def test_unknown_param_is_refused_naming_the_key_and_allowed_keys(builtin_pipeline):
    before = ConfigRevision.objects.count()
    with pytest.raises(InvalidParams) as exc:
        revision_create(pipeline=builtin_pipeline, params={"colour": "red"})
    message = exc.value.details["colour"][0]
    assert set(exc.value.details) == {"colour"}
    assert "unknown parameter" in message and "model_variant" in message
    assert ConfigRevision.objects.count() == before


def test_out_of_range_param_names_key_and_allowed_values():
    with pytest.raises(InvalidParams) as exc:
        builtin_params({"crf": 99, "model_variant": "ultra"})
    errors = exc.value.details
    assert set(errors) == {"crf", "model_variant"}
    assert "maximum of 51" in errors["crf"][0]
    assert "'draft', 'standard', 'hq'" in errors["model_variant"][0]


def test_odd_width_is_refused_for_yuv420p():
    with pytest.raises(InvalidParams, match="multiple of 2") as exc:
        builtin_params({"width": 641})
    assert set(exc.value.details) == {"width"}


def test_revision_numbers_are_monotonic(active_revision):
    second = revision_create(
        pipeline=active_revision.pipeline, params={"crf": 20}, parent=active_revision
    )
    third = revision_create(pipeline=active_revision.pipeline, params={"crf": 18}, parent=second)
    assert active_revision.number < second.number < third.number


def test_every_transition_is_recorded_with_actor_and_note(active_revision):
    admin = UserFactory(username="ada")
    proposal = revision_create(
        pipeline=active_revision.pipeline,
        params={"crf": 20},
        parent=active_revision,
        created_by=admin,
    )
    revision_transition(revision=proposal, to_status=S.APPROVED, actor=admin, note="looks good")
    revision_transition(revision=proposal, to_status=S.ACTIVE, actor=admin, note="go")
    steps = [(t.from_status, t.to_status, t.actor_id, t.note) for t in proposal.transitions.all()]
    assert steps[0][:2] == ("", S.PROPOSED)
    assert steps[1] == (S.PROPOSED, S.APPROVED, admin.pk, "looks good")
    assert steps[2] == (S.APPROVED, S.ACTIVE, admin.pk, "go")
    active_revision.refresh_from_db()
    assert active_revision.status == S.RETIRED
    assert active_revision.transitions.last().note == f"replaced by r{proposal.number}"
    assert ConfigRevision.objects.filter(status=S.ACTIVE).count() == 1


def test_transition_outside_the_lifecycle_is_refused(active_revision):
    proposal = revision_create(
        pipeline=active_revision.pipeline, params={"crf": 20}, parent=active_revision
    )
    with pytest.raises(Conflict, match="cannot go from proposed to active"):
        revision_transition(revision=proposal, to_status=S.ACTIVE)
    assert proposal.transitions.count() == 1


def test_ensure_active_creates_revision_one_only_once(small_params):
    pipeline = PipelineFactory()  # declared, but no revision yet
    first = revision_ensure_active(pipeline=pipeline, params=small_params)
    again = revision_ensure_active(pipeline=pipeline, params={"crf": 10})
    assert first.pk == again.pk and first.number == 1 and first.status == S.ACTIVE
    assert first.params == {**DEFAULT_PARAMS, **small_params}
    assert ConfigRevision.objects.count() == 1


def test_canary_gets_its_share_of_new_generations_deterministically(active_revision):
    pipeline = active_revision.pipeline
    candidate = revision_create(pipeline=pipeline, params={"crf": 20}, parent=active_revision)
    revision_transition(revision=candidate, to_status=S.APPROVED)
    revision_transition(revision=candidate, to_status=S.CANARY, rollout_share=0.3)
    arms = [
        generation_request(pipeline=pipeline, prompt=f"p{i}", enqueue=False)[0] for i in range(200)
    ]
    candidates = [g for g in arms if g.experiment_arm == "candidate"]
    assert all(g.revision_id == candidate.pk for g in candidates)
    assert all(g.revision_id == active_revision.pk for g in arms if g.experiment_arm == "control")
    assert 30 <= len(candidates) <= 90  # 30% of 200 (sd 6.5): outside this ~1 in 200,000
    assert all((canary_bucket(str(g.id)) < 0.3) == (g.experiment_arm == "candidate") for g in arms)
    same = [revision_for_new_generation(pipeline=pipeline, key="same") for _ in range(2)]
    assert same[0] == same[1]


def test_entering_canary_needs_a_share_and_leaving_it_clears_the_share(active_revision):
    candidate = revision_create(
        pipeline=active_revision.pipeline, params={"crf": 20}, parent=active_revision
    )
    revision_transition(revision=candidate, to_status=S.APPROVED)
    with pytest.raises(InvalidInput, match="rollout share"):
        revision_transition(revision=candidate, to_status=S.CANARY)
    revision_transition(revision=candidate, to_status=S.CANARY, rollout_share=0.2)
    promoted = revision_transition(revision=candidate, to_status=S.ACTIVE)
    assert promoted.rollout_share is None
