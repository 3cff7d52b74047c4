"""FeedbackCollector: the seed's name for storing and aggregating feedback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from feedbackloop.errors import NotFound
from generation.models import MetricValue
from generation.selectors import generation_get
from reviews import selectors, services
from reviews.models import Review

LIBRARY_REVIEWER = "library"


def library_reviewer() -> AbstractBaseUser:
    """The account that in-process feedback is recorded under when no reviewer is named."""
    user, _ = get_user_model().objects.get_or_create(
        username=LIBRARY_REVIEWER, defaults={"is_active": False}
    )
    return user


class FeedbackCollector:
    def record_human_feedback(
        self,
        *,
        generation_id: str,
        ratings: Mapping[str, Any],
        comments: str = "",
        reviewer: AbstractBaseUser | None = None,
        issues: list[services.IssueInput] | None = None,
    ) -> Review:
        generation = generation_get(generation_id=generation_id)
        if generation is None:
            raise NotFound(f"no generation with id {generation_id!r}", code="unknown_generation")
        return services.review_create(
            reviewer=reviewer or library_reviewer(),
            generation=generation,
            ratings=ratings,
            comments=comments,
            issues=issues or (),
        )

    def automated_metrics(self, generation_id: str) -> dict[str, float | None]:
        rows = MetricValue.objects.filter(generation_id=generation_id).order_by("source", "name")
        return {
            row.name if row.source == "server" else f"{row.source}:{row.name}": row.value
            for row in rows
        }

    def summary(self) -> dict[str, Any]:
        return selectors.feedback_summary()
