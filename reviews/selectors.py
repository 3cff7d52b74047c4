"""Reads of human feedback; aggregation happens in SQL."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Avg, Count, Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from generation.models import Generation
from generation.selectors import revision_active
from reviews.models import (
    Comparison,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
    ReviewDraft,
)


def ratings_by_revision_and_dimension() -> list[dict[str, Any]]:
    """Mean rating and count per (revision number, dimension slug)."""
    return list(
        Rating.objects.values("review__generation__revision__number", "dimension__slug")
        .annotate(mean=Avg("value"), n=Count("id"))
        .order_by("review__generation__revision__number", "dimension__slug")
    )


def feedback_summary() -> dict[str, Any]:
    """The seed's get_feedback_summary(): averages per dimension, counts, issues, active
    revision."""
    dimensions = list(RatingDimension.objects.values_list("slug", flat=True))
    averages = {
        row["dimension__slug"]: row
        for row in Rating.objects.values("dimension__slug").annotate(
            mean=Avg("value"), n=Count("id")
        )
    }
    summary: dict[str, Any] = {}
    for slug in dimensions:
        row = averages.get(slug)
        summary[f"avg_{slug}"] = round(row["mean"], 4) if row else None
    summary["ratings_per_dimension"] = {
        slug: averages[slug]["n"] if slug in averages else 0 for slug in dimensions
    }
    summary["total_ratings"] = sum(summary["ratings_per_dimension"].values())
    summary["total_reviews"] = Review.objects.count()
    summary["total_comparisons"] = Comparison.objects.count()
    summary["total_generations"] = Generation.objects.count()
    summary["generations_by_status"] = dict(
        Generation.objects.values_list("status").annotate(n=Count("id")).order_by("status")
    )
    counts = dict(
        IssueReport.objects.values_list("category").annotate(n=Count("id")).order_by("category")
    )
    summary["issue_counts"] = {c: counts.get(c, 0) for c in IssueReport.Category.values}
    active = revision_active()
    summary["active_revision"] = (
        {"number": active.number, "params": active.params, "source": active.source}
        if active
        else None
    )
    return summary


# --- the reviewer UI ---------------------------------------------------------------------------

# How many prompts with several revisions are looked at when searching for a comparison pair.
COMPARISON_PROMPTS_SCANNED = 200


def dimensions_active() -> QuerySet[RatingDimension]:
    return RatingDimension.objects.filter(active=True).order_by("order", "slug")


def generations_reviewable() -> QuerySet[Generation]:
    """Finished generations with a video: the only ones a reviewer ever sees."""
    return Generation.objects.filter(status=Generation.Status.SUCCEEDED).exclude(video="")


def review_queue(*, reviewer: AbstractBaseUser, target: int | None = None) -> QuerySet[Generation]:
    """Finished generations this reviewer has not reviewed that still need reviews.

    Fewest reviews first, then the oldest, so that every video reaches the target.
    """
    if target is None:
        target = settings.REVIEWS_TARGET_PER_GENERATION
    reviewed_by_me = Review.objects.filter(generation=OuterRef("pk"), reviewer=reviewer)
    return (
        generations_reviewable()
        .annotate(n_reviews=Count("reviews", distinct=True))
        .filter(~Exists(reviewed_by_me), n_reviews__lt=target)
        .order_by("n_reviews", "created_at", "id")
    )


def review_queue_next(
    *, reviewer: AbstractBaseUser, target: int | None = None
) -> Generation | None:
    return review_queue(reviewer=reviewer, target=target).first()


def reviewer_progress(*, reviewer: AbstractBaseUser) -> dict[str, int]:
    """What the queue page shows: reviews and comparisons done today, videos waiting."""
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    return {
        "reviewed_today": Review.objects.filter(
            reviewer=reviewer, created_at__gte=midnight
        ).count(),
        "compared_today": Comparison.objects.filter(
            reviewer=reviewer, created_at__gte=midnight
        ).count(),
        "waiting": review_queue(reviewer=reviewer).count(),
    }


def review_exists(*, reviewer: AbstractBaseUser, generation: Generation) -> bool:
    return Review.objects.filter(reviewer=reviewer, generation=generation).exists()


def review_draft_get(*, reviewer: AbstractBaseUser, generation: Generation) -> ReviewDraft | None:
    """The reviewer's own draft; another reviewer's draft is never returned."""
    return ReviewDraft.objects.filter(reviewer=reviewer, generation=generation).first()


def comparison_pair_next(*, reviewer: AbstractBaseUser) -> tuple[Generation, Generation] | None:
    """Two finished generations of one prompt, from different revisions, not yet compared by
    this reviewer; pairs of the newest revisions first. Three queries whatever the data."""
    finished = generations_reviewable()
    prompts = list(
        finished.values("prompt")
        .annotate(n_revisions=Count("revision", distinct=True), newest=Max("created_at"))
        .filter(n_revisions__gte=2)
        .order_by("-newest")
        .values_list("prompt", flat=True)[:COMPARISON_PROMPTS_SCANNED]
    )
    if not prompts:
        return None
    compared = {
        frozenset(pair)
        for pair in Comparison.objects.filter(
            reviewer=reviewer, left__prompt__in=prompts
        ).values_list("left_id", "right_id")
    }
    by_prompt: dict[str, list[Generation]] = {}
    for generation in finished.filter(prompt__in=prompts).order_by(
        "-revision__number", "-created_at", "id"
    ):
        by_prompt.setdefault(generation.prompt, []).append(generation)
    for prompt in prompts:
        candidates = by_prompt.get(prompt, [])
        for i, first in enumerate(candidates):
            for second in candidates[i + 1 :]:
                if first.revision_id == second.revision_id:
                    continue
                if frozenset((first.pk, second.pk)) in compared:
                    continue
                return first, second
    return None
