"""Experiments: candidate revisions run as arms beside a pipeline's active revision, and decided.

An approved revision opens as an arm of its pipeline's running experiment (one is started, with
the active revision as control, when none runs): it becomes a canary on its share of new
generations (pipelines.selectors.revision_for_new_generation assigns them by a stable hash).
Each look at an experiment decides every running arm — promote, drop, or keep running — and
records an ExperimentDecision with its numbers; the decisions come from the improver's policy
(improvements.loop) or, for an arm opened by hand, from its always-valid test. A promotion makes
the arm's revision active and finishes the experiment; arms still undecided then carry over to
a new experiment against the new control. See docs/improver-statistics.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from feedbackloop.actors import person_or_none
from feedbackloop.config import ImprovementCriteria
from feedbackloop.errors import Conflict, InvalidInput
from feedbackloop.schedules import periodic_task_ensure
from improvements.criteria import criteria_resolve
from improvements.models import Experiment, ExperimentArm, ExperimentDecision
from improvements.signals import experiment_decided
from pipelines.models import ConfigRevision, Pipeline
from pipelines.selectors import revision_active
from pipelines.services.revisions import (
    revision_approve,
    revision_canary_shares,
    revision_canary_start,
    revision_drop,
    revision_promote,
)

logger = logging.getLogger(__name__)

S = ConfigRevision.Status
A = ExperimentArm.Status
EXPERIMENT_TASK_NAME = "experiments: evaluate the running canary"
# The control keeps at least this share of new generations, however many arms run.
MIN_CONTROL_SHARE = 0.2
# An approved proposal takes the share its plan gave it only while the control keeps this much
# and the arm would get at least MIN_PLANNED_SHARE; otherwise the arms split evenly.
MIN_PLANNED_CONTROL_SHARE = 0.05
MIN_PLANNED_SHARE = 0.01


@dataclass(frozen=True)
class ArmOutcome:
    """What a look decided for one arm (kind: continue, promote, drop, rollback, abort)."""

    revision_id: int
    kind: str
    reason: str
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    n_candidate: int = 0
    n_control: int = 0
    numbers: dict[str, Any] | None = None


def experiment_running(*, pipeline: Pipeline) -> Experiment | None:
    return (
        Experiment.objects.select_related("control", "pipeline")
        .filter(pipeline=pipeline, status=Experiment.Status.RUNNING)
        .first()
    )


def _experiment_for(
    pipeline: Pipeline, actor: Any, criteria: ImprovementCriteria | None = None
) -> Experiment:
    """The pipeline's running experiment, started against the active revision if none runs."""
    running = experiment_running(pipeline=pipeline)
    if running is not None and not experiment_abort_if_orphaned(experiment=running, actor=actor):
        return running
    control = revision_active(pipeline=pipeline)
    if control is None:
        raise Conflict(
            f"pipeline {pipeline.slug} has no active revision to compare with", code="no_active"
        )
    criteria = criteria or criteria_resolve().improvement_criteria
    try:
        with transaction.atomic():
            return Experiment.objects.create(
                pipeline=pipeline,
                control=control,
                alpha=criteria.alpha,
                min_effect=criteria.min_effect,
                min_ratings_per_arm=criteria.min_ratings_per_arm,
                started_by=person_or_none(actor),
            )
    except IntegrityError:
        # Another approval started it a moment ago: join that one.
        running = experiment_running(pipeline=pipeline)
        if running is None:
            raise
        return running


def default_shares(n_arms: int, canary_share: float) -> float:
    """Each arm's share when ``n_arms`` run: the configured canary share, shrunk so the control
    keeps MIN_CONTROL_SHARE."""
    return min(canary_share, (1 - MIN_CONTROL_SHARE) / max(n_arms, 1))


