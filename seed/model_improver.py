"""ModelImprover: analysis, proposals, experiments, and the improvement history."""

from __future__ import annotations

from typing import Any

from feedbackloop.config import FeedbackSettings
from improvements import experiments, services
from improvements.models import AnalysisRun
from pipelines.models import ConfigRevision, Pipeline
from pipelines.selectors import revision_get
from pipelines.services.revisions import revision_reject


def revision_summary(revision: ConfigRevision) -> dict[str, Any]:
    return {
        "pipeline": revision.pipeline.slug,
        "revision": revision.number,
        "status": revision.status,
        "rationale": revision.rationale,
        "changes": {k: list(v) for k, v in revision.diff_from_parent().items()},
        "evidence": revision.evidence,
        "predicted_impact": revision.predicted_impact,
    }


class ModelImprover:
    def __init__(self, feedback: FeedbackSettings, pipeline: Pipeline) -> None:
        self.feedback = feedback
        self.pipeline = pipeline

    def check_for_improvements(self, *, actor: Any = None) -> list[ConfigRevision]:
        """One improver step: decide running arms, propose (and in library mode open) new ones.
        Returns the revisions proposed, opened or promoted."""
        return services.improvement_check(
            pipeline=self.pipeline,
            min_feedback=self.feedback.min_feedback_for_analysis,
            require_approval=self.feedback.require_approval,
            criteria=self.feedback.improvement_criteria,
            trigger=AnalysisRun.Trigger.LIBRARY,
            actor=actor,
        )

    def pending_proposals(self) -> list[dict[str, Any]]:
        """Proposals waiting for an admin (with ``require_approval: true``)."""
        return [revision_summary(r) for r in services.pending_proposals(pipeline=self.pipeline)]

    def approve(self, *numbers: int, actor: Any = None) -> dict[str, Any]:
        """Approve proposals as an admin would: each opens as an experiment arm. Returns the
        revision numbers opened and, per number, why one could not be."""
        revisions = [revision_get(pipeline=self.pipeline, number=n) for n in numbers]
        opened, refused = experiments.revisions_approve_as_arms(
            revisions=revisions, actor=actor, criteria=self.feedback.improvement_criteria
        )
        return {"opened": [a.revision.number for a in opened], "refused": refused}

    def reject(self, number: int, *, actor: Any = None, note: str = "") -> dict[str, Any]:
        revision = revision_get(pipeline=self.pipeline, number=number)
        return revision_summary(revision_reject(revision=revision, actor=actor, note=note))

    def improvement_history(self, limit: int = 100) -> list[dict[str, Any]]:
        return services.improvement_log(pipeline=self.pipeline, limit=limit)
