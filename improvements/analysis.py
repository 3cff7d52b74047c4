"""One analysis of all feedback, stored as an AnalysisRun snapshot.

The database aggregates and hands over compact columns; the numerics run in numpy/scipy
(improvements/stats). No per-rating Python objects are built: the big pulls run the ORM's
compiled SQL on a plain cursor (no field converters), and ids are factorised to 0-based indices.

Snapshot keys (the dashboard reads these; every float is JSON-safe, NaN becomes null):
computed_at, ratings, reviews, comparisons, revisions, corrected, agreement, bradley_terry,
issue_rates, correlations, generation_seconds. See docs/improver-statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Avg, Count, F, Q, QuerySet
from django.utils import timezone

from feedbackloop.config import ImprovementCriteria
from generation.models import Generation, MetricValue
from improvements.stats import (
    corrected_means,
    krippendorff_alpha_ordinal_from_ratings,
    metric_rating_correlations,
)

# From its module: once improvements.stats.bradley_terry is imported, the package's attribute of
# that name is the module, not the function (the lazy names of improvements/stats/__init__.py).
from improvements.stats.bradley_terry import bradley_terry
from pipelines.models import ConfigRevision, Pipeline
from reviews.models import (
    OVERALL_DIMENSION,
    Comparison,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
)
from reviews.selectors import excluded_reviewer_ids

# Server metrics worth correlating with ratings: quality measurements, not bookkeeping
# (frame counts, sizes, timings).
CORRELATED_METRICS = (
    "visual_quality",
    "temporal_coherence",
    "factual_accuracy",
    "sharpness",
    "noise_sigma",
    "blockiness",
    "quantizer",
    "flicker",
    "temporal_ssim",
    "warp_error",
    "jitter",
    "text_cer",
)
BOOTSTRAP_SAMPLES = 1000
_FETCH = 50_000


def _clean(x: Any, digits: int = 4) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _chunks(queryset: QuerySet) -> Iterable[list[tuple]]:
    """The queryset's rows as plain DB tuples in chunks (no model or converter per row).

    Ids come back as the database stores them (e.g. hex text for UUIDs on SQLite); every
    lookup built here uses the same raw form, so they match.
    """
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            chunk = cursor.fetchmany(_FETCH)
            if not chunk:
                return
            yield chunk


def _rows(queryset: QuerySet) -> Iterable[tuple]:
    for chunk in _chunks(queryset):
        yield from chunk


def _without_excluded(queryset: QuerySet, reviewer_field: str, excluded: set[int]) -> QuerySet:
    """Leave out the rows of reviewers excluded from the analysis (reviews.selectors)."""
    return queryset.exclude(**{f"{reviewer_field}__in": excluded}) if excluded else queryset


def _rating_arrays(pipeline: Pipeline, excluded: set[int] = frozenset()) -> dict[str, np.ndarray]:
    """Every rating as aligned columns: revision number, reviewer, generation index, dimension."""
    # Generation -> revision number: one small query instead of a join per rating.
    gen_index: dict[Any, int] = {}
    gen_revision: list[int] = []
    for gen_id, number in _rows(
        Generation.objects.filter(revision__pipeline=pipeline, reviews__isnull=False)
        .values_list("id", "revision__number")
        .distinct()
        .order_by()
    ):
        gen_index[gen_id] = len(gen_index)
        gen_revision.append(number)
    reviewer, generation, dimension, value = [], [], [], []
    lookup = gen_index.get
    for chunk in _chunks(
        _without_excluded(
            Rating.objects.filter(review__generation__revision__pipeline=pipeline),
            "review__reviewer_id",
            excluded,
        )
        .values_list("review__reviewer_id", "review__generation_id", "dimension_id", "value")
        .order_by()
    ):
        r, g, d, v = zip(*chunk, strict=True)
        g = np.fromiter((lookup(x, -1) for x in g), dtype=np.int64, count=len(g))
        keep = g >= 0  # a review written after the generation map was read: skip it
        reviewer.append(np.asarray(r, dtype=np.int64)[keep])
        generation.append(g[keep])
        dimension.append(np.asarray(d, dtype=np.int64)[keep])
        value.append(np.asarray(v, dtype=np.float64)[keep])
    revision_of_gen = np.asarray(gen_revision, dtype=np.int64)

    def join(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    generation_all = join(generation, np.int64)
    return {
        "reviewer": join(reviewer, np.int64),
        "generation": generation_all,
        "dimension": join(dimension, np.int64),
        "value": join(value, np.float64),
        "revision": revision_of_gen[generation_all],
        "gen_index": gen_index,  # type: ignore[dict-item]
        "n_generations": len(gen_index),  # type: ignore[dict-item]
    }


def _corrected(
    data: dict[str, np.ndarray], slugs: dict[int, str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float | None], dict[str, np.ndarray]]:
    """Per dimension: each revision's bias-corrected mean, the agreement between reviewers, and
    each generation's mean rating with its reviewers' offsets taken out (nan: not rated)."""
    corrected: dict[str, list[dict[str, Any]]] = {}
    agreement: dict[str, float | None] = {}
    per_generation: dict[str, np.ndarray] = {}
    if data["value"].size == 0:
        return corrected, agreement, per_generation
    rev_numbers, rev_idx = np.unique(data["revision"], return_inverse=True)
    for dim_id, slug in slugs.items():
        mask = data["dimension"] == dim_id
        if not mask.any():
            continue
        reviewers, reviewer_idx = np.unique(data["reviewer"][mask], return_inverse=True)
        result = corrected_means(
            rev_idx[mask],
            reviewer_idx,
            data["value"][mask],
            n_revisions=rev_numbers.size,
            n_reviewers=reviewers.size,
            generation=data["generation"][mask],
        )
        corrected[slug] = [
            {
                "revision": int(rev_numbers[r]),
                "mean": _clean(result.mean[r]),
                "ci_low": _clean(result.ci_low[r]),
                "ci_high": _clean(result.ci_high[r]),
                "raw_mean": _clean(result.raw_mean[r]),
                "n": int(result.n[r]),
                "n_reviewers": int(result.n_reviewers[r]),
            }
            for r in range(rev_numbers.size)
            if result.n[r] > 0
        ]
        offsets = np.nan_to_num(result.reviewer_offset)[reviewer_idx]
        n_gen = data["n_generations"]
        total = np.bincount(
            data["generation"][mask], weights=data["value"][mask] - offsets, minlength=n_gen
        )
        count = np.bincount(data["generation"][mask], minlength=n_gen)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_generation[slug] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        agreement[slug] = _clean(
            krippendorff_alpha_ordinal_from_ratings(data["generation"][mask], data["value"][mask])
        )
    return corrected, agreement, per_generation


def _ranking(rows: list[tuple[Any, Any, str]], key: str) -> list[dict[str, Any]]:
    """Bradley–Terry strengths with bootstrap intervals from (left, right, winner) rows; a
    comparison of two of the same item says nothing and is left out."""
    rows = [r for r in rows if r[0] != r[1]]
    if not rows:
        return []
    items = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {item: i for i, item in enumerate(items)}
    win, lose, tie_a, tie_b = [], [], [], []
    for left, right, winner in rows:
        a, b = index[left], index[right]
        if winner == Comparison.Winner.LEFT:
            win.append(a), lose.append(b)
        elif winner == Comparison.Winner.RIGHT:
            win.append(b), lose.append(a)
        else:
            tie_a.append(a), tie_b.append(b)
    result = bradley_terry(
        len(items), win, lose, tie_a=tie_a, tie_b=tie_b, n_bootstrap=BOOTSTRAP_SAMPLES
    )
    table = [
        {
            key: items[i],
            "strength": _clean(result.strength[i]),
            "ci_low": _clean(result.ci_low[i]),
            "ci_high": _clean(result.ci_high[i]),
            "comparisons": int(result.n_comparisons[i]),
        }
        for i in range(len(items))
    ]
    table.sort(key=lambda row: -(row["strength"] if row["strength"] is not None else -math.inf))
    return table


def _bradley_terry(
    pipeline: Pipeline, excluded: set[int] = frozenset()
) -> tuple[list[dict[str, Any]], int]:
    """Revisions of one pipeline ranked by blind comparisons between them."""
    within = Comparison.objects.filter(
        left__revision__pipeline=pipeline, right__revision__pipeline=pipeline
    )
    rows = list(
        _without_excluded(within, "reviewer_id", excluded)
        .values_list("left__revision__number", "right__revision__number", "winner")
        .order_by()
    )
    table = _ranking(rows, "revision")
    return table, sum(1 for r in rows if r[0] != r[1])


def pipelines_ranking() -> dict[str, Any]:
    """Model selection: pipelines ranked by blind comparisons that set one pipeline's video
    against another's for the same prompt (Bradley–Terry, bootstrap intervals)."""
    excluded = excluded_reviewer_ids()
    across = Comparison.objects.exclude(left__revision__pipeline=F("right__revision__pipeline"))
    rows = list(
        _without_excluded(across, "reviewer_id", excluded)
        .values_list("left__revision__pipeline__slug", "right__revision__pipeline__slug", "winner")
        .order_by()
    )
    return {"ranking": _ranking(rows, "pipeline"), "comparisons": len(rows)}