@transaction.atomic
def arm_open(
    *,
    revision: ConfigRevision,
    actor: Any = None,
    share: float | None = None,
    role: str = ExperimentArm.Role.CHALLENGER,
    alpha: float | None = None,
    result: dict[str, Any] | None = None,
    criteria: ImprovementCriteria | None = None,
    planned_share: float | None = None,
) -> ExperimentArm:
    """Approve ``revision`` (if still proposed) and run it as an arm of its pipeline's experiment.

    ``criteria`` are the improvement criteria in force (default: the site's, criteria_resolve);
    the library passes its own config's, so one config file is the single source.

    Refuses (Conflict) a revision that is not proposed or approved. Without ``share``, a
    ``planned_share`` (what the improver planned for it) is used as far as it fits beside the
    running arms' shares, which stay as they are: resetting them would take a running test's
    traffic away at every approval. Without either, or when nothing is left, the arms split the
    canary share evenly, the control keeping at least MIN_CONTROL_SHARE.
    """
    revision = ConfigRevision.objects.select_related("pipeline").get(pk=revision.pk)
    if revision.status not in (S.PROPOSED, S.APPROVED):
        raise Conflict(
            f"r{revision.number} is {revision.status}; only a proposed or approved revision can "
            "join an experiment",
            code="invalid_transition",
        )
    if share is not None and not 0 < share < 1:
        raise InvalidInput("an arm's share must be between 0 and 1", code="invalid_share")
    criteria = criteria or criteria_resolve().improvement_criteria
    # The test's definition is fixed when the arm opens: a later change of the criteria must not
    # change which control generations a running test counts.
    result = {**(result or {}), "control_history": criteria.control_history}
    experiment = Experiment.objects.select_for_update().get(
        pk=_experiment_for(revision.pipeline, actor, criteria).pk
    )
    running = list(experiment.arms.filter(status=A.RUNNING))
    even = default_shares(len(running) + 1, criteria.canary_share)
    if share is None and planned_share is not None and 0 < planned_share < 1:
        left = 1 - sum(a.share for a in running) - MIN_PLANNED_CONTROL_SHARE
        if left >= MIN_PLANNED_SHARE:
            share = min(planned_share, left)
    if share is None:
        share = even
        if running:  # make room: every arm takes the even share
            revision_canary_shares(
                pipeline=revision.pipeline, shares={a.revision_id: even for a in running}
            )
            experiment.arms.filter(status=A.RUNNING).update(share=even)
    if revision.status == S.PROPOSED:
        revision = revision_approve(revision=revision, actor=actor, note="approved")
    note = f"arm on {share:.0%} of new generations against r{experiment.control.number}"
    revision_canary_start(revision=revision, share=share, actor=actor, note=note)
    return ExperimentArm.objects.create(
        experiment=experiment,
        revision=revision,
        role=role,
        alpha=experiment.alpha if alpha is None else alpha,
        share=share,
        result=result or {},
    )


def revision_approve_as_arm(
    *,
    revision: ConfigRevision,
    actor: Any = None,
    share: float | None = None,
    criteria: ImprovementCriteria | None = None,
) -> ExperimentArm:
    """An admin's approval: the revision opens as an arm, with the role, test and traffic share
    the improver planned for it (kept in its evidence), or as a challenger at the criteria's
    alpha."""
    planned = (revision.evidence or {}).get("arm") or {}
    result = {k: planned[k] for k in ("mixture", "predicted") if k in planned}
    planned_share = planned.get("share")
    return arm_open(
        revision=revision,
        actor=actor,
        share=share,
        role=planned.get("role", ExperimentArm.Role.CHALLENGER),
        alpha=planned.get("alpha"),
        result=result,
        criteria=criteria,
        planned_share=float(planned_share) if isinstance(planned_share, int | float) else None,
    )


def revisions_approve_as_arms(
    *,
    revisions: list[ConfigRevision],
    actor: Any = None,
    criteria: ImprovementCriteria | None = None,
) -> tuple[list[ExperimentArm], dict[int, str]]:
    """Approve a batch of proposals at once; returns the arms opened and, per revision number,
    why one could not be (each is tried on its own, so one refusal does not stop the rest)."""
    opened: list[ExperimentArm] = []
    refused: dict[int, str] = {}
    for revision in sorted(revisions, key=lambda r: r.number):
        try:
            opened.append(
                revision_approve_as_arm(revision=revision, actor=actor, criteria=criteria)
            )
        except (Conflict, InvalidInput) as exc:
            refused[revision.number] = exc.message
    return opened, refused


