"""The improver's step for one pipeline: analyse, let the policy decide, apply its plan.

`improvement_check` runs once enough new ratings have arrived for a pipeline:

1. it computes the analysis snapshot (improvements/analysis.py: bias-corrected means,
   agreement, Bradley–Terry, issue rates, metric correlations, generation times) and stores it
   as an AnalysisRun — the dashboard's numbers;
2. it reads the pipeline's feedback and experiments as plain columns (policy_inputs) and asks
   the policy (improvements/search) for a plan: a decision per running arm (promote, drop,
   continue), new arms to open with their rationale and predicted impact, and traffic shares;
3. it applies the plan: decisions through improvements/experiments.py, new arms as revisions
   (source improver) — opened at once in library mode (``require_approval: false``), or left
   proposed for an admin to approve as a batch — and the traffic shares.

The policy knows no parameter name of any pipeline: it reads the pipeline's declared space.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.db import transaction
from django.db.models import Max

from feedbackloop.config import ImprovementCriteria
from feedbackloop.schedules import periodic_task_ensure
from improvements import experiments
from improvements.models import AnalysisRun, ExperimentArm, ExperimentDecision
from improvements.signals import proposal_created
from pipelines.models import ConfigRevision, Pipeline
from pipelines.selectors import revision_active, schema_current
from pipelines.services.revisions import revision_create
from reviews.models import Rating

logger = logging.getLogger(__name__)
S = ConfigRevision.Status
KIND = {"promote": "promote", "drop": "drop", "continue": "continue"}


def json_ready(value: Any) -> Any:
    """A copy safe for a JSON column: numpy scalars as Python numbers, NaN and inf as null."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _new_ratings(pipeline: Pipeline, since: int) -> tuple[int, int]:
    ratings = Rating.objects.filter(review__generation__revision__pipeline=pipeline)
    newest = ratings.aggregate(m=Max("id"))["m"] or 0
    return ratings.filter(id__gt=since, id__lte=newest).count(), newest


def _arms_have_news(pipeline: Pipeline, last: AnalysisRun | None) -> bool:
    """Arm generations finished or failed since the last step: the guardrails (failure rate,
    generation time) may decide an arm whose videos nobody could rate, e.g. because they fail."""
    from generation.models import Generation

    if last is None or experiments.experiment_running(pipeline=pipeline) is None:
        return False
    return Generation.objects.filter(
        revision__pipeline=pipeline,
        experiment_arm="candidate",
        finished_at__gt=last.created_at,
    ).exists()


def pending_proposals(*, pipeline: Pipeline) -> list[ConfigRevision]:
    """The improver's proposals for this pipeline still waiting for an admin."""
    return list(
        ConfigRevision.objects.filter(
            pipeline=pipeline, status=S.PROPOSED, source=ConfigRevision.Source.IMPROVER
        ).order_by("number")
    )


def improvement_check(
    *,
    pipeline: Pipeline,
    min_feedback: int,
    require_approval: bool,
    criteria: ImprovementCriteria,
    trigger: str = AnalysisRun.Trigger.SCHEDULE,
    actor: Any = None,
    seed: int | None = None,
) -> list[ConfigRevision]:
    """One improver step for ``pipeline``; returns the revisions it proposed, opened or promoted.

    Nothing happens below the feedback threshold: the count is of the pipeline's ratings newer
    than its previous analysis, so the same feedback never drives two steps.
    """
    # The numerics are imported here, not at the top: the site's URLconf imports this module,
    # and web and metrics workers should not load scipy and scikit-learn for nothing.
    from improvements.analysis import analysis_compute

    last = AnalysisRun.objects.filter(pipeline=pipeline).order_by("-id").first()
    new_ratings, newest = _new_ratings(pipeline, last.last_rating_id if last else 0)
    if new_ratings < min_feedback and not _arms_have_news(pipeline, last):
        return []
    active = revision_active(pipeline=pipeline)
    # The analysis takes seconds at scale: computed before the improver's lock is taken, so
    # reviewers' writes are not held up (on SQLite a write transaction blocks all writers).
    snapshot = analysis_compute(pipeline=pipeline, criteria=criteria)
    plan = None
    if active is not None:
        plan = _plan(pipeline, active, criteria, seed if seed is not None else newest)
    with transaction.atomic():
        latest = AnalysisRun.objects.select_for_update().filter(pipeline=pipeline).order_by("-id")
        latest = latest.first()
        if (latest.pk if latest else None) != (last.pk if last else None):
            return []  # another run analysed this feedback meanwhile
        from feedbackloop.actors import person_or_none

        run = AnalysisRun(
            pipeline=pipeline,
            trigger=trigger,
            new_ratings=new_ratings,
            ratings_seen=Rating.objects.filter(
                review__generation__revision__pipeline=pipeline, id__lte=newest
            ).count(),
            last_rating_id=newest,
            actor=person_or_none(actor),
        )
        snapshot["active_revision"] = active.number if active else None
        run.snapshot = snapshot
        if plan is None:
            run.skipped_reason = "no active revision"
            run.save()
            return []
        changed = _apply(
            pipeline, plan, run, require_approval=require_approval, actor=actor, criteria=criteria
        )
        run.save()
        run.proposed.add(*[r for r in changed if r.source == ConfigRevision.Source.IMPROVER])
        return changed