def _issue_rates(pipeline: Pipeline, excluded: set[int] = frozenset()) -> list[dict[str, Any]]:
    """Per revision and category: the reports, and the share of reviews with at least one (a
    proportion, with its 95% Wilson interval, which stays inside [0, 1])."""
    from improvements.stats.proportions import wilson_interval

    reviews = dict(
        _without_excluded(
            Review.objects.filter(generation__revision__pipeline=pipeline), "reviewer_id", excluded
        )
        .values_list("generation__revision__number")
        .annotate(n=Count("id"))
        .order_by()
    )
    rows = (
        _without_excluded(
            IssueReport.objects.filter(generation__revision__pipeline=pipeline),
            "review__reviewer_id",
            excluded,
        )
        .values_list("generation__revision__number", "category")
        .annotate(n=Count("id"), reporting=Count("review", distinct=True))
        .order_by("generation__revision__number", "category")
    )
    out = []
    for number, category, count, reporting in rows:
        n = reviews.get(number, 0)
        low, high = wilson_interval(min(reporting, n), n) if n else (None, None)
        out.append(
            {
                "revision": number,
                "category": category,
                "count": count,
                "reviews": n,
                "reviews_reporting": reporting,
                "rate": _clean(reporting / n) if n else None,
                "rate_low": _clean(low) if n else None,
                "rate_high": _clean(high) if n else None,
            }
        )
    return out


