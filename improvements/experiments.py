"""Canary experiments: start one, decide it, and roll back to an earlier revision.

An approved revision runs as a canary: `config_for_new_generation` gives it a share of new
generations (by a stable hash of the generation id) and the active revision the rest. Every
evaluation reads both arms' overall ratings in arrival order and calls the always-valid
sequential test in `improvements.stats.sequential`; guardrails on failure rate, generation time
and issue-report rate roll a bad canary back early. Every look is recorded as an
ExperimentDecision with its numbers. See docs/improver-statistics.md, "The canary in
production".
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from itertools import chain
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, Exists, OuterRef, Q
from django.utils import timezone

from feedbackloop.errors import Conflict, InvalidInput
from generation.models import ConfigRevision, Generation, RevisionTransition
from generation.selectors import revision_active
from generation.services import revision_approve_and_activate, revision_create, revision_transition
from improvements.criteria import criteria_resolve
from improvements.models import Experiment, ExperimentDecision
from improvements.schedules import periodic_task_ensure
from improvements.stats import ArmCounts, corrected_means, guardrails, sequential_decision
from reviews.models import IssueReport, Rating, Review

logger = logging.getLogger(__name__)

S = ConfigRevision.Status
OVERALL = "overall_satisfaction"
RATING_BOUNDS = (1.0, 5.0)
# Reviewer offsets (estimated before the canary) are clipped to this size: each unit of offset
# range widens the sequential test's bounds by one rating point and costs power, and an offset
# from a handful of ratings is mostly noise anyway. Clipping keeps them predictable.
OFFSET_CLIP = 0.5
EXPERIMENT_TASK_NAME = "experiments: evaluate the running canary"


# --- start ------------------------------------------------------------------------------------


def _user_or_none(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None


def reviewer_offsets_before(started_at: Any) -> dict[str, Any]:
    """Each reviewer's overall-rating offset fitted on the ratings given before `started_at`.

    They are fixed before the canary's first rating, so subtracting them keeps the sequential
    test valid (offsets fitted on the canary's own ratings would not be predictable).
    """
    triples = (
        Rating.objects.filter(dimension__slug=OVERALL, created_at__lt=started_at)
        .order_by("id")
        .values_list("review__generation__revision_id", "review__reviewer_id", "value")
        .iterator(chunk_size=20_000)
    )
    # Streamed into one int64 array: 24 bytes a rating, not a list of a million tuples.
    rows = np.fromiter(chain.from_iterable(triples), dtype=np.int64).reshape(-1, 3)
    if len(rows) < 2:
        return {"by_reviewer": {}, "prior_ratings": int(len(rows))}
    revisions, revision_index = np.unique(rows[:, 0], return_inverse=True)
    reviewers, reviewer_index = np.unique(rows[:, 1], return_inverse=True)
    fit = corrected_means(
        revision_index,
        reviewer_index,
        rows[:, 2].astype(np.float64),
        n_revisions=len(revisions),
        n_reviewers=len(reviewers),
    )
    offsets = np.clip(np.nan_to_num(fit.reviewer_offset), -OFFSET_CLIP, OFFSET_CLIP)
    return {
        "by_reviewer": {
            str(int(r)): round(float(b), 4) for r, b in zip(reviewers, offsets, strict=True)
        },
        "prior_ratings": int(len(rows)),
    }


def experiment_start(
    *, revision: ConfigRevision, actor: AbstractBaseUser | None = None, share: float | None = None
) -> Experiment:
    """Approve `revision` (if still proposed) and run it as a canary against the active one.

    Refuses with Conflict while another experiment runs, when nothing is active, or when the
    revision is not proposed/approved.
    """
    criteria = criteria_resolve().improvement_criteria
    share = criteria.canary_share if share is None else share
    if not 0 < share < 1:
        raise InvalidInput("the canary share must be between 0 and 1", code="invalid_share")
    try:
        with transaction.atomic():
            if (
                Experiment.objects.select_for_update()
                .filter(status=Experiment.Status.RUNNING)
                .exists()
            ):
                raise Conflict("an experiment is already running", code="experiment_running")
            revision = ConfigRevision.objects.select_for_update().get(pk=revision.pk)
            if revision.status not in (S.PROPOSED, S.APPROVED):
                raise Conflict(
                    f"r{revision.number} is {revision.status}; only a proposed or approved "
                    "revision can start a canary",
                    code="invalid_transition",
                )
            control = revision_active()
            if control is None:
                raise Conflict("there is no active revision to compare with", code="no_active")
            if ConfigRevision.objects.filter(status=S.CANARY).exists():
                raise Conflict("another revision is already a canary", code="experiment_running")
            note = f"canary on {share:.0%} of new generations against r{control.number}"
            if revision.status == S.PROPOSED:
                revision = revision_transition(
                    revision=revision, to_status=S.APPROVED, actor=actor, note="approved"
                )
            revision = revision_transition(
                revision=revision, to_status=S.CANARY, actor=actor, note=note, rollout_share=share
            )
            experiment = Experiment.objects.create(
                candidate=revision,
                control=control,
                share=share,
                alpha=criteria.alpha,
                min_effect=criteria.min_effect,
                min_ratings_per_arm=criteria.min_ratings_per_arm,
                started_by=_user_or_none(actor),
            )
            experiment.result = {"offsets": reviewer_offsets_before(experiment.started_at)}
            experiment.save(update_fields=["result"])
            return experiment
    except IntegrityError as exc:
        # Two admins approved at once: the one-running-experiment constraint decided.
        raise Conflict("an experiment is already running", code="experiment_running") from exc


# --- evaluate ---------------------------------------------------------------------------------


def _arm_generations(experiment: Experiment, arm: str):
    revision_id = experiment.candidate_id if arm == "candidate" else experiment.control_id
    return Generation.objects.filter(
        experiment_arm=arm, revision_id=revision_id, created_at__gte=experiment.started_at
    )


def arm_ratings(experiment: Experiment, arm: str) -> tuple[list[int], list[int]]:
    """The arm's overall ratings and their reviewers, in arrival order (by rating id)."""
    rows = list(
        Rating.objects.filter(
            dimension__slug=OVERALL, review__generation__in=_arm_generations(experiment, arm)
        )
        .order_by("id")
        .values_list("value", "review__reviewer_id")
    )
    return [v for v, _ in rows], [r for _, r in rows]


def arm_counts(experiment: Experiment, arm: str) -> ArmCounts:
    generations = _arm_generations(experiment, arm)
    done = Generation.Status.SUCCEEDED, Generation.Status.FAILED
    totals = generations.aggregate(
        n=Count("id", filter=Q(status__in=done)),
        failed=Count("id", filter=Q(status=Generation.Status.FAILED)),
        seconds=Avg("generation_seconds", filter=Q(status=Generation.Status.SUCCEEDED)),
    )
    reviewed = generations.filter(Exists(Review.objects.filter(generation=OuterRef("pk"))))
    return ArmCounts(
        n_generations=totals["n"],
        n_failed=totals["failed"],
        mean_generation_seconds=totals["seconds"],
        n_reviewed=reviewed.count(),
        n_with_issue_report=reviewed.filter(
            Exists(IssueReport.objects.filter(generation=OuterRef("pk")))
        ).count(),
    )


def corrected_values(
    values: list[int], reviewers: list[int], offsets: dict[str, float]
) -> np.ndarray:
    """Ratings minus each reviewer's pre-canary offset (0 for reviewers new to the panel)."""
    b = np.array([offsets.get(str(r), 0.0) for r in reviewers], dtype=np.float64)
    return np.asarray(values, dtype=np.float64) - b


def corrected_bounds(offsets: dict[str, float]) -> tuple[float, float]:
    """The range a corrected rating can take: (1 − max b, 5 − min b), with b = 0 included."""
    known = [0.0, *offsets.values()]
    return RATING_BOUNDS[0] - max(known), RATING_BOUNDS[1] - min(known)


def _decision_numbers(
    candidate: ArmCounts, control: ArmCounts, bounds: tuple[float, float], breaches: list, g: Any
) -> dict[str, Any]:
    return {
        "arms": {"candidate": asdict(candidate), "control": asdict(control)},
        "bounds": list(bounds),
        "guardrail_limits": {
            "max_failure_rate_increase": g.max_failure_rate,
            "max_generation_time_ratio": g.max_generation_seconds_ratio,
            "max_issue_rate_increase": g.max_issue_rate_increase,
        },
        "breaches": [asdict(b) for b in breaches],
    }


def experiment_evaluate(*, experiment: Experiment) -> ExperimentDecision | None:
    """Look at a running experiment once: promote, roll back or continue, and record it.

    Safe to call concurrently and repeatedly: the experiment row is locked and re-read, a
    finished experiment is left alone (its last decision is returned), and a "continue" whose
    counts have not changed since the previous look is not recorded again (the previous one is
    returned). Returns None when the experiment had to be aborted instead (its candidate left
    canary by hand, or its control is no longer the active revision).
    """
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update()
            .select_related("candidate", "control")
            .get(pk=experiment.pk)
        )
        last = experiment.decisions.order_by("-created_at", "-id").first()
        if experiment.status != Experiment.Status.RUNNING:
            return last
        if experiment.candidate.status != S.CANARY:
            # Moved by hand (e.g. rolled back in the admin): nothing left to decide.
            _finish(experiment, Experiment.Status.ABORTED, {"aborted": "candidate left canary"})
            return None
        if experiment.control.status != S.ACTIVE:
            # Another revision was activated meanwhile: the control arm no longer grows, and
            # promoting would replace a revision nobody compared against.
            why = f"control r{experiment.control.number} is no longer active"
            revision_transition(
                revision=experiment.candidate, to_status=S.ROLLED_BACK, note=f"aborted: {why}"
            )
            _finish(experiment, Experiment.Status.ABORTED, {"aborted": why})
            return None

        offsets = experiment.result.get("offsets", {}).get("by_reviewer", {})
        bounds = corrected_bounds(offsets)
        c_values, c_reviewers = arm_ratings(experiment, "candidate")
        k_values, k_reviewers = arm_ratings(experiment, "control")
        c_counts, k_counts = arm_counts(experiment, "candidate"), arm_counts(experiment, "control")
        limits = criteria_resolve().improvement_criteria.guardrails
        breaches = guardrails(
            c_counts,
            k_counts,
            alpha=experiment.alpha,
            max_failure_rate_increase=limits.max_failure_rate,
            max_generation_time_ratio=limits.max_generation_seconds_ratio,
            max_issue_rate_increase=limits.max_issue_rate_increase,
        )
        test = sequential_decision(
            corrected_values(c_values, c_reviewers, offsets),
            corrected_values(k_values, k_reviewers, offsets),
            alpha=experiment.alpha,
            min_effect=experiment.min_effect,
            min_per_arm=experiment.min_ratings_per_arm,
            bounds=bounds,
        )
        kind, reason = test.kind, test.reason
        if breaches:
            kind = ExperimentDecision.Kind.ROLLBACK
            reason = "guardrail: " + "; ".join(b.reason for b in breaches)
        numbers = _decision_numbers(c_counts, k_counts, bounds, breaches, limits)
        numbers["raw_means"] = {
            "candidate": float(np.mean(c_values)) if c_values else None,
            "control": float(np.mean(k_values)) if k_values else None,
        }
        if (
            kind == ExperimentDecision.Kind.CONTINUE
            and last is not None
            and last.kind == kind
            and (last.n_candidate, last.n_control) == (test.n_candidate, test.n_control)
            and last.numbers.get("arms") == numbers["arms"]
        ):
            return last  # nothing new since the previous look

        decision = ExperimentDecision.objects.create(
            experiment=experiment,
            kind=kind,
            reason=reason,
            estimate=test.estimate,
            lower=test.lower,
            upper=test.upper,
            n_candidate=test.n_candidate,
            n_control=test.n_control,
            numbers=numbers,
        )
        summary = {
            "decision": kind,
            "reason": reason,
            "estimate": test.estimate,
            "lower": test.lower,
            "upper": test.upper,
            "n_candidate": test.n_candidate,
            "n_control": test.n_control,
            "evaluated_at": decision.created_at.isoformat(),
        }
        if kind == ExperimentDecision.Kind.PROMOTE:
            revision_transition(
                revision=experiment.candidate,
                to_status=S.ACTIVE,
                note=f"canary promoted: {reason}",
            )
            _finish(experiment, Experiment.Status.PROMOTED, summary)
        elif kind == ExperimentDecision.Kind.ROLLBACK:
            revision_transition(
                revision=experiment.candidate,
                to_status=S.ROLLED_BACK,
                note=f"canary rolled back: {reason}",
            )
            _finish(experiment, Experiment.Status.ROLLED_BACK, summary)
        else:
            experiment.result = {**experiment.result, **summary}
            experiment.save(update_fields=["result"])
        return decision


