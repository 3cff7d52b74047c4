"""Experiments: arms open against the active revision, share traffic, are decided and recorded;
rollbacks stop them.

What an arm's numbers say (promote, drop, continue) is the improver policy's decision
(improvements/search, tested in tests/improver_search/); here the decisions are given, and
these tests check what applying them does to revisions, arms and the experiment.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.contrib.auth import get_user_model
from django_celery_beat.models import PeriodicTask

from feedbackloop.errors import Conflict, InvalidInput
from generation.services.requests import generation_request
from improvements.criteria import criteria_resolve
from improvements.experiments import (
    MIN_CONTROL_SHARE,
    ArmOutcome,
    arm_open,
    arms_set_shares,
    experiment_abort_if_orphaned,
    experiment_apply,
    experiment_current,
    experiment_schedule_ensure,
    revisions_approve_as_arms,
)
from improvements.models import Experiment, ExperimentArm, ExperimentDecision, ImproverSettings
from improvements.policy_inputs import arm_memory
from pipelines.models import ConfigRevision, RevisionTransition
from pipelines.services.revisions import (
    revision_approve_and_activate,
    revision_create,
    revision_reject,
    revision_rollback_to,
    revision_transition,
)

pytestmark = pytest.mark.django_db
User = get_user_model()
S = ConfigRevision.Status
A = ExperimentArm.Status


def propose(parent: ConfigRevision, **changes) -> ConfigRevision:
    return revision_create(
        pipeline=parent.pipeline, params={**parent.params, **changes}, parent=parent
    )


@pytest.fixture
def proposal(active_revision):
    return revision_create(
        pipeline=active_revision.pipeline,
        params={**active_revision.params, "crf": 20},
        parent=active_revision,
        rationale="sharper",
    )


def outcome(revision: ConfigRevision, kind: str, **numbers) -> ArmOutcome:
    return ArmOutcome(revision_id=revision.pk, kind=kind, reason=f"{kind} by test", **numbers)


def test_opening_an_arm_makes_the_proposal_a_canary_with_the_given_share(proposal, active_revision):
    arm = arm_open(revision=proposal, share=0.3)
    proposal.refresh_from_db()
    assert proposal.status == S.CANARY and proposal.rollout_share == 0.3
    experiment = arm.experiment
    assert (arm.revision, arm.share, arm.status) == (proposal, 0.3, A.RUNNING)
    assert (experiment.control, experiment.pipeline, experiment.status) == (
        active_revision,
        active_revision.pipeline,
        "running",
    )
    assert experiment.alpha > 0 and experiment.min_ratings_per_arm > 0
    steps = list(proposal.transitions.values_list("to_status", flat=True))
    assert steps == ["proposed", "approved", "canary"]


def test_the_default_share_comes_from_the_criteria(proposal):
    assert arm_open(revision=proposal).share == pytest.approx(0.2)


def test_new_generations_are_split_deterministically_by_the_share(proposal, active_revision):
    arm_open(revision=proposal, share=0.3)
    made = [
        generation_request(pipeline=proposal.pipeline, prompt=f"clip {i}", enqueue=False)[0]
        for i in range(200)
    ]
    candidate = [g for g in made if g.experiment_arm == "candidate"]
    assert all(g.revision_id == proposal.pk for g in candidate)
    assert all(g.revision_id == active_revision.pk for g in made if g.experiment_arm == "control")
    assert 35 <= len(candidate) <= 85  # 30% of 200 = 60, binomial sd 6.5


def test_a_second_arm_joins_the_running_experiment_and_the_arms_split_the_traffic(
    proposal, active_revision
):
    first = arm_open(revision=proposal)
    other = propose(active_revision, crf=28)
    third = propose(active_revision, grain=0.0)
    second = arm_open(revision=other)
    last = arm_open(revision=third)
    assert first.experiment_id == second.experiment_id == last.experiment_id
    assert Experiment.objects.filter(status="running").count() == 1
    arms = list(ExperimentArm.objects.filter(status=A.RUNNING).select_related("revision"))
    assert len(arms) == 3
    assert all(a.revision.status == S.CANARY for a in arms)
    assert all(a.share == pytest.approx(a.revision.rollout_share) for a in arms)
    assert len({round(a.share, 6) for a in arms}) == 1  # an even split
    assert 1 - sum(a.share for a in arms) >= MIN_CONTROL_SHARE - 1e-9


def test_an_arm_that_leaves_no_share_for_the_control_is_refused(proposal, active_revision):
    arm_open(revision=proposal, share=0.6)
    other = propose(active_revision, crf=28)
    with pytest.raises(Conflict, match="nothing for the control"):
        arm_open(revision=other, share=0.5)
    other.refresh_from_db()
    assert other.status == S.PROPOSED and other.transitions.count() == 1
    assert ExperimentArm.objects.count() == 1


def test_arm_shares_can_be_set_together_and_the_control_keeps_the_rest(proposal, active_revision):
    first = arm_open(revision=proposal)
    second = arm_open(revision=propose(active_revision, crf=28))
    arms_set_shares(experiment=first.experiment, shares={proposal.pk: 0.1, second.revision_id: 0.5})
    proposal.refresh_from_db()
    second.revision.refresh_from_db()
    assert (proposal.rollout_share, second.revision.rollout_share) == (0.1, 0.5)
    shares = dict(ExperimentArm.objects.values_list("revision_id", "share"))
    assert shares == {proposal.pk: 0.1, second.revision_id: 0.5}


def test_a_rejected_revision_cannot_open_an_arm(proposal):
    revision_reject(revision=proposal, actor=None, note="no")
    with pytest.raises(Conflict):
        arm_open(revision=proposal)
    assert not Experiment.objects.exists()


def test_a_batch_approval_opens_each_proposal_and_names_the_refused(proposal, active_revision):
    other = propose(active_revision, crf=28)
    rejected = propose(active_revision, grain=0.0)
    revision_reject(revision=rejected)
    opened, refused = revisions_approve_as_arms(revisions=[other, rejected, proposal])
    assert [a.revision for a in opened] == [proposal, other]
    assert list(refused) == [rejected.number] and "rejected" in refused[rejected.number]


def test_a_promotion_activates_the_arm_retires_the_control_and_finishes_the_experiment(
    proposal, active_revision
):
    arm = arm_open(revision=proposal)
    decisions = experiment_apply(
        experiment=arm.experiment,
        outcomes=[
            outcome(
                proposal,
                "promote",
                estimate=1.2,
                lower=0.4,
                upper=2.0,
                n_candidate=40,
                n_control=40,
            )
        ],
    )
    assert [d.kind for d in decisions] == ["promote"]
    assert (decisions[0].lower, decisions[0].n_candidate, decisions[0].n_control) == (0.4, 40, 40)
    proposal.refresh_from_db()
    active_revision.refresh_from_db()
    arm.refresh_from_db()
    experiment = Experiment.objects.get(pk=arm.experiment_id)
    assert (proposal.status, active_revision.status) == ("active", "retired")
    assert proposal.rollout_share is None
    assert arm.status == A.PROMOTED and arm.decided_at is not None
    assert arm.result["decision"] == "promote" and arm.result["lower"] == 0.4
    assert experiment.status == "finished" and experiment.finished_at is not None


def test_undecided_arms_carry_over_to_a_new_experiment_against_the_promoted_revision(
    proposal, active_revision
):
    winner = arm_open(revision=proposal)
    other = propose(active_revision, crf=28)
    waiting = arm_open(revision=other)
    experiment_apply(
        experiment=winner.experiment,
        outcomes=[outcome(proposal, "promote"), outcome(other, "continue", n_candidate=3)],
    )
    waiting.refresh_from_db()
    other.refresh_from_db()
    successor = Experiment.objects.get(status="running")
    assert successor.pk != winner.experiment_id and successor.control == proposal
    assert waiting.status == A.CARRIED_OVER
    carried = successor.arms.get()
    assert (carried.revision, carried.status, carried.share) == (other, A.RUNNING, waiting.share)
    assert other.status == S.CANARY
    assert carried.result["control_history"] == waiting.result["control_history"]


def test_an_arm_keeps_the_control_history_in_force_when_it_opened(proposal, active_revision):
    # Which control generations a test counts is part of the test: a later change of the
    # criteria must not change it for an arm already running.
    criteria = criteria_resolve().improvement_criteria
    arm = arm_open(revision=proposal, criteria=replace(criteria, control_history=0))
    ImproverSettings.objects.create(control_history=25)
    later = arm_open(revision=propose(active_revision, crf=28))

    assert arm.result["control_history"] == 0
    assert arm_memory(arm).control_history == 0
    assert later.result["control_history"] == 25


def test_a_dropped_arm_is_rolled_back_and_the_control_stays(proposal, active_revision):
    arm = arm_open(revision=proposal)
    decisions = experiment_apply(
        experiment=arm.experiment, outcomes=[outcome(proposal, "drop", upper=-0.3)]
    )
    assert [d.kind for d in decisions] == ["drop"]
    proposal.refresh_from_db()
    active_revision.refresh_from_db()
    arm.refresh_from_db()
    assert (proposal.status, active_revision.status) == ("rolled_back", "active")
    assert arm.status == A.DROPPED and arm.reason == "drop by test"
    assert proposal.rollout_share is None


def test_a_guardrail_rollback_ends_the_arm_as_rolled_back(proposal):
    arm = arm_open(revision=proposal)
    experiment_apply(experiment=arm.experiment, outcomes=[outcome(proposal, "rollback")])
    arm.refresh_from_db()
    proposal.refresh_from_db()
    assert arm.status == A.ROLLED_BACK and proposal.status == S.ROLLED_BACK


def test_an_undecided_arm_keeps_running_and_each_new_look_is_recorded_once(proposal):
    arm = arm_open(revision=proposal)
    look = outcome(proposal, "continue", estimate=0.1, n_candidate=6, n_control=6)
    first = experiment_apply(experiment=arm.experiment, outcomes=[look])
    assert [d.kind for d in first] == ["continue"]
    assert experiment_apply(experiment=arm.experiment, outcomes=[look]) == []  # nothing new
    later = outcome(proposal, "continue", estimate=0.2, n_candidate=6, n_control=7)
    second = experiment_apply(experiment=arm.experiment, outcomes=[later])
    assert second[0].pk != first[0].pk and second[0].n_control == 7
    assert ExperimentDecision.objects.count() == 2
    proposal.refresh_from_db()
    arm.refresh_from_db()
    assert proposal.status == S.CANARY and arm.status == A.RUNNING
    assert arm.result["n_control"] == 7 and arm.result["estimate"] == 0.2


def test_applying_twice_or_with_a_stale_row_decides_once(proposal):
    arm = arm_open(revision=proposal)
    stale = Experiment.objects.get(pk=arm.experiment_id)  # still says "running" in memory
    first = experiment_apply(experiment=arm.experiment, outcomes=[outcome(proposal, "promote")])
    again = experiment_apply(experiment=stale, outcomes=[outcome(proposal, "promote")])
    assert len(first) == 1 and again == []
    assert ExperimentDecision.objects.count() == 1
    assert RevisionTransition.objects.filter(revision=proposal, to_status="active").count() == 1


def test_approve_and_activate_is_refused_while_an_arm_runs(proposal, active_revision):
    arm_open(revision=proposal)
    other = propose(active_revision, crf=28)
    with pytest.raises(Conflict) as exc:
        revision_approve_and_activate(revision=other)
    assert exc.value.code == "experiment_running"
    other.refresh_from_db()
    active_revision.refresh_from_db()
    assert other.status == S.PROPOSED and active_revision.status == S.ACTIVE


def test_the_experiment_is_aborted_when_its_control_is_replaced(proposal, active_revision):
    arm = arm_open(revision=proposal)
    other = propose(active_revision, crf=28)
    revision_transition(revision=other, to_status=S.APPROVED)
    revision_transition(revision=other, to_status=S.ACTIVE)  # by hand, around the services
    assert experiment_abort_if_orphaned(experiment=arm.experiment) is True
    experiment = Experiment.objects.get(pk=arm.experiment_id)
    proposal.refresh_from_db()
    arm.refresh_from_db()
    assert experiment.status == "finished" and "no longer active" in experiment.result["aborted"]
    assert arm.status == A.ABORTED and proposal.status == S.ROLLED_BACK
    assert experiment.decisions.last().kind == "abort"
    assert experiment_abort_if_orphaned(experiment=experiment) is False


def test_an_arm_moved_by_hand_is_aborted_and_the_others_keep_running(proposal, active_revision):
    moved = arm_open(revision=proposal)
    other = propose(active_revision, crf=28)
    kept = arm_open(revision=other)
    revision_transition(revision=proposal, to_status=S.ROLLED_BACK, note="by hand")
    assert experiment_abort_if_orphaned(experiment=moved.experiment) is False
    moved.refresh_from_db()
    kept.refresh_from_db()
    assert moved.status == A.ABORTED and "no longer a canary" in moved.reason
    assert kept.status == A.RUNNING
    assert Experiment.objects.get(pk=moved.experiment_id).status == "running"


def test_an_experiment_whose_only_arm_was_moved_by_hand_is_aborted(proposal):
    arm = arm_open(revision=proposal)
    revision_transition(revision=proposal, to_status=S.ROLLED_BACK, note="by hand")
    assert experiment_abort_if_orphaned(experiment=arm.experiment) is True
    experiment = Experiment.objects.get(pk=arm.experiment_id)
    assert experiment.status == "finished" and "aborted" in experiment.result


def test_rollback_to_makes_a_new_revision_and_keeps_history(active_revision):
    admin = User.objects.create(username="boss", is_staff=True, is_superuser=True)
    newer = propose(active_revision, crf=30)
    revision_transition(revision=newer, to_status=S.APPROVED)
    revision_transition(revision=newer, to_status=S.ACTIVE)
    before = list(RevisionTransition.objects.values_list("pk", "revision_id", "to_status"))
    restored = revision_rollback_to(target=active_revision, actor=admin)
    assert restored.number == newer.number + 1 and restored.status == S.ACTIVE
    assert (
        restored.source == "rollback"
        and restored.rationale == f"roll back to r{active_revision.number}"
    )
    assert restored.params == active_revision.params and restored.parent == newer
    assert restored.created_by == admin
    newer.refresh_from_db()
    active_revision.refresh_from_db()
    assert (newer.status, active_revision.status) == ("rolled_back", "retired")
    after = list(RevisionTransition.objects.values_list("pk", "revision_id", "to_status"))
    assert after[: len(before)] == before  # earlier steps untouched


def test_repeating_a_rollback_changes_nothing(active_revision):
    newer = propose(active_revision, crf=30)
    revision_approve_and_activate(revision=newer)
    restored = revision_rollback_to(target=active_revision)
    count = ConfigRevision.objects.count()
    assert revision_rollback_to(target=active_revision) == restored
    assert ConfigRevision.objects.count() == count


def test_rollback_to_an_earlier_revision_aborts_the_running_experiment(active_revision):
    newer = propose(active_revision, crf=30)
    revision_transition(revision=newer, to_status=S.APPROVED)
    revision_transition(revision=newer, to_status=S.ACTIVE)
    proposal = propose(newer, crf=20)
    arm = arm_open(revision=proposal)
    restored = revision_rollback_to(target=active_revision, actor=None)
    proposal.refresh_from_db()
    assert proposal.status == S.ROLLED_BACK
    assert restored.status == S.ACTIVE and restored.params == active_revision.params
    assert not ConfigRevision.objects.filter(status="canary").exists()
    assert experiment_abort_if_orphaned(experiment=arm.experiment) is True
    arm.refresh_from_db()
    assert arm.status == A.ABORTED
    assert experiment_current(pipeline=active_revision.pipeline).status == "finished"


def test_rolling_back_to_the_active_revision_just_stops_the_arms(proposal, active_revision):
    arm = arm_open(revision=proposal)
    before = ConfigRevision.objects.count()
    assert revision_rollback_to(target=active_revision, actor=None) == active_revision
    proposal.refresh_from_db()
    assert proposal.status == S.ROLLED_BACK
    assert ConfigRevision.objects.count() == before
    assert experiment_abort_if_orphaned(experiment=arm.experiment) is True
    assert Experiment.objects.get(pk=arm.experiment_id).status == "finished"


def test_rollback_to_refuses_the_active_revision_and_never_active_ones(proposal, active_revision):
    before = ConfigRevision.objects.count()
    with pytest.raises(Conflict):
        revision_rollback_to(target=active_revision, actor=None)
    with pytest.raises(Conflict):
        revision_rollback_to(target=proposal, actor=None)
    assert ConfigRevision.objects.count() == before


def test_the_evaluation_is_scheduled_once(db):
    assert experiment_schedule_ensure(every_minutes=5) is True
    assert experiment_schedule_ensure(every_minutes=5) is False
    task = PeriodicTask.objects.get(task="improvements.tasks.experiments_evaluate_task")
    assert task.interval.every == 5 and task.queue == "improver"


def test_setting_some_arms_shares_counts_the_other_arms_so_the_control_keeps_traffic(
    proposal, active_revision
):
    first = arm_open(revision=proposal, share=0.6)
    second = arm_open(revision=propose(active_revision, crf=28), share=0.2)
    with pytest.raises(InvalidInput, match="sum to less than 1"):
        arms_set_shares(experiment=first.experiment, shares={second.revision_id: 0.5})
    shares = dict(ExperimentArm.objects.values_list("revision_id", "share"))
    assert shares == {proposal.pk: 0.6, second.revision_id: 0.2}
