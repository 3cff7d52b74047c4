"""Canary experiments: start, decide from ratings and guardrails, record, roll back to."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_celery_beat.models import PeriodicTask

from feedbackloop.errors import Conflict
from generation.models import ConfigRevision, Generation, RevisionTransition
from generation.services import generation_request, revision_create, revision_transition
from improvements.experiments import (
    corrected_bounds,
    experiment_evaluate,
    experiment_schedule_ensure,
    experiment_start,
    experiments_evaluate,
    revision_reject,
    revision_rollback_to,
)
from improvements.models import Experiment, ExperimentDecision
from improvements.tasks import experiments_evaluate_task
from reviews.services import IssueInput, review_create
from tests.factories import FinishedGenerationFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
S = ConfigRevision.Status

GOOD = [5, 4, 5, 5]
BAD = [2, 3, 2, 2]


@pytest.fixture
def reviewers():
    return [User.objects.create(username=f"panel{i}") for i in range(4)]


@pytest.fixture
def proposal(active_revision):
    return revision_create(
        params={**active_revision.params, "crf": 20}, parent=active_revision, rationale="sharper"
    )


def feed(experiment: Experiment, arm: str, pattern: list[int], n: int, reviewers, **gen) -> None:
    """n reviewed generations in one arm, ratings cycling through `pattern` and the panel."""
    revision = experiment.candidate if arm == "candidate" else experiment.control
    for i in range(n):
        generation = FinishedGenerationFactory(revision=revision, experiment_arm=arm, **gen)
        review_create(
            reviewer=reviewers[i % len(reviewers)],
            generation=generation,
            ratings={"overall_satisfaction": pattern[i % len(pattern)]},
        )


def test_start_makes_the_proposal_a_canary_with_the_configured_share(proposal, active_revision):
    experiment = experiment_start(revision=proposal, share=0.3)
    proposal.refresh_from_db()
    assert proposal.status == S.CANARY and proposal.rollout_share == 0.3
    assert (experiment.candidate, experiment.control, experiment.status) == (
        proposal,
        active_revision,
        "running",
    )
    assert experiment.alpha > 0 and experiment.min_ratings_per_arm > 0
    steps = list(proposal.transitions.values_list("to_status", flat=True))
    assert steps == ["proposed", "approved", "canary"]


def test_the_default_share_comes_from_the_criteria(proposal):
    assert experiment_start(revision=proposal).share == pytest.approx(0.2)


def test_new_generations_are_split_deterministically_by_the_share(proposal, active_revision):
    experiment_start(revision=proposal, share=0.3)
    made = [generation_request(prompt=f"clip {i}", enqueue=False)[0] for i in range(200)]
    candidate = [g for g in made if g.experiment_arm == "candidate"]
    assert all(g.revision_id == proposal.pk for g in candidate)
    assert all(g.revision_id == active_revision.pk for g in made if g.experiment_arm == "control")
    assert 35 <= len(candidate) <= 85  # 30% of 200 = 60, binomial sd 6.5


def test_a_second_experiment_is_refused_while_one_runs(proposal, active_revision):
    experiment_start(revision=proposal)
    other = revision_create(params={**active_revision.params, "crf": 28}, parent=active_revision)
    with pytest.raises(Conflict):
        experiment_start(revision=other)
    assert other.transitions.count() == 1  # untouched


def test_a_rejected_revision_cannot_start(proposal):
    revision_reject(revision=proposal, actor=None, note="no")
    with pytest.raises(Conflict):
        experiment_start(revision=proposal)
    assert not Experiment.objects.exists()


def test_a_clearly_better_candidate_is_promoted_and_the_control_retired(
    proposal, active_revision, reviewers
):
    experiment = experiment_start(revision=proposal)
    feed(experiment, "candidate", GOOD, 40, reviewers)
    feed(experiment, "control", BAD, 40, reviewers)
    decision = experiment_evaluate(experiment=experiment)
    assert decision.kind == "promote"
    assert decision.lower > 0 and decision.estimate == pytest.approx(2.5)
    assert (decision.n_candidate, decision.n_control) == (40, 40)
    assert decision.numbers["arms"]["candidate"]["n_reviewed"] == 40
    proposal.refresh_from_db()
    active_revision.refresh_from_db()
    experiment.refresh_from_db()
    assert (proposal.status, active_revision.status) == ("active", "retired")
    assert experiment.status == "promoted" and experiment.finished_at is not None
    assert experiment.result["decision"] == "promote" and experiment.result["lower"] > 0


def test_a_clearly_worse_candidate_is_rolled_back(proposal, active_revision, reviewers):
    experiment = experiment_start(revision=proposal)
    feed(experiment, "candidate", BAD, 40, reviewers)
    feed(experiment, "control", GOOD, 40, reviewers)
    decision = experiment_evaluate(experiment=experiment)
    assert decision.kind == "rollback" and decision.upper < 0
    proposal.refresh_from_db()
    active_revision.refresh_from_db()
    assert (proposal.status, active_revision.status) == ("rolled_back", "active")
    assert Experiment.objects.get().status == "rolled_back"


def test_an_undecided_experiment_keeps_running_and_records_each_new_look_once(proposal, reviewers):
    experiment = experiment_start(revision=proposal)
    feed(experiment, "candidate", [3, 4], 6, reviewers)
    feed(experiment, "control", [4, 3], 6, reviewers)
    first = experiment_evaluate(experiment=experiment)
    assert first.kind == "continue" and "waiting" in first.reason
    assert (first.n_candidate, first.n_control) == (6, 6)
    assert experiment_evaluate(experiment=experiment).pk == first.pk  # nothing new: no spam
    feed(experiment, "control", [4], 1, reviewers)
    second = experiment_evaluate(experiment=experiment)
    assert second.pk != first.pk and second.n_control == 7
    assert ExperimentDecision.objects.count() == 2
    proposal.refresh_from_db()
    assert proposal.status == S.CANARY
    assert Experiment.objects.get().result["n_control"] == 7


def test_a_failure_rate_guardrail_rolls_back_before_any_rating(proposal, active_revision):
    experiment = experiment_start(revision=proposal)
    for arm, revision, failed in (("candidate", proposal, 20), ("control", active_revision, 0)):
        for i in range(30):
            FinishedGenerationFactory(
                revision=revision,
                experiment_arm=arm,
                status=Generation.Status.FAILED if i < failed else Generation.Status.SUCCEEDED,
                video="" if i < failed else f"generations/{arm}-{i}.mp4",
                generation_seconds=None if i < failed else 2.0,
            )
    decision = experiment_evaluate(experiment=experiment)
    assert decision.kind == "rollback" and decision.reason.startswith("guardrail")
    assert decision.numbers["breaches"][0]["name"] == "failure_rate"
    assert decision.numbers["arms"]["candidate"]["n_failed"] == 20
    proposal.refresh_from_db()
    assert proposal.status == S.ROLLED_BACK


def test_a_slow_candidate_is_rolled_back_by_the_generation_time_guardrail(
    proposal, active_revision
):
    experiment = experiment_start(revision=proposal)
    for arm, revision, seconds in (("candidate", proposal, 5.0), ("control", active_revision, 2.0)):
        for _ in range(20):
            FinishedGenerationFactory(
                revision=revision, experiment_arm=arm, generation_seconds=seconds
            )
    decision = experiment_evaluate(experiment=experiment)
    assert decision.kind == "rollback" and "2.50x" in decision.reason
    assert decision.numbers["arms"]["candidate"]["mean_generation_seconds"] == 5.0


def test_the_experiment_is_aborted_when_its_control_is_replaced(proposal, active_revision):
    experiment = experiment_start(revision=proposal)
    other = revision_create(params={**active_revision.params, "crf": 28}, parent=active_revision)
    revision_transition(revision=other, to_status=S.APPROVED)
    revision_transition(revision=other, to_status=S.ACTIVE)
    assert experiment_evaluate(experiment=experiment) is None
    experiment.refresh_from_db()
    proposal.refresh_from_db()
    assert experiment.status == "aborted" and proposal.status == S.ROLLED_BACK


def test_the_issue_report_guardrail_counts_reviewed_generations_with_a_report(
    proposal, active_revision, reviewers
):
    experiment = experiment_start(revision=proposal)
    for arm, revision in (("candidate", proposal), ("control", active_revision)):
        for _ in range(25):
            generation = FinishedGenerationFactory(revision=revision, experiment_arm=arm)
            issues = [IssueInput("blur", 0.0, 1.0)] if arm == "candidate" else []
            review_create(
                reviewer=reviewers[0],
                generation=generation,
                ratings={"overall_satisfaction": 4},
                issues=issues,
            )
    decision = experiment_evaluate(experiment=experiment)
    assert decision.kind == "rollback"
    assert [b["name"] for b in decision.numbers["breaches"]] == ["issue_report_rate"]
    arms = decision.numbers["arms"]
    assert (
        arms["candidate"]["n_with_issue_report"] == 25
        and arms["control"]["n_with_issue_report"] == 0
    )


def test_ratings_from_before_the_canary_set_reviewer_offsets_and_widen_the_bounds(
    proposal, active_revision, reviewers
):
    harsh, kind = reviewers[0], reviewers[1]
    for _ in range(6):
        generation = FinishedGenerationFactory(revision=active_revision)
        review_create(reviewer=harsh, generation=generation, ratings={"overall_satisfaction": 2})
        review_create(reviewer=kind, generation=generation, ratings={"overall_satisfaction": 4})
    experiment = experiment_start(revision=proposal)
    offsets = experiment.result["offsets"]["by_reviewer"]
    assert offsets[str(harsh.pk)] == pytest.approx(-0.5) and offsets[str(kind.pk)] == 0.5
    assert corrected_bounds(offsets) == (0.5, 5.5)
    feed(experiment, "candidate", [2], 3, [harsh])
    feed(experiment, "control", [4], 3, [kind])
    decision = experiment_evaluate(experiment=experiment)
    # 2 − (−0.5) vs 4 − 0.5: the raw gap of −2 shrinks to −1 once offsets are removed.
    assert decision.estimate == pytest.approx(-1.0)
    assert decision.numbers["raw_means"] == {"candidate": 2.0, "control": 4.0}
    assert decision.numbers["bounds"] == [0.5, 5.5]


def test_evaluating_twice_or_with_a_stale_row_decides_once(proposal, reviewers):
    experiment = experiment_start(revision=proposal)
    feed(experiment, "candidate", GOOD, 40, reviewers)
    feed(experiment, "control", BAD, 40, reviewers)
    stale = Experiment.objects.get(pk=experiment.pk)  # still says "running" in memory
    first = experiment_evaluate(experiment=experiment)
    again = experiment_evaluate(experiment=stale)
    assert again.pk == first.pk and ExperimentDecision.objects.count() == 1
    assert experiments_evaluate() == []  # nothing running any more
    assert RevisionTransition.objects.filter(revision=proposal, to_status="active").count() == 1


def test_the_task_evaluates_the_running_experiment(proposal, reviewers):
    experiment = experiment_start(revision=proposal)
    feed(experiment, "candidate", BAD, 40, reviewers)
    feed(experiment, "control", GOOD, 40, reviewers)
    assert experiments_evaluate_task.delay().get() == ["rollback"]


def test_a_candidate_moved_by_hand_aborts_the_experiment(proposal):
    experiment = experiment_start(revision=proposal)
    revision_transition(revision=proposal, to_status=S.ROLLED_BACK, note="by hand")
    assert experiment_evaluate(experiment=experiment) is None
    assert Experiment.objects.get().status == "aborted"


def test_rollback_to_makes_a_new_revision_and_keeps_history(active_revision):
    admin = User.objects.create(username="boss", is_staff=True, is_superuser=True)
    newer = revision_create(params={**active_revision.params, "crf": 30}, parent=active_revision)
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


def test_rollback_to_an_earlier_revision_aborts_a_running_canary(active_revision):
    newer = revision_create(params={**active_revision.params, "crf": 30}, parent=active_revision)
    revision_transition(revision=newer, to_status=S.APPROVED)
    revision_transition(revision=newer, to_status=S.ACTIVE)
    proposal = revision_create(params={**newer.params, "crf": 20}, parent=newer)
    experiment = experiment_start(revision=proposal)
    restored = revision_rollback_to(target=active_revision, actor=None)
    proposal.refresh_from_db()
    experiment.refresh_from_db()
    assert proposal.status == S.ROLLED_BACK and experiment.status == "aborted"
    assert restored.status == S.ACTIVE and restored.params == active_revision.params
    assert not ConfigRevision.objects.filter(status="canary").exists()


def test_rolling_back_to_the_active_revision_just_stops_the_canary(proposal, active_revision):
    experiment = experiment_start(revision=proposal)
    assert revision_rollback_to(target=active_revision, actor=None) == active_revision
    experiment.refresh_from_db()
    proposal.refresh_from_db()
    assert experiment.status == "aborted" and proposal.status == S.ROLLED_BACK
    assert ConfigRevision.objects.count() == 2


def test_rollback_to_refuses_the_active_revision_and_never_active_ones(proposal, active_revision):
    with pytest.raises(Conflict):
        revision_rollback_to(target=active_revision, actor=None)
    with pytest.raises(Conflict):
        revision_rollback_to(target=proposal, actor=None)
    assert ConfigRevision.objects.count() == 2


def test_the_evaluation_is_scheduled_once(db):
    assert experiment_schedule_ensure(every_minutes=5) is True
    assert experiment_schedule_ensure(every_minutes=5) is False
    task = PeriodicTask.objects.get(task="improvements.tasks.experiments_evaluate_task")
    assert task.interval.every == 5 and task.queue == "improver"
