"""Reads of human feedback; aggregation happens in SQL."""

from __future__ import annotations

from typing import Any

from django.db.models import Avg, Count

from generation.models import Generation
from generation.selectors import revision_active
from reviews.models import Comparison, IssueReport, Rating, RatingDimension, Review


def ratings_by_revision_and_dimension() -> list[dict[str, Any]]:
    """Mean rating and count per (revision number, dimension slug)."""
    return list(
        Rating.objects.values(
            "review__generation__revision__number", "dimension__slug"
        )
        .annotate(mean=Avg("value"), n=Count("id"))
        .order_by("review__generation__revision__number", "dimension__slug")
    )


def feedback_summary() -> dict[str, Any]:
    """The seed's get_feedback_summary(): averages per dimension, counts, issues, active revision."""
    dimensions = list(RatingDimension.objects.values_list("slug", flat=True))
    averages = {
        row["dimension__slug"]: row
        for row in Rating.objects.values("dimension__slug").annotate(mean=Avg("value"), n=Count("id"))
    }
    summary: dict[str, Any] = {}
    for slug in dimensions:
        row = averages.get(slug)
        summary[f"avg_{slug}"] = round(row["mean"], 4) if row else None
    summary["ratings_per_dimension"] = {slug: averages[slug]["n"] if slug in averages else 0 for slug in dimensions}
    summary["total_ratings"] = sum(summary["ratings_per_dimension"].values())
    summary["total_reviews"] = Review.objects.count()
    summary["total_comparisons"] = Comparison.objects.count()
    summary["total_generations"] = Generation.objects.count()
    summary["generations_by_status"] = dict(
        Generation.objects.values_list("status").annotate(n=Count("id")).order_by("status")
    )
    counts = dict(IssueReport.objects.values_list("category").annotate(n=Count("id")).order_by("category"))
    summary["issue_counts"] = {c: counts.get(c, 0) for c in IssueReport.Category.values}
    active = revision_active()
    summary["active_revision"] = (
        {"number": active.number, "params": active.params, "source": active.source} if active else None
    )
    return summary