def arms_set_shares(*, experiment: Experiment, shares: dict[int, float]) -> None:
    """Traffic per running arm (revision id → share); the control gets the rest."""
    with transaction.atomic():
        revision_canary_shares(pipeline=experiment.pipeline, shares=shares)
        for revision_id, share in shares.items():
            experiment.arms.filter(status=A.RUNNING, revision_id=revision_id).update(share=share)


def _record(
    experiment: Experiment, arm: ExperimentArm | None, outcome: ArmOutcome
) -> ExperimentDecision:
    return ExperimentDecision.objects.create(
        experiment=experiment,
        arm=arm,
        kind=outcome.kind,
        reason=outcome.reason[:5000],
        estimate=outcome.estimate,
        lower=outcome.lower,
        upper=outcome.upper,
        n_candidate=outcome.n_candidate,
        n_control=outcome.n_control,
        numbers=outcome.numbers or {},
    )


def _close(arm: ExperimentArm, status: str, outcome: ArmOutcome) -> None:
    arm.status = status
    arm.reason = outcome.reason[:5000]
    arm.decided_at = timezone.now()
    arm.result = {
        **arm.result,
        "decision": outcome.kind,
        "estimate": outcome.estimate,
        "lower": outcome.lower,
        "upper": outcome.upper,
        "n_candidate": outcome.n_candidate,
        "n_control": outcome.n_control,
    }
    arm.save(update_fields=["status", "reason", "decided_at", "result"])


@transaction.atomic
def experiment_apply(
    *, experiment: Experiment, outcomes: list[ArmOutcome], actor: Any = None
) -> list[ExperimentDecision]:
    """Apply one look's decisions: drop arms, promote at most one, record every decision.

    A "continue" whose numbers have not changed since the previous look is not recorded again.
    After a promotion the experiment finishes and its undecided arms carry over to a new one
    against the new control.
    """
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != Experiment.Status.RUNNING:
        return []
    arms = {a.revision_id: a for a in experiment.arms.select_related("revision")}
    recorded: list[ExperimentDecision] = []
    promoted: tuple[ExperimentArm, ArmOutcome] | None = None
    for outcome in outcomes:
        arm = arms.get(outcome.revision_id)
        if arm is None or arm.status != A.RUNNING:
            continue
        if outcome.kind == ExperimentDecision.Kind.CONTINUE:
            last = arm.decisions.order_by("-id").first()
            if (
                last is not None
                and last.kind == outcome.kind
                and (last.n_candidate, last.n_control) == (outcome.n_candidate, outcome.n_control)
            ):
                continue
            arm.result = {
                **arm.result,
                "estimate": outcome.estimate,
                "lower": outcome.lower,
                "upper": outcome.upper,
                "n_candidate": outcome.n_candidate,
                "n_control": outcome.n_control,
            }
            arm.save(update_fields=["result"])
        elif outcome.kind == ExperimentDecision.Kind.PROMOTE and promoted is None:
            promoted = (arm, outcome)
            continue
        elif outcome.kind in (ExperimentDecision.Kind.DROP, ExperimentDecision.Kind.ROLLBACK):
            revision_drop(revision=arm.revision, actor=actor, note=f"dropped: {outcome.reason}")
            status = A.DROPPED if outcome.kind == ExperimentDecision.Kind.DROP else A.ROLLED_BACK
            _close(arm, status, outcome)
            experiment_decided.send(sender=Experiment, arm=arm, outcome=outcome)
        recorded.append(_record(experiment, arm, outcome))
    if promoted is not None:
        arm, outcome = promoted
        revision_promote(revision=arm.revision, actor=actor, note=f"promoted: {outcome.reason}")
        _close(arm, A.PROMOTED, outcome)
        experiment_decided.send(sender=Experiment, arm=arm, outcome=outcome)
        recorded.append(_record(experiment, arm, outcome))
        _finish_and_carry_over(experiment, actor)
    return recorded