def _generation_metrics(pipeline: Pipeline, gen_index: dict[Any, int]) -> dict[int, dict]:
    """The server's metrics of every rated generation, by index. A generation holds one
    version's rows (a new measurement replaces the old), so none mixes versions."""
    by_generation: dict[int, dict[str, float]] = {}
    rows = _rows(
        MetricValue.objects.filter(
            generation__revision__pipeline=pipeline,
            source=MetricValue.Source.SERVER,
            value__isnull=False,
        ).values_list("generation_id", "name", "value")
    )
    for gen_id, name, value in rows:
        g = gen_index.get(gen_id)
        if g is not None:
            by_generation.setdefault(g, {})[name] = value
    return by_generation


def _correlations(
    metrics_by_generation: dict[int, dict], ratings: dict[str, np.ndarray], n_gen: int
) -> list[dict[str, Any]]:
    """Spearman rho of each quality metric with each dimension's bias-corrected rating."""
    if n_gen == 0:
        return []
    metrics = {name: np.full(n_gen, np.nan) for name in CORRELATED_METRICS}
    for g, values in metrics_by_generation.items():
        for name in CORRELATED_METRICS:
            if name in values:
                metrics[name][g] = values[name]
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v).any()}
    if not metrics:
        return []
    return [
        {
            "metric": c.metric,
            "dimension": c.dimension,
            "rho": _clean(c.rho),
            "p_value": _clean(c.p_value, 6),
            "n": c.n,
        }
        for c in metric_rating_correlations(metrics, ratings)
    ]