def _finish(experiment: Experiment, status: str, summary: dict[str, Any]) -> None:
    experiment.status = status
    experiment.finished_at = timezone.now()
    experiment.result = {**experiment.result, **summary}
    experiment.save(update_fields=["status", "finished_at", "result"])


def experiments_evaluate() -> list[ExperimentDecision]:
    """Evaluate the running experiment, if any (the periodic task calls this)."""
    decisions = []
    for experiment in Experiment.objects.filter(status=Experiment.Status.RUNNING):
        decision = experiment_evaluate(experiment=experiment)
        if decision is not None:
            decisions.append(decision)
    return decisions


def experiment_current() -> Experiment | None:
    """The running experiment, else the most recent one."""
    experiments = Experiment.objects.select_related("candidate", "control")
    running = experiments.filter(status=Experiment.Status.RUNNING).first()
    return running or experiments.order_by("-started_at", "-id").first()


# --- reject and roll back -------------------------------------------------------------------


def revision_reject(
    *, revision: ConfigRevision, actor: AbstractBaseUser | None, note: str = ""
) -> ConfigRevision:
    """Reject a proposed or approved revision (it never runs)."""
    return revision_transition(
        revision=revision, to_status=S.REJECTED, actor=actor, note=note or "rejected"
    )


def _abort_running(actor: AbstractBaseUser | None, why: str) -> None:
    experiment = (
        Experiment.objects.select_for_update()
        .select_related("candidate")
        .filter(status=Experiment.Status.RUNNING)
        .first()
    )
    if experiment is None:
        return
    if experiment.candidate.status == S.CANARY:
        revision_transition(
            revision=experiment.candidate, to_status=S.ROLLED_BACK, actor=actor, note=why
        )
    _finish(experiment, Experiment.Status.ABORTED, {"aborted": why})