def _finish_and_carry_over(experiment: Experiment, actor: Any) -> None:
    """Finish after a promotion; undecided arms continue against the new control."""
    experiment.status = Experiment.Status.FINISHED
    experiment.finished_at = timezone.now()
    experiment.save(update_fields=["status", "finished_at"])
    survivors = list(
        experiment.arms.filter(status=A.RUNNING, revision__status=S.CANARY).select_related(
            "revision"
        )
    )
    if not survivors:
        return
    successor = Experiment.objects.create(
        pipeline=experiment.pipeline,
        control=revision_active(pipeline=experiment.pipeline),
        alpha=experiment.alpha,
        min_effect=experiment.min_effect,
        min_ratings_per_arm=experiment.min_ratings_per_arm,
        started_by=person_or_none(actor),
    )
    for arm in survivors:
        arm.status = A.CARRIED_OVER
        arm.decided_at = timezone.now()
        arm.reason = f"carried over to experiment #{successor.pk} against the new control"
        arm.save(update_fields=["status", "decided_at", "reason"])
        ExperimentArm.objects.create(
            experiment=successor,
            revision=arm.revision,
            role=arm.role,
            alpha=arm.alpha,
            share=arm.share,
            result={
                k: v
                for k, v in arm.result.items()
                if k in ("predicted", "mixture", "control_history")
            },
        )


@transaction.atomic
def experiment_abort_if_orphaned(*, experiment: Experiment, actor: Any = None) -> bool:
    """Finish an experiment whose control is no longer active (an admin rolled back or
    activated another revision); its arms that are no longer canaries end as aborted.

    With the control still active, arms whose revision stopped being a canary outside the
    experiment (an admin's rollback to the active revision drops every canary) end as aborted
    too, and the experiment finishes once none is left running. True if it finished.
    """
    experiment = (
        Experiment.objects.select_for_update().select_related("control").get(pk=experiment.pk)
    )
    if experiment.status != Experiment.Status.RUNNING:
        return False
    if experiment.control.status == S.ACTIVE:
        running = list(experiment.arms.filter(status=A.RUNNING).select_related("revision"))
        stranded = [arm for arm in running if arm.revision.status != S.CANARY]
        for arm in stranded:
            outcome = ArmOutcome(
                arm.revision_id,
                ExperimentDecision.Kind.ABORT,
                f"r{arm.revision.number} is no longer a canary ({arm.revision.status})",
            )
            _close(arm, A.ABORTED, outcome)
            _record(experiment, arm, outcome)
            experiment_decided.send(sender=Experiment, arm=arm, outcome=outcome)
        if not stranded or len(stranded) < len(running):
            return False
        why = "every arm was stopped outside the experiment"
    else:
        why = f"control r{experiment.control.number} is no longer active"
    for arm in experiment.arms.filter(status=A.RUNNING).select_related("revision"):
        if arm.revision.status == S.CANARY:
            revision_drop(revision=arm.revision, actor=actor, note=f"aborted: {why}")
        _close(arm, A.ABORTED, ArmOutcome(arm.revision_id, "abort", why))
        experiment_decided.send(
            sender=Experiment, arm=arm, outcome=ArmOutcome(arm.revision_id, "abort", why)
        )
    _record(experiment, None, ArmOutcome(0, ExperimentDecision.Kind.ABORT, why))
    experiment.status = Experiment.Status.FINISHED
    experiment.finished_at = timezone.now()
    experiment.result = {**experiment.result, "aborted": why}
    experiment.save(update_fields=["status", "finished_at", "result"])
    return True


def experiment_settle(*, pipeline: Pipeline, actor: Any = None) -> bool:
    """Bring the pipeline's running experiment in line after a change made outside it (an
    admin's rollback): see experiment_abort_if_orphaned. True if it finished."""
    running = experiment_running(pipeline=pipeline)
    return running is not None and experiment_abort_if_orphaned(experiment=running, actor=actor)


def experiment_current(*, pipeline: Pipeline) -> Experiment | None:
    """The pipeline's running experiment, else its most recent one."""
    experiments = Experiment.objects.select_related("control", "pipeline").filter(pipeline=pipeline)
    running = experiments.filter(status=Experiment.Status.RUNNING).first()
    return running or experiments.order_by("-started_at", "-id").first()


def experiment_schedule_ensure(*, every_minutes: int = 5) -> bool:
    """Create the periodic experiment evaluation if it does not exist; True if created."""
    return periodic_task_ensure(
        name=EXPERIMENT_TASK_NAME,
        task="improvements.tasks.experiments_evaluate_task",
        every_minutes=every_minutes,
    )
