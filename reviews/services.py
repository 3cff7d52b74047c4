"""Writes for human feedback."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q

from feedbackloop.errors import Conflict, InvalidInput
from generation.models import Generation
from reviews.models import (
    Comparison,
    ComparisonDimensionWinner,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
    ReviewDraft,
)

# A draft is the browser's copy of a form in progress; anything bigger is not a review form.
DRAFT_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class IssueInput:
    category: str
    start_s: float
    end_s: float
    severity: int = IssueReport.Severity.MINOR
    note: str = ""


def _check_ratings(
    ratings: Mapping[str, Any], *, require_all: bool
) -> list[tuple[RatingDimension, int]]:
    if not isinstance(ratings, Mapping) or not ratings:
        raise InvalidInput(
            "ratings must be a non-empty mapping of dimension to 1-5", code="invalid_ratings"
        )
    dimensions = {d.slug: d for d in RatingDimension.objects.filter(active=True)}
    known = ", ".join(sorted(dimensions))
    rows: list[tuple[RatingDimension, int]] = []
    for slug, value in ratings.items():
        if slug not in dimensions:
            raise InvalidInput(
                f"unknown rating dimension {slug!r}; known dimensions: {known}",
                code="unknown_dimension",
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise InvalidInput(
                f"rating for {slug!r} must be an integer from 1 to 5, got {value!r}",
                code="invalid_rating",
            )
        rows.append((dimensions[slug], value))
    if require_all:
        missing = sorted(set(dimensions) - set(ratings))
        if missing:
            raise InvalidInput(f"missing ratings for: {', '.join(missing)}", code="missing_rating")
    return rows


def _check_issue(issue: IssueInput, duration_s: float | None) -> None:
    if issue.category not in IssueReport.Category.values:
        raise InvalidInput(
            f"unknown issue category {issue.category!r}; "
            f"known: {', '.join(IssueReport.Category.values)}",
            code="invalid_issue",
        )
    if issue.severity not in IssueReport.Severity.values:
        raise InvalidInput(
            "issue severity must be 1 (minor), 2 (major) or 3 (critical)", code="invalid_issue"
        )
    if issue.start_s < 0 or issue.end_s < issue.start_s:
        raise InvalidInput(
            "an issue must end at or after its start, and start at 0 s or later",
            code="invalid_issue",
        )
    if duration_s is not None and issue.end_s > duration_s + 1e-3:
        raise InvalidInput(
            f"an issue cannot end at {issue.end_s:.2f} s; the video is {duration_s:.2f} s long",
            code="invalid_issue",
        )


def review_create(
    *,
    reviewer: AbstractBaseUser,
    generation: Generation,
    ratings: Mapping[str, Any],
    comments: str = "",
    issues: Iterable[IssueInput] = (),
    seconds_spent: float | None = None,
    require_all_dimensions: bool = False,
) -> Review:
    """Record one reviewer's feedback on a finished generation, all of it or nothing."""
    if generation.status != Generation.Status.SUCCEEDED:
        raise InvalidInput("only finished generations can be reviewed", code="not_finished")
    if not isinstance(comments, str):
        raise InvalidInput("comments must be text", code="invalid_comments")
    rows = _check_ratings(ratings, require_all=require_all_dimensions)
    issues = list(issues)
    for issue in issues:
        _check_issue(issue, generation.duration_s)
    try:
        with transaction.atomic():
            review = Review.objects.create(
                reviewer=reviewer,
                generation=generation,
                comments=comments.strip(),
                seconds_spent=seconds_spent,
            )
            Rating.objects.bulk_create(
                Rating(review=review, dimension=dimension, value=value) for dimension, value in rows
            )
            IssueReport.objects.bulk_create(
                IssueReport(
                    review=review,
                    generation=generation,
                    category=i.category,
                    severity=i.severity,
                    start_s=i.start_s,
                    end_s=i.end_s,
                    note=i.note.strip(),
                )
                for i in issues
            )
    except IntegrityError as exc:
        if Review.objects.filter(reviewer=reviewer, generation=generation).exists():
            raise Conflict(
                f"{reviewer} has already reviewed generation {generation.id}",
                code="already_reviewed",
            ) from exc
        raise
    return review