def _plan(pipeline: Pipeline, active: ConfigRevision, criteria: ImprovementCriteria, seed: int):
    from improvements.policy_inputs import experiment_state_for, observations_for
    from improvements.search import ImproverPolicy, ParameterSpace, Settings

    space = ParameterSpace.from_schema(schema_current(pipeline=pipeline).parameters)
    policy = ImproverPolicy(
        space,
        Settings(
            alpha=criteria.alpha,
            min_effect=criteria.min_effect,
            max_failure_rate_increase=criteria.guardrails.max_failure_rate,
            max_generation_time_ratio=criteria.guardrails.max_generation_seconds_ratio,
            max_issue_rate_increase=criteria.guardrails.max_issue_rate_increase,
            control_history=criteria.control_history,
            seed=seed,
        ),
    )
    return policy.step(observations_for(pipeline), experiment_state_for(pipeline, active=active))


def _apply(
    pipeline: Pipeline,
    plan: Any,
    run: AnalysisRun,
    *,
    require_approval: bool,
    actor: Any,
    criteria: ImprovementCriteria,
) -> list[ConfigRevision]:
    changed: list[ConfigRevision] = []
    experiment = experiments.experiment_running(pipeline=pipeline)
    if experiment is not None and experiments.experiment_abort_if_orphaned(
        experiment=experiment, actor=actor
    ):
        experiment = None
    if experiment is not None and plan.decisions:
        outcomes = [
            experiments.ArmOutcome(
                revision_id=d.revision,
                kind=KIND[d.action],
                reason=d.reason,
                estimate=d.effect.estimate if d.effect else None,
                lower=d.effect.low if d.effect else None,
                upper=d.effect.high if d.effect else None,
                n_candidate=d.n_arm,
                n_control=d.n_control,
                numbers=json_ready({"outcome": d.outcome, **dict(d.numbers)}),
            )
            for d in plan.decisions
        ]
        for decision in experiments.experiment_apply(
            experiment=experiment, outcomes=outcomes, actor=actor
        ):
            if decision.kind == ExperimentDecision.Kind.PROMOTE:
                changed.append(decision.arm.revision)
    active = revision_active(pipeline=pipeline)
    waiting = pending_proposals(pipeline=pipeline)
    opened_keys: dict[str, int] = {}
    if plan.open and waiting and require_approval:
        run.skipped_reason = (
            f"{len(waiting)} proposal(s) await an admin's approval; no new arms proposed"
        )[:255]
    elif plan.open and active is not None and active.pk == plan.active:
        if not require_approval:
            # The running arms take their new (usually smaller) shares first, so that the new
            # arms' shares fit beside them.
            _apply_traffic(pipeline, plan, {})
        for new in plan.open:
            revision = revision_create(
                pipeline=pipeline,
                params=dict(new.params),
                parent=active,
                source=ConfigRevision.Source.IMPROVER,
                rationale=new.rationale,
                evidence=json_ready(
                    {
                        **dict(new.evidence),
                        "changes": {k: list(v) for k, v in new.changes.items()},
                        "arm": {
                            "role": new.role,
                            "alpha": new.alpha,
                            "mixture": new.mixture,
                            "predicted": new.predicted.as_dict(),
                            "share": plan.traffic.get(new.key),
                        },
                    }
                ),
                predicted_impact=json_ready(new.predicted.as_dict()),
                created_by=actor,
            )
            changed.append(revision)
            if not require_approval:
                # Approved at once, as an admin would: the arm takes the share the plan gave
                # it, as far as it fits beside the running arms (`arm_open`).
                arm = experiments.revision_approve_as_arm(
                    revision=revision, actor=actor, criteria=criteria
                )
                opened_keys[new.key] = arm.revision_id
                revision.refresh_from_db()
            proposal_created.send(sender=ConfigRevision, revision=revision)
    _apply_traffic(pipeline, plan, opened_keys)
    run.snapshot["plan"] = json_ready(
        {
            "notes": list(plan.notes),
            "model": dict(plan.model),
            "decisions": [
                {
                    "revision": d.revision,
                    "action": d.action,
                    "outcome": d.outcome,
                    "reason": d.reason,
                }
                for d in plan.decisions
            ],
            "opened": [new.key for new in plan.open],
        }
    )
    return changed


