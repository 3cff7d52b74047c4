"""FeedbackIntegration: the coordinator the seed's VideoGenerator holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from feedbackloop.config import LoopConfig
from improvements.facade import ModelImprover
from reviews.facade import FeedbackCollector


class FeedbackIntegration:
    def __init__(self, config: LoopConfig) -> None:
        self.config = config
        self.collector = FeedbackCollector()
        self.improver = ModelImprover(config.feedback)

    def record_human_feedback(
        self, *, generation_id: str, ratings: Mapping[str, Any], comments: str = "", **extra: Any
    ) -> str:
        """Store a reviewer's ratings and comments; returns the review id."""
        review = self.collector.record_human_feedback(
            generation_id=generation_id, ratings=ratings, comments=comments, **extra
        )
        return str(review.id)

    def get_feedback_summary(self) -> dict[str, Any]:
        return self.collector.summary()

    def check_for_improvements(self) -> list[dict[str, Any]]:
        revisions = self.improver.check_for_improvements()
        return [
            {
                "revision": r.number,
                "status": r.status,
                "rationale": r.rationale,
                "changes": {k: list(v) for k, v in r.diff_from_parent().items()},
                "evidence": r.evidence,
                "predicted_impact": r.predicted_impact,
            }
            for r in revisions
        ]

    def get_improvement_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.improver.improvement_history(limit)

    def get_automated_metrics(self, generation_id: str) -> dict[str, float | None]:
        return self.collector.automated_metrics(generation_id)