@transaction.atomic
def comparison_record(
    *,
    reviewer: AbstractBaseUser,
    left: Generation,
    right: Generation,
    winner: str,
    dimension_winners: Mapping[str, str] | None = None,
    seconds_spent: float | None = None,
) -> Comparison:
    if left.pk == right.pk:
        raise InvalidInput(
            "a comparison needs two different generations", code="invalid_comparison"
        )
    for g in (left, right):
        if g.status != Generation.Status.SUCCEEDED:
            raise InvalidInput("only finished generations can be compared", code="not_finished")
    if winner not in Comparison.Winner.values:
        raise InvalidInput("winner must be left, right or tie", code="invalid_comparison")
    comparison = Comparison.objects.create(
        reviewer=reviewer, left=left, right=right, winner=winner, seconds_spent=seconds_spent
    )
    if dimension_winners:
        dimensions = {d.slug: d for d in RatingDimension.objects.filter(active=True)}
        rows = []
        for slug, verdict in dimension_winners.items():
            if slug not in dimensions:
                raise InvalidInput(
                    f"unknown rating dimension {slug!r}; "
                    f"known dimensions: {', '.join(sorted(dimensions))}",
                    code="unknown_dimension",
                )
            if verdict not in Comparison.Winner.values:
                raise InvalidInput(
                    f"winner for {slug!r} must be left, right or tie", code="invalid_comparison"
                )
            rows.append(
                ComparisonDimensionWinner(
                    comparison=comparison, dimension=dimensions[slug], winner=verdict
                )
            )
        ComparisonDimensionWinner.objects.bulk_create(rows)
    return comparison


def review_draft_save(
    *, reviewer: AbstractBaseUser, generation: Generation, data: Any
) -> ReviewDraft:
    """Store (or replace) the reviewer's draft of a review of this generation."""
    if generation.status != Generation.Status.SUCCEEDED:
        raise InvalidInput("only finished generations can be reviewed", code="not_finished")
    if not isinstance(data, dict):
        raise InvalidInput("a draft must be a JSON object", code="invalid_draft")
    if len(json.dumps(data)) > DRAFT_MAX_BYTES:
        raise InvalidInput(f"a draft is limited to {DRAFT_MAX_BYTES} bytes", code="invalid_draft")
    if Review.objects.filter(reviewer=reviewer, generation=generation).exists():
        raise Conflict("this generation is already reviewed", code="already_reviewed")
    draft, _ = ReviewDraft.objects.update_or_create(
        reviewer=reviewer, generation=generation, defaults={"data": data}
    )
    return draft


@transaction.atomic
def review_submit(
    *,
    reviewer: AbstractBaseUser,
    generation: Generation,
    ratings: Mapping[str, Any],
    comments: str = "",
    issues: Iterable[IssueInput] = (),
    seconds_spent: float | None = None,
) -> Review:
    """The reviewer UI's submit: a complete review and the end of its draft, in one transaction."""
    review = review_create(
        reviewer=reviewer,
        generation=generation,
        ratings=ratings,
        comments=comments,
        issues=issues,
        seconds_spent=seconds_spent,
        require_all_dimensions=True,
    )
    ReviewDraft.objects.filter(reviewer=reviewer, generation=generation).delete()
    return review


@transaction.atomic
def comparison_submit(
    *,
    reviewer: AbstractBaseUser,
    left: Generation,
    right: Generation,
    winner: str,
    dimension_winners: Mapping[str, str] | None = None,
    seconds_spent: float | None = None,
) -> Comparison:
    """Record a blind comparison once: the same reviewer judging the same pair again conflicts."""
    already = Comparison.objects.filter(
        Q(left=left, right=right) | Q(left=right, right=left), reviewer=reviewer
    )
    if already.exists():
        raise Conflict("this pair is already compared", code="already_compared")
    return comparison_record(
        reviewer=reviewer,
        left=left,
        right=right,
        winner=winner,
        dimension_winners=dimension_winners,
        seconds_spent=seconds_spent,
    )
