"""FeedbackCollector: stores automated metrics and human feedback, and reads them back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError

from feedbackloop.errors import NotFound
from generation.models import MetricValue
from generation.selectors import generation_get
from generation.services.metrics import worker_metrics_store
from reviews import selectors, services
from reviews.models import FeedbackSubmission
from reviews.reviewers import reviewer_named
from reviews.submissions import feedback_submit


def _generation(generation_id: Any):
    generation = generation_get(generation_id=generation_id)
    if generation is None:
        raise NotFound(f"no generation with id {generation_id!r}", code="unknown_generation")
    return generation


class FeedbackCollector:
    def __init__(self, pipeline: str | None = None) -> None:
        self.pipeline = pipeline

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
        """Record a review: ratings 1-5 per dimension, comments, issue reports as dicts
        (category, start_s, end_s, optional severity and note). ``reviewer`` is a user or a
        name (an account is made for a new name); none means the shared "library" account.
        With ``wait=False`` the feedback is checked now, written by a worker, and the returned
        id is a submission to look up with ``feedback_status``; otherwise it is the review id.
        """
        if not wait:
            payload = {
                "generation_id": str(generation_id),
                "ratings": dict(ratings) if isinstance(ratings, Mapping) else ratings,
                "comments": comments,
                "issues": list(issues or ()),
                "reviewer": reviewer if isinstance(reviewer, str) or reviewer is None else None,
            }
            if reviewer is not None and not isinstance(reviewer, str):
                payload["reviewer"] = reviewer.get_username()
            return str(feedback_submit(kind=FeedbackSubmission.Kind.REVIEW, payload=payload).pk)
        review = services.review_create(
            reviewer=reviewer_named(reviewer),
            generation=_generation(generation_id),
            ratings=ratings,
            comments=comments,
            issues=issues or (),
        )
        return str(review.id)

    def record_comparison(
        self,
        *,
        left_id: str,
        right_id: str,
        winner: str,
        dimensions: Mapping[str, str] | None = None,
        reviewer: Any = None,
    ) -> str:
        """A blind side-by-side judgement: winner is "left", "right" or "tie"; ``dimensions``
        optionally gives a verdict per rating dimension. Returns the comparison id."""
        comparison = services.comparison_record(
            reviewer=reviewer_named(reviewer),
            left=_generation(left_id),
            right=_generation(right_id),
            winner=winner,
            dimension_winners=dimensions,
        )
        return str(comparison.id)

    def feedback_status(self, submission_id: str) -> dict[str, Any]:
        """Where an asynchronous submission stands: pending, recorded (with the review or
        comparison id) or failed (with the reason)."""
        try:
            submission = FeedbackSubmission.objects.filter(pk=submission_id).first()
        except ValidationError:  # not even a UUID
            submission = None
        if submission is None:
            raise NotFound(f"no feedback submission {submission_id!r}", code="unknown_submission")
        return {
            "id": str(submission.pk),
            "kind": submission.kind,
            "status": submission.status,
            "result_id": submission.result_id or None,
            "error": submission.error or None,
        }

    def record_automated_metrics(
        self, *, generation_id: str, metrics: Mapping[str, float], version: int = 1
    ) -> dict[str, float]:
        """Store metrics measured outside (e.g. a worker's own quality model) beside the
        server's: they never overwrite them. Returns what was stored."""
        rows = worker_metrics_store(
            generation=_generation(generation_id), metrics=dict(metrics), version=version
        )
        return {row.name: row.value for row in rows}

    def automated_metrics(self, generation_id: str) -> dict[str, float | None]:
        rows = MetricValue.objects.filter(generation_id=generation_id).order_by("source", "name")
        return {
            row.name if row.source == "server" else f"{row.source}:{row.name}": row.value
            for row in rows
        }

    def history(
        self,
        *,
        generation_id: str | None = None,
        revision: int | None = None,
        pipeline: str | None = None,
        dimension: str | None = None,
        reviewer: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        return selectors.feedback_history(
            pipeline=pipeline or self.pipeline,
            generation_id=generation_id,
            revision=revision,
            dimension=dimension,
            reviewer=reviewer,
            since=since,
            until=until,
            limit=limit,
        )

    def summary(self) -> dict[str, Any]:
        from pipelines.selectors import pipeline_or_default

        return selectors.feedback_summary(pipeline=pipeline_or_default(self.pipeline))
