"""Per-revision summaries of all feedback: what the surrogate model learns from.

Ratings are reduced once to per-revision numbers, so the model's cost depends on the number of
revisions, not of ratings:

- per dimension, the reviewer-bias-corrected mean (`improvements.stats.corrected_means`, all
  revisions fitted together so that every reviewer's leniency is estimated from everything they
  rated), weighted by each reviewer's reliability (`reviewer_reliability`), its effective
  rating count and the pooled residual variance;
- generations with ratings and reviews (a review = one reviewer's ratings of one generation);
- issue signals: for each category, and for each frequent word of free-text notes (as
  `other:<word>`), how many reviews reported it;
- generation outcomes: counts, failures, mean log seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from improvements.search.issue_signals import note_tokens
from improvements.search.observations import Observations
from improvements.search.reviewer_reliability import reliability_weights, weights_of
from improvements.stats import corrected_means

# A note word becomes its own signal once this many reviews used it.
MIN_TOKEN_REPORTS = 3


@dataclass(frozen=True)
class Evidence:
    revisions: NDArray[np.int64]  # ids, in the row order of every array below
    params: tuple[Mapping[str, Any], ...]
    dimensions: tuple[str, ...]
    mean: NDArray[np.float64]  # (R, D) corrected means, nan without ratings
    n_ratings: NDArray[np.float64]  # (R, D)
    residual_var: NDArray[np.float64]  # (D,) pooled residual variance of one rating
    n_rated_generations: NDArray[np.float64]  # (R,)
    n_reviews: NDArray[np.float64]  # (R,)
    signals: Mapping[str, NDArray[np.float64]]  # signal -> reviews reporting it, per revision
    n_generations: NDArray[np.float64]  # (R,) finished or failed
    n_failed: NDArray[np.float64]
    log_seconds: NDArray[np.float64]  # (R,) mean over successful generations, nan if none
    log_seconds_var: float  # pooled within-revision variance of log seconds
    n_timed: NDArray[np.float64]

    def row(self, revision: int) -> int:
        """Row of a revision id, or -1."""
        hit = np.flatnonzero(self.revisions == revision)
        return int(hit[0]) if hit.size else -1


def evidence_gather(obs: Observations) -> Evidence:
    ids = np.array(sorted(obs.revisions), dtype=np.int64)
    n_rev, n_dims = ids.size, len(obs.dimensions)
    r = obs.ratings
    row_of = _row_lookup(ids)
    mean = np.full((n_rev, n_dims), np.nan)
    n_ratings = np.zeros((n_rev, n_dims))
    residual_var = np.full(n_dims, np.nan)
    rating_row = row_of(r.revision)
    if r.value.size:
        reviewers, reviewer_idx = np.unique(r.reviewer, return_inverse=True)
        reviewer_idx = reviewer_idx.ravel()
        corrected = np.full(r.value.size, np.nan)  # each rating minus its reviewer's offset
        residual = np.full(r.value.size, np.nan)
        for d in range(n_dims):
            mask = r.dimension == d
            if mask.sum() < 2:
                continue
            fit = corrected_means(
                rating_row[mask],
                reviewer_idx[mask],
                r.value[mask],
                n_revisions=n_rev,
                n_reviewers=reviewers.size,
            )
            corrected[mask] = r.value[mask] - fit.reviewer_offset[reviewer_idx[mask]]
            residual[mask] = fit.residuals(rating_row[mask], reviewer_idx[mask], r.value[mask])
            residual_var[d] = fit.residual_sd**2
        # The revision means are the reliability-weighted means of the corrected ratings (the
        # unweighted ones are exactly the offset model's means); `n_ratings` is then the
        # effective count, so residual_var / n_ratings stays the variance of the mean.
        fitted = np.isfinite(corrected)
        w = weights_of(r.reviewer, reliability_weights(r.reviewer[fitted], residual[fitted]))
        cell = rating_row[fitted] * n_dims + r.dimension[fitted]
        total_w = np.bincount(cell, weights=w[fitted], minlength=n_rev * n_dims)
        total = np.bincount(cell, weights=(w * corrected)[fitted], minlength=n_rev * n_dims)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(total_w > 0, total / total_w, np.nan).reshape(n_rev, n_dims)
        n_ratings = total_w.reshape(n_rev, n_dims)
    pooled = np.nanmean(residual_var) if np.isfinite(residual_var).any() else 1.0
    residual_var = np.where(np.isfinite(residual_var), residual_var, pooled)

    # Reviews and rated generations, from distinct (generation, reviewer) pairs.
    n_reviews = np.zeros(n_rev)
    n_rated = np.zeros(n_rev)
    if r.value.size:
        review_keys, first = np.unique(
            np.stack([r.generation, r.reviewer], axis=1), axis=0, return_index=True
        )
        n_reviews = np.bincount(rating_row[first], minlength=n_rev).astype(float)
        gens, gen_first = np.unique(r.generation, return_index=True)
        n_rated = np.bincount(rating_row[gen_first], minlength=n_rev).astype(float)

    signals = _signals(obs, row_of, n_rev)

    g = obs.generations
    g_row = row_of(g.revision)
    n_generations = np.bincount(g_row, minlength=n_rev).astype(float)
    n_failed = np.bincount(g_row, weights=g.failed.astype(float), minlength=n_rev)
    timed = ~g.failed & np.isfinite(g.seconds) & (g.seconds > 0)
    logs = np.log(np.where(timed, g.seconds, 1.0))
    n_timed = np.bincount(g_row[timed], minlength=n_rev).astype(float)
    sum_log = np.bincount(g_row[timed], weights=logs[timed], minlength=n_rev)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_seconds = np.where(n_timed > 0, sum_log / np.maximum(n_timed, 1), np.nan)
    if timed.sum() > n_timed.astype(bool).sum():
        within = logs[timed] - log_seconds[g_row[timed]]
        log_var = float(np.sum(within**2) / max(timed.sum() - (n_timed > 0).sum(), 1))
    else:
        log_var = 0.04
    return Evidence(
        revisions=ids,
        params=tuple(obs.revisions[int(i)] for i in ids),
        dimensions=tuple(obs.dimensions),
        mean=mean,
        n_ratings=n_ratings,
        residual_var=residual_var,
        n_rated_generations=n_rated,
        n_reviews=n_reviews,
        signals=signals,
        n_generations=n_generations,
        n_failed=n_failed,
        log_seconds=log_seconds,
        log_seconds_var=max(log_var, 1e-4),
        n_timed=n_timed,
    )


def _row_lookup(ids: NDArray[np.int64]):  # noqa: ANN202 - a small closure
    def lookup(values: NDArray[np.int64]) -> NDArray[np.int64]:
        pos = np.searchsorted(ids, values)
        pos = np.clip(pos, 0, max(ids.size - 1, 0))
        if ids.size == 0 or np.any(ids[pos] != values):
            raise ValueError("feedback refers to a revision missing from Observations.revisions")
        return pos

    return lookup


def _signals(obs: Observations, row_of, n_rev: int) -> dict[str, NDArray[np.float64]]:  # noqa: ANN001
    """Reviews reporting each category (and each frequent note word), per revision."""
    iss = obs.issues
    if not iss.category:
        return {}
    rows = row_of(iss.revision)
    # One review reporting a category twice counts once.
    seen: dict[str, set[tuple[int, int]]] = {}
    per_row: dict[str, NDArray[np.float64]] = {}
    token_reviews: dict[str, set[tuple[int, int]]] = {}
    for i, category in enumerate(iss.category):
        key = (int(iss.generation[i]), int(iss.reviewer[i]))
        if key not in seen.setdefault(category, set()):
            seen[category].add(key)
            per_row.setdefault(category, np.zeros(n_rev))[rows[i]] += 1
        # In sorted order: a set of strings iterates in an order that changes with the
        # process's hash seed, and the signals' order reaches the model's fit.
        for token in sorted(note_tokens(iss.note[i])):
            signal = f"other:{token}"
            if key not in token_reviews.setdefault(signal, set()):
                token_reviews[signal].add(key)
                per_row.setdefault(signal, np.zeros(n_rev))[rows[i]] += 1
    return {
        name: counts
        for name, counts in per_row.items()
        if not name.startswith("other:") or counts.sum() >= MIN_TOKEN_REPORTS
    }
