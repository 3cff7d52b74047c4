"""The improver: analyse ratings per revision and dimension and propose a targeted revision.

This is deliberately small: it looks at the active revision's weakest dimension and proposes
the parameter change that addresses it, with the numbers that triggered it. Bias correction,
agreement, pairwise rankings and canaries come on top of this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Avg, Count, Max, StdDev

from feedbackloop.config import ImprovementCriteria
from generation.models import ConfigRevision
from generation.params import PARAM_SCHEMA, params_diff
from generation.selectors import revision_active
from generation.services import revision_approve_and_activate, revision_create
from improvements.models import AnalysisRun
from reviews.models import Rating

S = ConfigRevision.Status


@dataclass(frozen=True)
class Fix:
    description: str
    changes: dict[str, Any]


def _clamp(key: str, value: float) -> float:
    spec = PARAM_SCHEMA[key]
    value = min(max(value, spec.low), spec.high)
    return int(round(value)) if spec.kind == "int" else round(value, 3)


def _step_variant(params: dict[str, Any]) -> dict[str, Any]:
    order = PARAM_SCHEMA["model_variant"].choices
    index = order.index(params["model_variant"])
    return {"model_variant": order[min(index + 1, len(order) - 1)]}


def fix_for_dimension(dimension: str, params: dict[str, Any]) -> Fix:
    """The parameter change that targets a weak dimension, given the current params."""
    if dimension == "visual_quality":
        changes = _step_variant(params)
        if changes["model_variant"] == params["model_variant"]:
            changes = {
                "sharpen": _clamp("sharpen", params["sharpen"] + 0.3),
                "grain": _clamp("grain", params["grain"] * 0.5),
            }
        return Fix("render at a higher internal scale (or sharpen and cut grain) for crisper frames", changes)
    if dimension == "temporal_coherence":
        return Fix(
            "longer transitions and a slower camera for smoother motion",
            {
                "transition_seconds": _clamp("transition_seconds", params["transition_seconds"] + 0.3),
                "camera_speed": _clamp("camera_speed", params["camera_speed"] * 0.7),
                **({"transition_style": "crossfade"} if params["transition_style"] == "cut" else {}),
            },
        )
    if dimension == "content_relevance":
        return Fix(
            "longer scenes so each key point can be read and understood",
            {"seconds_per_scene": _clamp("seconds_per_scene", params["seconds_per_scene"] + 0.5)},
        )
    if dimension == "factual_accuracy":
        return Fix(
            "larger, higher-contrast text and a lower CRF so on-screen facts stay legible",
            {
                "text_scale": _clamp("text_scale", params["text_scale"] + 0.2),
                "text_contrast": _clamp("text_contrast", params["text_contrast"] + 0.1),
                "crf": _clamp("crf", params["crf"] - 3),
            },
        )
    # overall satisfaction, or any dimension added later: better encode and a better variant
    changes = {"crf": _clamp("crf", params["crf"] - 3)}
    changes.update(_step_variant(params))
    return Fix("a better encode and render variant for overall quality", changes)


def _interval(mean: float, sd: float | None, n: int) -> list[float] | None:
    if n < 2 or sd is None:
        return None
    half = 1.96 * sd / math.sqrt(n)
    return [round(mean - half, 3), round(mean + half, 3)]


def improvement_check(
    *,
    min_feedback: int,
    require_approval: bool,
    criteria: ImprovementCriteria,
    trigger: str = AnalysisRun.Trigger.SCHEDULE,
    actor: AbstractBaseUser | None = None,
) -> list[ConfigRevision]:
    """Run one analysis; propose (and with ``require_approval=False`` apply) a revision.

    Nothing happens below the feedback threshold: the count is of ratings newer than the
    previous analysis, so the same feedback never triggers two proposals.
    """
    with transaction.atomic():
        last = AnalysisRun.objects.select_for_update().order_by("-id").first()
        since = last.last_rating_id if last else 0
        newest = Rating.objects.aggregate(m=Max("id"))["m"] or 0
        new_ratings = Rating.objects.filter(id__gt=since).count()
        run = AnalysisRun(
            trigger=trigger,
            new_ratings=new_ratings,
            ratings_seen=Rating.objects.count(),
            actor=actor if actor is not None and actor.is_authenticated else None,
        )
        if new_ratings < min_feedback:
            # Below the threshold: no snapshot is stored, so the next run still counts these.
            return []
        run.last_rating_id = newest
        active = revision_active()
        if active is None:
            run.skipped_reason = "no active revision"
            run.save()
            return []
        stats = list(
            Rating.objects.filter(review__generation__revision=active)
            .values("dimension__slug")
            .annotate(mean=Avg("value"), sd=StdDev("value", sample=True), n=Count("id"))
            .order_by("mean", "dimension__slug")
        )
        per_dimension = {
            row["dimension__slug"]: {
                "mean": round(row["mean"], 3),
                "n": row["n"],
                "ci95": _interval(row["mean"], row["sd"], row["n"]),
            }
            for row in stats
        }
        run.snapshot = {"active_revision": active.number, "dimensions": per_dimension}
        pending = ConfigRevision.objects.filter(
            parent=active, status__in=[S.PROPOSED, S.APPROVED, S.CANARY]
        ).exists()
        weak = [r for r in stats if r["mean"] < criteria.target_rating]
        if pending:
            run.skipped_reason = f"a proposal for r{active.number} is already awaiting a decision"
        elif not weak:
            run.skipped_reason = (
                f"every rated dimension of r{active.number} is at or above {criteria.target_rating}"
            )
        if run.skipped_reason:
            run.save()
            return []

        target = weak[0]
        slug = target["dimension__slug"]
        fix = fix_for_dimension(slug, active.params)
        new_params = {**active.params, **fix.changes}
        if not params_diff(active.params, new_params):
            run.skipped_reason = f"no parameter change left to try for {slug}"
            run.save()
            return []
        stat = per_dimension[slug]
        ci = f" (95% CI {stat['ci95'][0]}–{stat['ci95'][1]})" if stat["ci95"] else ""
        gap = criteria.target_rating - target["mean"]
        rationale = (
            f"{slug.replace('_', ' ')} is the weakest dimension of r{active.number}: mean "
            f"{stat['mean']} from {stat['n']} ratings{ci}, below the target of "
            f"{criteria.target_rating}. Proposed: {fix.description}."
        )
        revision = revision_create(
            params=new_params,
            parent=active,
            source=ConfigRevision.Source.IMPROVER,
            rationale=rationale,
            evidence={"dimension": slug, **stat, "all_dimensions": per_dimension},
            predicted_impact={
                "dimension": slug,
                "expected_change": round(min(gap, criteria.min_effect * 2), 3),
                "basis": "heuristic: a targeted fix is expected to close part of the gap to target",
            },
            created_by=actor,
        )
        run.save()
        run.proposed.add(revision)
        if not require_approval:
            revision = revision_approve_and_activate(
                revision=revision, actor=actor, note="applied automatically (require_approval: false)"
            )
        return [revision]


def improvement_log(limit: int = 100) -> list[dict[str, Any]]:
    """Every revision with its lifecycle, newest first: the improvement history."""
    revisions = (
        ConfigRevision.objects.select_related("parent", "created_by")
        .prefetch_related("transitions")
        .order_by("-number")[:limit]
    )
    return [
        {
            "number": r.number,
            "status": r.status,
            "source": r.source,
            "parent": r.parent.number if r.parent else None,
            "rationale": r.rationale,
            "changes": {k: list(v) for k, v in r.diff_from_parent().items()} if r.parent else {},
            "evidence": r.evidence,
            "predicted_impact": r.predicted_impact,
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
        for r in revisions
    ]


IMPROVER_TASK_NAME = "improver: analyse feedback and propose revisions"


def improver_schedule_ensure(*, every_minutes: int) -> bool:
    """Create the improver's periodic task if it does not exist; returns True if created.

    An existing schedule is left alone: an admin may have changed its interval.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=IMPROVER_TASK_NAME).exists():
        return False
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=every_minutes, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.create(
        name=IMPROVER_TASK_NAME,
        task="improvements.tasks.improver_run_task",
        interval=interval,
        queue=settings.CELERY_QUEUES_USED["improver"],
    )
    return True