def _calibration(
    metrics_by_generation: dict[int, dict], ratings: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """The composites calibrated on this pipeline's human ratings (videometrics.calibration):
    per dimension, a model predicting the bias-corrected rating from the metrics, with its
    held-out error beside the default composite's; the defaults stay in force until the
    learned model has enough data and beats them."""
    from videometrics.calibration import calibrate_composites

    per_generation = {
        g: {slug: float(r[g]) for slug, r in ratings.items() if np.isfinite(r[g])}
        for g in metrics_by_generation
    }
    models = calibrate_composites(
        metrics={str(g): m for g, m in metrics_by_generation.items()},
        ratings={str(g): r for g, r in per_generation.items() if r},
    )
    return {
        dim: {k: (_clean(v) if isinstance(v, float) else v) for k, v in m.as_dict().items()}
        for dim, m in models.items()
    }


def _generation_seconds(pipeline: Pipeline) -> list[dict[str, Any]]:
    G = Generation.Status
    rows = (
        Generation.objects.filter(revision__pipeline=pipeline)
        .values_list("revision__number")
        .annotate(
            mean=Avg("generation_seconds", filter=Q(status=G.SUCCEEDED)),
            n=Count("id", filter=Q(status=G.SUCCEEDED)),
            failed=Count("id", filter=Q(status=G.FAILED)),
        )
        .order_by("revision__number")
    )
    return [
        {
            "revision": number,
            "mean": _clean(mean),
            "n": n,
            "failure_rate": _clean(failed / (n + failed)) if n + failed else None,
        }
        for number, mean, n, failed in rows
    ]


def analysis_compute(
    *, pipeline: Pipeline, criteria: ImprovementCriteria | None = None
) -> dict[str, Any]:
    """Every statistic of one pipeline's feedback the improver and the dashboard use, as one
    JSON-ready snapshot.

    ``criteria`` (from criteria_resolve) is recorded with the snapshot so a proposal can be
    traced to the thresholds in force when it was made.
    """
    slugs = dict(RatingDimension.objects.values_list("id", "slug"))
    excluded = excluded_reviewer_ids()  # staff excluded them on the Reviewers page
    data = _rating_arrays(pipeline, excluded)
    corrected, agreement, per_generation = _corrected(data, slugs)
    metrics_by_generation = _generation_metrics(pipeline, data["gen_index"])
    bt, n_comparisons = _bradley_terry(pipeline, excluded)
    snapshot: dict[str, Any] = {
        "computed_at": timezone.now().isoformat(),
        "ratings": int(data["value"].size),
        "pipeline": pipeline.slug,
        "reviews": _without_excluded(
            Review.objects.filter(generation__revision__pipeline=pipeline), "reviewer_id", excluded
        ).count(),
        "excluded_reviewers": sorted(excluded),
        "comparisons": n_comparisons,
        "revisions": [
            {"number": number, "status": status}
            for number, status in ConfigRevision.objects.filter(pipeline=pipeline)
            .values_list("number", "status")
            .order_by("number")
        ],
        "corrected": corrected,
        "agreement": agreement,
        "bradley_terry": bt,
        "issue_rates": _issue_rates(pipeline, excluded),
        "correlations": _correlations(metrics_by_generation, per_generation, data["n_generations"]),
        "calibration": _calibration(metrics_by_generation, per_generation),
        "generation_seconds": _generation_seconds(pipeline),
    }
    if criteria is not None:
        snapshot["criteria"] = {
            "target_rating": criteria.target_rating,
            "min_effect": criteria.min_effect,
            "alpha": criteria.alpha,
            "min_ratings_per_arm": criteria.min_ratings_per_arm,
            "canary_share": criteria.canary_share,
        }
    return snapshot


def overall_scores(snapshot: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Each revision's corrected overall score: the overall dimension when rated, else the
    mean of its rated dimensions' corrected means (interval: the widest half-width)."""
    by_revision: dict[int, dict[str, Any]] = {}
    overall = {row["revision"]: row for row in snapshot["corrected"].get(OVERALL_DIMENSION, [])}
    per_rev: dict[int, list[dict[str, Any]]] = {}
    for rows in snapshot["corrected"].values():
        for row in rows:
            if row["mean"] is not None:
                per_rev.setdefault(row["revision"], []).append(row)
    for number, rows in per_rev.items():
        row = overall.get(number)
        if row is not None and row["mean"] is not None:
            by_revision[number] = {**row, "basis": OVERALL_DIMENSION}
            continue
        mean = float(np.mean([r["mean"] for r in rows]))
        halves = [
            (r["ci_high"] - r["ci_low"]) / 2
            for r in rows
            if r["ci_low"] is not None and r["ci_high"] is not None
        ]
        half = max(halves) if halves else None
        by_revision[number] = {
            "revision": number,
            "mean": round(mean, 4),
            "ci_low": round(mean - half, 4) if half is not None else None,
            "ci_high": round(mean + half, 4) if half is not None else None,
            "raw_mean": round(float(np.mean([r["raw_mean"] for r in rows])), 4),
            "n": sum(r["n"] for r in rows),
            "n_reviewers": max(r["n_reviewers"] for r in rows),
            "basis": "mean of rated dimensions",
        }
    return by_revision
