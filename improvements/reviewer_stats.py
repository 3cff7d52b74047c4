"""Reads about reviewers as raters: volume, speed, bias and agreement with the panel.

Bias is the reviewer offset of the analysis' own model (improvements.stats.corrected_means:
rating = revision quality + reviewer offset + noise, per dimension), so the number staff see
next to a rating is the one the analysis corrects for. Agreement compares each rating with the
mean of the *other* reviewers' ratings of the same video and dimension (leave-one-out
consensus). Everything is computed from compact columns in numpy and cached until the next
review, comparison or exclusion changes the inputs.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Count, Max

from improvements.search.reviewer_reliability import reliability_weights
from reviews.models import (
    Comparison,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
    ReviewerExclusion,
)
from reviews.selectors import excluded_reviewer_ids, reviewers

# Outlier rules (each flag names the rule it broke, with the numbers).
BIAS_FLAG = 0.75  # |offset| in rating points, averaged over dimensions
BIAS_MIN_RATINGS = 10
AGREEMENT_FLAG = 0.2  # correlation with the leave-one-out consensus below this
AGREEMENT_MIN_PAIRS = 10
DEVIATION_FLAG = 1.5  # mean absolute distance from the consensus, rating points
FAST_FLAG_SECONDS = 10.0  # median time per review below this
FAST_MIN_REVIEWS = 5
CACHE_SECONDS = 600


@dataclass
class ReviewerStats:
    id: int
    username: str
    is_active: bool
    excluded: bool
    reviews: int = 0
    comparisons: int = 0
    issues: int = 0
    ratings: int = 0
    last_active: Any = None
    median_seconds: float | None = None
    bias: float | None = None  # mean offset over dimensions, weighted by ratings
    bias_half_width: float | None = None  # approximate 95% half-width
    bias_by_dimension: dict[str, float] = field(default_factory=dict)
    # What one of their ratings counts in the improver, relative to the panel's (1): the
    # reliability weight of improvements.search.reviewer_reliability over all their ratings.
    weight: float | None = None
    consensus_pairs: int = 0
    consensus_r: float | None = None
    consensus_mad: float | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


def _ratings_columns() -> dict[str, np.ndarray]:
    rows = list(
        Rating.objects.values_list(
            "review__reviewer_id",
            "review__generation_id",
            "review__generation__revision_id",
            "dimension_id",
            "value",
        ).order_by()
    )
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return {
            "reviewer": empty,
            "generation": empty,
            "revision": empty,
            "dimension": empty,
            "value": np.empty(0),
        }
    reviewer, generation, revision, dimension, value = zip(*rows, strict=True)
    gen_codes: dict[Any, int] = {}
    return {
        "reviewer": np.asarray(reviewer, dtype=np.int64),
        "generation": np.fromiter(
            (gen_codes.setdefault(g, len(gen_codes)) for g in generation),
            dtype=np.int64,
            count=len(generation),
        ),
        "revision": np.asarray(revision, dtype=np.int64),
        "dimension": np.asarray(dimension, dtype=np.int64),
        "value": np.asarray(value, dtype=np.float64),
    }


def reviewer_offsets() -> dict[int, dict[str, Any]]:
    """Per reviewer id: {"bias", "half_width", "n", "by_dimension": {slug: offset}, "weight"}.

    One fit of the bias model per rating dimension, over every rating on record (an excluded
    reviewer's bias is still shown, to judge the exclusion by)."""
    from improvements.stats import corrected_means  # scipy: loaded when used

    data = _ratings_columns()
    slugs = dict(RatingDimension.objects.values_list("id", "slug"))
    total: dict[int, float] = {}
    weight: dict[int, float] = {}
    variance: dict[int, float] = {}
    by_dimension: dict[int, dict[str, float]] = {}
    residual_people: list[np.ndarray] = []
    residuals: list[np.ndarray] = []
    for dimension_id, slug in slugs.items():
        mask = data["dimension"] == dimension_id
        if mask.sum() < 2:
            continue
        revisions, revision_idx = np.unique(data["revision"][mask], return_inverse=True)
        people, reviewer_idx = np.unique(data["reviewer"][mask], return_inverse=True)
        fit = corrected_means(
            revision_idx.ravel(),
            reviewer_idx.ravel(),
            data["value"][mask],
            n_revisions=revisions.size,
            n_reviewers=people.size,
        )
        sd = fit.residual_sd if math.isfinite(fit.residual_sd) else None
        residual_people.append(data["reviewer"][mask])
        residuals.append(fit.residuals(revision_idx, reviewer_idx, data["value"][mask]))
        for j, person in enumerate(people.tolist()):
            n = float(fit.reviewer_n[j])
            if n == 0:
                continue
            offset = float(fit.reviewer_offset[j])
            by_dimension.setdefault(person, {})[slug] = round(offset, 3)
            total[person] = total.get(person, 0.0) + offset * n
            weight[person] = weight.get(person, 0.0) + n
            if sd is not None:
                # Var(offset) ≈ σ² / (n + shrinkage); the weighted mean's variance follows.
                variance[person] = variance.get(person, 0.0) + n * n * sd * sd / (n + fit.shrinkage)
    reliability = (
        reliability_weights(np.concatenate(residual_people), np.concatenate(residuals))
        if residuals
        else {}
    )
    result = {}
    for person, w in weight.items():
        half = 1.96 * math.sqrt(variance[person]) / w if person in variance else None
        result[person] = {
            "bias": round(total[person] / w, 3),
            "half_width": round(half, 3) if half is not None else None,
            "n": int(w),
            "by_dimension": by_dimension.get(person, {}),
            "weight": round(reliability[person], 2) if person in reliability else None,
        }
    return result


def _consensus(data: dict[str, np.ndarray]) -> dict[int, dict[str, Any]]:
    """Per reviewer: pairs with a leave-one-out consensus, correlation and mean |distance|."""
    if data["value"].size == 0:
        return {}
    n_dim = int(data["dimension"].max()) + 1
    key = data["generation"] * n_dim + data["dimension"]
    cells, cell = np.unique(key, return_inverse=True)
    cell = cell.ravel()
    total = np.bincount(cell, weights=data["value"], minlength=cells.size)
    count = np.bincount(cell, minlength=cells.size)
    others = count[cell] - 1
    usable = others > 0
    loo = np.full(data["value"].size, np.nan)
    loo[usable] = (total[cell][usable] - data["value"][usable]) / others[usable]
    result: dict[int, dict[str, Any]] = {}
    for person in np.unique(data["reviewer"][usable]).tolist():
        mine = usable & (data["reviewer"] == person)
        own, panel = data["value"][mine], loo[mine]
        r = None
        if own.size >= 3 and np.ptp(own) > 0 and np.ptp(panel) > 0:
            r = float(np.corrcoef(own, panel)[0, 1])
        result[person] = {
            "pairs": int(own.size),
            "r": round(r, 3) if r is not None else None,
            "mad": round(float(np.mean(np.abs(own - panel))), 3),
        }
    return result


def _signature() -> str:
    """Changes whenever a statistic here could change."""
    parts = (
        Rating.objects.count(),
        Review.objects.aggregate(m=Max("updated_at"))["m"],
        Comparison.objects.count(),
        ReviewerExclusion.objects.aggregate(m=Max("updated_at"), n=Count("id"))["m"],
        get_user_model().objects.count(),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def reviewer_statistics() -> list[ReviewerStats]:
    """Every reviewer with volume, median time per review, bias, agreement and outlier flags,
    in username order."""
    key = f"improvements.reviewer_statistics:{_signature()}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    excluded = excluded_reviewer_ids()
    people = list(reviewers().values("id", "username", "is_active"))
    review_counts = dict(
        Review.objects.values_list("reviewer_id").annotate(n=Count("id")).order_by()
    )
    last_review = dict(
        Review.objects.values_list("reviewer_id").annotate(m=Max("created_at")).order_by()
    )
    comparison_counts = dict(
        Comparison.objects.values_list("reviewer_id").annotate(n=Count("id")).order_by()
    )
    issue_counts = dict(
        IssueReport.objects.values_list("review__reviewer_id").annotate(n=Count("id")).order_by()
    )
    seconds: dict[int, list[float]] = {}
    for person, spent in Review.objects.filter(seconds_spent__isnull=False).values_list(
        "reviewer_id", "seconds_spent"
    ):
        seconds.setdefault(person, []).append(spent)
    data = _ratings_columns()
    rating_counts = dict(zip(*np.unique(data["reviewer"], return_counts=True), strict=True))
    offsets = reviewer_offsets()
    consensus = _consensus(data)

    result = []
    for person in people:
        pid = person["id"]
        stats = ReviewerStats(
            id=pid,
            username=person["username"],
            is_active=person["is_active"],
            excluded=pid in excluded,
            reviews=review_counts.get(pid, 0),
            comparisons=comparison_counts.get(pid, 0),
            issues=issue_counts.get(pid, 0),
            ratings=int(rating_counts.get(pid, 0)),
            last_active=last_review.get(pid),
        )
        if seconds.get(pid):
            stats.median_seconds = round(statistics.median(seconds[pid]), 1)
        if pid in offsets:
            stats.bias = offsets[pid]["bias"]
            stats.bias_half_width = offsets[pid]["half_width"]
            stats.bias_by_dimension = offsets[pid]["by_dimension"]
            stats.weight = offsets[pid]["weight"]
        if pid in consensus:
            stats.consensus_pairs = consensus[pid]["pairs"]
            stats.consensus_r = consensus[pid]["r"]
            stats.consensus_mad = consensus[pid]["mad"]
        stats.flags = _flags(stats)
        result.append(stats)
    cache.set(key, result, CACHE_SECONDS)
    return result


def _flags(s: ReviewerStats) -> list[str]:
    flags = []
    if s.bias is not None and s.ratings >= BIAS_MIN_RATINGS and abs(s.bias) >= BIAS_FLAG:
        way = "harsher" if s.bias < 0 else "more lenient"
        flags.append(f"rates {abs(s.bias):.2f} points {way} than the panel (limit {BIAS_FLAG:.2f})")
    if s.consensus_pairs >= AGREEMENT_MIN_PAIRS:
        if s.consensus_r is not None and s.consensus_r < AGREEMENT_FLAG:
            flags.append(
                f"agrees little with the other reviewers (r = {s.consensus_r:.2f} over "
                f"{s.consensus_pairs} ratings; limit {AGREEMENT_FLAG:.2f})"
            )
        if s.consensus_mad is not None and s.consensus_mad >= DEVIATION_FLAG:
            flags.append(
                f"is {s.consensus_mad:.2f} points from the others on average "
                f"(limit {DEVIATION_FLAG:.2f})"
            )
    if (
        s.median_seconds is not None
        and s.reviews >= FAST_MIN_REVIEWS
        and s.median_seconds < FAST_FLAG_SECONDS
    ):
        flags.append(
            f"reviews very fast (median {s.median_seconds:.0f} s; limit {FAST_FLAG_SECONDS:.0f} s)"
        )
    return flags


def reviewer_statistics_get(*, reviewer_id: int) -> ReviewerStats | None:
    return next((s for s in reviewer_statistics() if s.id == reviewer_id), None)
