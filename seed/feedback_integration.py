"""FeedbackIntegration: the coordinator a VideoGenerator holds — records generations and
feedback, triggers analysis and improvement, gives history and the improvement log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from feedbackloop.config import LoopConfig
from pipelines.models import Pipeline
from seed.feedback_collector import FeedbackCollector
from seed.model_improver import ModelImprover, revision_summary


class FeedbackIntegration:
    def __init__(self, config: LoopConfig, pipeline: Pipeline) -> None:
        self.config = config
        self.pipeline = pipeline
        self.collector = FeedbackCollector(pipeline.slug)
        self.improver = ModelImprover(config.feedback, pipeline)

    def record_human_feedback(
        self,
        *,
        generation_id: str,
        ratings: Mapping[str, Any],
        comments: str = "",
        reviewer: Any = None,
        issues: Sequence[Mapping[str, Any]] | None = None,
        wait: bool = True,
    ) -> str:
        """Store a review (see FeedbackCollector.record_human_feedback); returns its id, or
        with ``wait=False`` a submission id for ``feedback_status``."""
        return self.collector.record_human_feedback(
            generation_id=generation_id,
            ratings=ratings,
            comments=comments,
            reviewer=reviewer,
            issues=issues,
            wait=wait,
        )

    def record_comparison(
        self,
        left_id: str,
        right_id: str,
        winner: str,
        *,
        dimensions: Mapping[str, str] | None = None,
        reviewer: Any = None,
    ) -> str:
        return self.collector.record_comparison(
            left_id=left_id,
            right_id=right_id,
            winner=winner,
            dimensions=dimensions,
            reviewer=reviewer,
        )

    def record_automated_metrics(
        self, generation_id: str, metrics: Mapping[str, float], *, version: int = 1
    ) -> dict[str, float]:
        return self.collector.record_automated_metrics(
            generation_id=generation_id, metrics=metrics, version=version
        )

    def feedback_status(self, submission_id: str) -> dict[str, Any]:
        return self.collector.feedback_status(submission_id)

    def get_feedback_history(self, **filters: Any) -> list[dict[str, Any]]:
        """Reviews with ratings and issues; filters: generation_id, revision, pipeline,
        dimension, reviewer, since, until, limit."""
        return self.collector.history(**filters)

    def get_feedback_summary(self) -> dict[str, Any]:
        return self.collector.summary()

    def check_for_improvements(self) -> list[dict[str, Any]]:
        return [revision_summary(r) for r in self.improver.check_for_improvements()]

    def get_improvement_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.improver.improvement_history(limit)

    def get_automated_metrics(self, generation_id: str) -> dict[str, float | None]:
        return self.collector.automated_metrics(generation_id)
