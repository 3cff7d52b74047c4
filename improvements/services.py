"""The improver: analyse all feedback, store the snapshot, and propose one revision.

`improvement_check` runs once enough new ratings have arrived: it computes the full analysis
(improvements/analysis.py: bias-corrected means, agreement, Bradley–Terry, issue rates,
metric correlations, generation times), stores it as an AnalysisRun, and asks
improvements/proposals.py for one proposal for the active revision — a targeted fix first,
else model selection or parameter tuning.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max

from feedbackloop.config import ImprovementCriteria
from generation.models import ConfigRevision
from generation.selectors import revision_active
from generation.services import revision_approve_and_activate, revision_create
from improvements.analysis import analysis_compute
from improvements.models import AnalysisRun
from improvements.proposals import Fix, fix_for_dimension, proposal_choose
from improvements.schedules import periodic_task_ensure
from reviews.models import Rating

S = ConfigRevision.Status

__all__ = [
    "Fix",
    "fix_for_dimension",
    "improvement_check",
    "improvement_log",
    "improver_schedule_ensure",
]


def improvement_check(
    *,
    min_feedback: int,
    require_approval: bool,
    criteria: ImprovementCriteria,
    trigger: str = AnalysisRun.Trigger.SCHEDULE,
    actor: AbstractBaseUser | None = None,
    seed: int | None = None,
) -> list[ConfigRevision]:
    """Run one analysis; propose (and with ``require_approval=False`` apply) a revision.

    Nothing happens below the feedback threshold: the count is of ratings newer than the
    previous analysis, so the same feedback never triggers two proposals. ``seed`` fixes the
    exploration's randomness (default: the run's number, so successive runs differ).
    """
    last = AnalysisRun.objects.order_by("-id").first()
    since = last.last_rating_id if last else 0
    newest = Rating.objects.aggregate(m=Max("id"))["m"] or 0
    new_ratings = Rating.objects.filter(id__gt=since, id__lte=newest).count()
    if new_ratings < min_feedback:
        # Below the threshold: no run is stored, so the next run still counts these.
        return []
    # The analysis takes seconds at scale: compute it before taking the improver's lock, so
    # reviewers' writes are not held up (on SQLite a write transaction blocks all writers).
    snapshot = analysis_compute(criteria=criteria)
    with transaction.atomic():
        latest = AnalysisRun.objects.select_for_update().order_by("-id").first()
        if (latest.pk if latest else None) != (last.pk if last else None):
            return []  # another run analysed this feedback meanwhile
        run = AnalysisRun(
            trigger=trigger,
            new_ratings=new_ratings,
            ratings_seen=Rating.objects.filter(id__lte=newest).count(),
            last_rating_id=newest,
            actor=actor if actor is not None and actor.is_authenticated else None,
        )
        active = revision_active()
        snapshot["active_revision"] = active.number if active else None
        run.snapshot = snapshot
        if active is None:
            run.skipped_reason = "no active revision"
            run.save()
            return []
        pending = ConfigRevision.objects.filter(
            parent=active, status__in=[S.PROPOSED, S.APPROVED, S.CANARY]
        ).exists()
        if pending:
            run.skipped_reason = f"a proposal for r{active.number} is already awaiting a decision"
            run.save()
            return []
        run_seed = seed if seed is not None else (last.pk + 1 if last else 1)
        proposal, why_not = proposal_choose(
            snapshot=snapshot, active=active, criteria=criteria, seed=run_seed
        )
        if proposal is None:
            run.skipped_reason = why_not[:255]
            snapshot["proposal"] = {"skipped": why_not}
            run.save()
            return []
        snapshot["proposal"] = {
            "kind": proposal.kind,
            "diff": proposal.diff,
            "predicted_impact": proposal.predicted_impact,
        }
        revision = revision_create(
            params=proposal.params,
            parent=active,
            source=ConfigRevision.Source.IMPROVER,
            rationale=proposal.rationale,
            evidence={"improver": proposal.kind, **proposal.evidence, "diff": proposal.diff},
            predicted_impact=proposal.predicted_impact,
            created_by=actor,
        )
        run.save()
        run.proposed.add(revision)
        if not require_approval:
            revision = revision_approve_and_activate(
                revision=revision,
                actor=actor,
                note="applied automatically (require_approval: false)",
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
    return periodic_task_ensure(
        name=IMPROVER_TASK_NAME,
        task="improvements.tasks.improver_run_task",
        every_minutes=every_minutes,
    )