@transaction.atomic
def revision_rollback_to(
    *, target: ConfigRevision, actor: AbstractBaseUser | None
) -> ConfigRevision:
    """Make `target`'s configuration active again, as a new revision (source rollback).

    History is never rewritten: a new revision with the target's params and the current active
    revision as parent is created, approved and activated at once (an admin's explicit rollback
    is an emergency measure, so it is not canaried); the replaced revision becomes rolled_back.
    A running canary is aborted. The target must have been active at some time; rolling back
    to the active revision itself only aborts the running canary (Conflict if there is none).
    """
    target = ConfigRevision.objects.get(pk=target.pk)
    active = revision_active()
    if active is not None and active.pk == target.pk:
        if not ConfigRevision.objects.filter(status=S.CANARY).exists():
            raise Conflict(f"r{target.number} is already active", code="already_active")
        _abort_running(actor, f"aborted: back to r{target.number} only")
        canary = ConfigRevision.objects.filter(status=S.CANARY).first()
        if canary is not None:  # a canary without an experiment row (set up by hand)
            revision_transition(
                revision=canary,
                to_status=S.ROLLED_BACK,
                actor=actor,
                note=f"rolled back to r{target.number}",
            )
        return target
    was_active = RevisionTransition.objects.filter(revision=target, to_status=S.ACTIVE).exists()
    if not was_active:
        raise Conflict(
            f"r{target.number} was never active; only an earlier active revision can be "
            "rolled back to",
            code="never_active",
        )
    rationale = f"roll back to r{target.number}"
    _abort_running(actor, f"aborted: {rationale}")
    revision = revision_create(
        params=dict(target.params),
        parent=active,
        source=ConfigRevision.Source.ROLLBACK,
        rationale=rationale,
        evidence={"rollback_to": target.number, "replaced": active.number if active else None},
        created_by=actor,
        note=rationale,
    )
    if active is not None:
        revision_transition(
            revision=active,
            to_status=S.ROLLED_BACK,
            actor=actor,
            note=f"rolled back to r{target.number} (as r{revision.number})",
        )
    return revision_approve_and_activate(revision=revision, actor=actor, note=rationale)


# --- schedule ---------------------------------------------------------------------------------


def experiment_schedule_ensure(*, every_minutes: int = 5) -> bool:
    """Create the periodic canary evaluation if it does not exist; returns True if created."""
    return periodic_task_ensure(
        name=EXPERIMENT_TASK_NAME,
        task="improvements.tasks.experiments_evaluate_task",
        every_minutes=every_minutes,
    )
