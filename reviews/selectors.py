"""Reads of human feedback; aggregation happens in SQL."""

from __future__ import annotations

import functools
from datetime import datetime, time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    When,
)
from django.utils import timezone

from feedbackloop.config import load_config
from generation.models import Generation
from pipelines.models import Pipeline
from pipelines.selectors import pipeline_default, revision_active
from reviews.models import (
    Comparison,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
    ReviewDraft,
    ReviewerExclusion,
)


def ratings_by_revision_and_dimension() -> list[dict[str, Any]]:
    """Mean rating and count per (revision number, dimension slug)."""
    return list(
        Rating.objects.values("review__generation__revision__number", "dimension__slug")
        .annotate(mean=Avg("value"), n=Count("id"))
        .order_by("review__generation__revision__number", "dimension__slug")
    )


def feedback_summary(*, pipeline: Pipeline | None = None) -> dict[str, Any]:
    """The seed's get_feedback_summary() for one pipeline (default: the default pipeline):
    averages per dimension, counts, issues, the active revision."""
    pipeline = pipeline or pipeline_default()
    of_pipeline = {"generation__revision__pipeline": pipeline}
    dimensions = [d.slug for d in dimensions_for(pipeline=pipeline, active_only=False)]
    averages = {
        row["dimension__slug"]: row
        for row in Rating.objects.filter(review__generation__revision__pipeline=pipeline)
        .values("dimension__slug")
        .annotate(mean=Avg("value"), n=Count("id"))
    }
    summary: dict[str, Any] = {}
    for slug in dimensions:
        row = averages.get(slug)
        summary[f"avg_{slug}"] = round(row["mean"], 4) if row else None
    summary["ratings_per_dimension"] = {
        slug: averages[slug]["n"] if slug in averages else 0 for slug in dimensions
    }
    summary["total_ratings"] = sum(summary["ratings_per_dimension"].values())
    generations = Generation.objects.filter(revision__pipeline=pipeline)
    summary["pipeline"] = pipeline.slug
    summary["total_reviews"] = Review.objects.filter(**of_pipeline).count()
    summary["total_comparisons"] = Comparison.objects.filter(
        Q(left__revision__pipeline=pipeline) | Q(right__revision__pipeline=pipeline)
    ).count()
    summary["total_generations"] = generations.count()
    summary["generations_by_status"] = dict(
        generations.values_list("status").annotate(n=Count("id")).order_by("status")
    )
    counts = dict(
        IssueReport.objects.filter(**of_pipeline)
        .values_list("category")
        .annotate(n=Count("id"))
        .order_by("category")
    )
    summary["issue_counts"] = {c: counts.get(c, 0) for c in IssueReport.Category.values}
    active = revision_active(pipeline=pipeline)
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


def dimensions_for(*, pipeline: Pipeline, active_only: bool = True) -> QuerySet[RatingDimension]:
    """The dimensions rated for this pipeline's videos: the global ones and its own."""
    dimensions = RatingDimension.objects.filter(Q(pipeline__isnull=True) | Q(pipeline=pipeline))
    if active_only:
        dimensions = dimensions.filter(active=True)
    return dimensions.order_by("order", "slug")


def generations_reviewable() -> QuerySet[Generation]:
    """Finished generations with a video: the only ones a reviewer ever sees."""
    return Generation.objects.filter(status=Generation.Status.SUCCEEDED).exclude(video="")


def dimensions_compared(*, left: Generation, right: Generation) -> QuerySet[RatingDimension]:
    """The dimensions a comparison asks about: the global ones, plus a pipeline's own when
    both videos come from that pipeline."""
    if left.revision.pipeline_id == right.revision.pipeline_id:
        return dimensions_for(pipeline=left.revision.pipeline)
    return dimensions_active().filter(pipeline__isnull=True)