def _apply_traffic(pipeline: Pipeline, plan: Any, opened: dict[str, int]) -> None:
    experiment = experiments.experiment_running(pipeline=pipeline)
    if experiment is None:
        return
    running = dict(
        experiment.arms.filter(status=ExperimentArm.Status.RUNNING).values_list(
            "revision_id", "share"
        )
    )
    shares: dict[int, float] = {}
    for key, share in plan.traffic.items():
        revision_id = opened.get(key, key) if isinstance(key, str) else key
        if revision_id in running and share and 0 < share < 1:
            shares[revision_id] = float(share)
    # Running arms the plan says nothing of keep their shares, and count.
    total = sum(shares.values()) + sum(s for r, s in running.items() if r not in shares)
    if shares and total < 1:
        experiments.arms_set_shares(experiment=experiment, shares=shares)
    elif shares:
        logger.warning("plan traffic for %s leaves no share for the control; ignored", pipeline)


def improvement_log(*, pipeline: Pipeline, limit: int = 100) -> list[dict[str, Any]]:
    """Every revision of the pipeline with its lifecycle and, for arms, its measured effect,
    newest first: the improvement history and how well each change worked."""
    revisions = (
        ConfigRevision.objects.filter(pipeline=pipeline)
        .select_related("parent", "created_by")
        .prefetch_related("transitions", "arms")
        .order_by("-number")[:limit]
    )
    log = []
    for r in revisions:
        arms = sorted(r.arms.all(), key=lambda a: a.id)
        decided = [a for a in arms if a.status not in ("running", "carried_over")]
        measured = None
        if decided and decided[-1].result.get("lower") is not None:
            last = decided[-1]
            measured = {
                "outcome": last.status,
                "estimate": last.result.get("estimate"),
                "lower": last.result.get("lower"),
                "upper": last.result.get("upper"),
                "n_arm": last.result.get("n_candidate"),
                "n_control": last.result.get("n_control"),
            }
        log.append(
            {
                "pipeline": pipeline.slug,
                "number": r.number,
                "status": r.status,
                "source": r.source,
                "parent": r.parent.number if r.parent else None,
                "rationale": r.rationale,
                "changes": {k: list(v) for k, v in r.diff_from_parent().items()}
                if r.parent
                else {},
                "evidence": r.evidence,
                "predicted_impact": r.predicted_impact,
                "measured_effect": measured,
                "created_at": r.created_at.isoformat(),
                "transitions": [
                    {
                        "from": t.from_status,
                        "to": t.to_status,
                        "at": t.created_at.isoformat(),
                        "actor": t.actor_id,
                        "note": t.note,
                    }
                    for t in r.transitions.all()
                ],
            }
        )
    return log


IMPROVER_TASK_NAME = "improver: analyse feedback and propose revisions"


def improver_schedule_ensure(*, every_minutes: int) -> bool:
    """Create the improver's periodic task if it does not exist; returns True if created.

    An existing schedule is left alone: an admin may have changed its interval.
    """
    return periodic_task_ensure(
        name=IMPROVER_TASK_NAME,
        task="improvements.tasks.improver_run_task",
        every_minutes=every_minutes,
    )