def reviews_target_per_generation() -> int:
    """Reviews a video collects before the queue moves on: REVIEWS_TARGET_PER_GENERATION when
    the environment sets it, else the config file's `feedback.target_reviews_per_generation`."""
    if settings.REVIEWS_TARGET_PER_GENERATION is not None:
        return int(settings.REVIEWS_TARGET_PER_GENERATION)
    path = Path(settings.FEEDBACKLOOP_CONFIG_PATH)
    return _config_reviews_target(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _config_reviews_target(path: str, mtime_ns: int) -> int:
    """The config file's target, read once per version of the file (the queue asks per page)."""
    return load_config(path).feedback.target_reviews_per_generation


def review_queue(
    *, reviewer: AbstractBaseUser, target: int | None = None, pipeline: str | None = None
) -> QuerySet[Generation]:
    """Finished generations this reviewer has not reviewed that still need reviews.

    Videos of running experiments first (their arms need ratings to be decided), then fewest
    reviews, then the oldest, so that every video reaches the target. ``pipeline`` (a slug)
    keeps to one pipeline's videos.
    """
    if target is None:
        target = reviews_target_per_generation()
    reviewed_by_me = Review.objects.filter(generation=OuterRef("pk"), reviewer=reviewer)
    queue = generations_reviewable()
    if pipeline:
        queue = queue.filter(revision__pipeline__slug=pipeline)
    return (
        queue.annotate(
            n_reviews=Count("reviews", distinct=True),
            outside_experiment=Case(
                When(experiment_arm="", then=1), default=0, output_field=IntegerField()
            ),
        )
        .filter(~Exists(reviewed_by_me), n_reviews__lt=target)
        .order_by("outside_experiment", "n_reviews", "created_at", "id")
    )


def review_queue_next(
    *, reviewer: AbstractBaseUser, target: int | None = None, pipeline: str | None = None
) -> Generation | None:
    return review_queue(reviewer=reviewer, target=target, pipeline=pipeline).first()


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


def comparison_pair_next(
    *, reviewer: AbstractBaseUser, pipeline: str | None = None
) -> tuple[Generation, Generation] | None:
    """Two finished generations of one prompt, from different revisions, not yet compared by
    this reviewer; pairs of the newest revisions first. Revisions of different pipelines pair
    too: that is model selection between pipelines. ``pipeline`` (a slug) keeps to one
    pipeline's revisions. Three queries whatever the data."""
    finished = generations_reviewable()
    if pipeline:
        finished = finished.filter(revision__pipeline__slug=pipeline)
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


# --- reviewers: exclusions -----------------------------------------------------------------


def excluded_reviewer_ids() -> set[int]:
    """Ids of reviewers whose exclusion from the analysis is in force (not revoked).

    The analysis leaves their ratings, issue reports and comparisons out; the rows themselves
    stay, so revoking the exclusion brings them back at the next analysis.
    """
    return set(
        ReviewerExclusion.objects.filter(revoked_at__isnull=True).values_list(
            "reviewer_id", flat=True
        )
    )


def reviewer_exclusion_current(*, reviewer: AbstractBaseUser) -> ReviewerExclusion | None:
    return ReviewerExclusion.objects.filter(reviewer=reviewer, revoked_at__isnull=True).first()


def reviewer_exclusions(*, reviewer: AbstractBaseUser) -> QuerySet[ReviewerExclusion]:
    """Every exclusion of this reviewer, in force or revoked, newest first."""
    return ReviewerExclusion.objects.filter(reviewer=reviewer).select_related(
        "created_by", "revoked_by"
    )


def reviewers() -> QuerySet:
    """Everyone who may review or has reviewed: reviewer-group members, staff with reviews,
    and anyone with a review or comparison on record."""
    return (
        get_user_model()
        .objects.filter(
            Q(groups__name__in=("reviewer",))
            | Q(reviews__isnull=False)
            | Q(comparisons__isnull=False)
        )
        .distinct()
        .order_by("username")
    )


def feedback_history(
    *,
    pipeline: str | None = None,
    generation_id: Any = None,
    revision: int | None = None,
    dimension: str | None = None,
    reviewer: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Reviews, newest first, with their ratings and issue reports, filtered by pipeline (a
    slug), generation, revision number (within the pipeline), dimension, reviewer (username)
    and creation time (``since`` inclusive, ``until`` exclusive)."""
    reviews = Review.objects.select_related("reviewer", "generation__revision__pipeline")
    if pipeline:
        reviews = reviews.filter(generation__revision__pipeline__slug=pipeline)
    if generation_id is not None:
        reviews = reviews.filter(generation_id=generation_id)
    if revision is not None:
        reviews = reviews.filter(generation__revision__number=revision)
    if dimension:
        reviews = reviews.filter(ratings__dimension__slug=dimension)
    if reviewer:
        reviews = reviews.filter(reviewer__username=reviewer)
    if since is not None:
        reviews = reviews.filter(created_at__gte=since)
    if until is not None:
        reviews = reviews.filter(created_at__lt=until)
    reviews = (
        reviews.distinct()
        .order_by("-created_at", "id")[:limit]
        .prefetch_related("ratings__dimension", "issues")
    )
    return [
        {
            "review_id": str(r.id),
            "generation_id": str(r.generation_id),
            "pipeline": r.generation.revision.pipeline.slug,
            "revision": r.generation.revision.number,
            "reviewer": r.reviewer.get_username(),
            "created_at": r.created_at.isoformat(),
            "ratings": {
                x.dimension.slug: x.value
                for x in r.ratings.all()
                if not dimension or x.dimension.slug == dimension
            },
            "comments": r.comments,
            "issues": [
                {
                    "category": i.category,
                    "severity": i.get_severity_display(),
                    "start_s": i.start_s,
                    "end_s": i.end_s,
                    "note": i.note,
                }
                for i in r.issues.all()
            ],
        }
        for r in reviews
    ]
