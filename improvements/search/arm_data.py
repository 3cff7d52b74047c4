"""The data of one challenger's test: per-generation objective values of the arm and of the
concurrent control, with reviewer offsets frozen when the arm opened, and guardrail counts.

- Only generations created after the arm opened count, for both arms (a concurrent control:
  whatever else changes over time - prompts, the reviewer pool - changes for both).
- Each review's objective value is the weighted mean of its objective dimensions, each rating
  minus its reviewer's offset. Offsets are fitted on the ratings given *before* the arm opened
  (`corrected_means` with a ridge worth `OFFSET_SHRINKAGE` ratings, clipped to +-OFFSET_CLIP),
  so they are fixed before the test's first rating and the test stays valid; a reviewer new
  since then gets 0. Removing leniency this way takes most of the between-reviewer spread out
  of the comparison.
- A generation's value is the mean of its reviews: reviews of one video share that video's
  luck, so the unit of the test is the generation.
- A generation with more reviews is measured more precisely: with intraclass correlation r
  (the share of a review's variance that is the video's own luck, shared by its reviews), the
  mean of k reviews has variance proportional to (1 + (k - 1) r) / k. Its weight in the test
  is the inverse, k / (1 + (k - 1) r), with r estimated from ratings before the arm opened
  (fixed before the test, like the offsets; a generation's review count does not depend on
  its ratings, so the weights keep the test's martingale structure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from improvements.search.observations import Arm, Observations
from improvements.stats import ArmCounts, corrected_means

OFFSET_SHRINKAGE = 3.0
OFFSET_CLIP = 1.0
# Without enough generations with several reviews to estimate it, r = 1: equal weights.
MIN_ICC_GENERATIONS = 20
ICC_FLOOR = 0.1  # never weigh a 3-review generation more than 2.5 single-review ones


@dataclass(frozen=True)
class ArmData:
    arm_values: NDArray[np.float64]
    control_values: NDArray[np.float64]
    arm_counts: ArmCounts
    control_counts: ArmCounts
    arm_weights: NDArray[np.float64] | None = None  # relative precision of each value
    control_weights: NDArray[np.float64] | None = None


def objective_columns(
    dimensions: tuple[str, ...], objective: Mapping[str, float]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    idx = np.array([dimensions.index(d) for d in objective], dtype=np.int64)
    w = np.array([objective[d] for d in objective], dtype=np.float64)
    return idx, w / w.sum()


def reviewer_offsets(
    obs: Observations, before: float, objective: Mapping[str, float]
) -> dict[int, dict[int, float]]:
    """dimension index -> {reviewer id: offset} from ratings that arrived before `before`."""
    r = obs.ratings
    out: dict[int, dict[int, float]] = {}
    dims, _ = objective_columns(obs.dimensions, objective)
    early = r.time < before
    for d in dims:
        mask = early & (r.dimension == d)
        if mask.sum() < 2:
            out[int(d)] = {}
            continue
        revisions, rev_idx = np.unique(r.revision[mask], return_inverse=True)
        reviewers, rvw_idx = np.unique(r.reviewer[mask], return_inverse=True)
        fit = corrected_means(
            rev_idx.ravel(),
            rvw_idx.ravel(),
            r.value[mask],
            n_revisions=revisions.size,
            n_reviewers=reviewers.size,
            shrinkage=OFFSET_SHRINKAGE,
        )
        offsets = np.clip(np.nan_to_num(fit.reviewer_offset), -OFFSET_CLIP, OFFSET_CLIP)
        out[int(d)] = {int(j): float(o) for j, o in zip(reviewers, offsets, strict=True)}
    return out


def generation_values(
    obs: Observations,
    generation_ids: NDArray[np.int64],
    objective: Mapping[str, float],
    offsets: Mapping[int, Mapping[int, float]] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(generation ids, objective values) of the listed generations with a complete review."""
    gens, values, _ = generation_reviews(obs, generation_ids, objective, offsets)
    return gens, values


def generation_reviews(
    obs: Observations,
    generation_ids: NDArray[np.int64],
    objective: Mapping[str, float],
    offsets: Mapping[int, Mapping[int, float]] | None = None,
    *,
    spread: bool = False,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """(generation ids, mean objective value, number of complete reviews); with `spread`, the
    third column is the sum of squared deviations of the reviews from their generation's mean
    instead of the count (for the intraclass correlation)."""
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
    if generation_ids.size == 0:
        return empty
    r = obs.ratings
    dims, weights = objective_columns(obs.dimensions, objective)
    mask = np.isin(r.generation, generation_ids) & np.isin(r.dimension, dims)
    if not mask.any():
        return empty
    gen, rvw, dim, val = r.generation[mask], r.reviewer[mask], r.dimension[mask], r.value[mask]
    if offsets:
        shift = np.zeros(val.size)
        for d, by_reviewer in offsets.items():
            rows = np.flatnonzero(dim == d)
            if by_reviewer and rows.size:
                shift[rows] = [by_reviewer.get(int(j), 0.0) for j in rvw[rows]]
        val = val - shift
    weight_of_dim = np.zeros(int(dims.max()) + 1)
    weight_of_dim[dims] = weights
    reviews, review_idx = np.unique(np.stack([gen, rvw], axis=1), axis=0, return_inverse=True)
    review_idx = review_idx.ravel()
    n_reviews = reviews.shape[0]
    total = np.bincount(review_idx, weights=val * weight_of_dim[dim], minlength=n_reviews)
    covered = np.bincount(review_idx, weights=weight_of_dim[dim], minlength=n_reviews)
    complete = covered > 1 - 1e-9
    review_value = total[complete]  # weights sum to 1 over a complete review
    review_gen = reviews[complete, 0]
    gens, gen_idx = np.unique(review_gen, return_inverse=True)
    gen_idx = gen_idx.ravel()
    sums = np.bincount(gen_idx, weights=review_value, minlength=gens.size)
    counts = np.bincount(gen_idx, minlength=gens.size).astype(np.float64)
    means = sums / counts
    if spread:
        squares = np.bincount(
            gen_idx, weights=(review_value - means[gen_idx]) ** 2, minlength=gens.size
        )
        return gens, means, np.stack([counts, squares], axis=1)
    return gens, means, counts


def review_correlation(
    obs: Observations,
    before: float,
    objective: Mapping[str, float],
    offsets: Mapping[int, Mapping[int, float]] | None = None,
) -> float:
    """Intraclass correlation of reviews of one generation, from generations before `before`.

    One-way analysis of variance within revisions: the within-generation variance from
    generations with several reviews, the generation-to-generation variance from the spread of
    generation means around their revision's mean, less the review noise they carry.
    """
    g = obs.generations
    ids = g.id[(g.time < before) & ~g.failed]
    gens, means, stats = generation_reviews(obs, ids, objective, offsets, spread=True)
    if gens.size == 0:
        return 1.0
    counts, squares = stats[:, 0], stats[:, 1]
    multi = counts > 1
    if multi.sum() < MIN_ICC_GENERATIONS:
        return 1.0
    within = float(squares[multi].sum() / (counts[multi] - 1).sum())
    order = np.argsort(g.id)
    revision = g.revision[order][np.searchsorted(g.id[order], gens)]
    _, rev_idx = np.unique(revision, return_inverse=True)
    rev_idx = rev_idx.ravel()
    rev_means = np.bincount(rev_idx, weights=means) / np.bincount(rev_idx)
    dof = gens.size - rev_means.size
    if dof < MIN_ICC_GENERATIONS or within <= 0:
        return 1.0
    between = float(np.sum((means - rev_means[rev_idx]) ** 2) / dof)
    luck = max(between - within * float(np.mean(1.0 / counts)), 0.0)
    return float(min(max(luck / (luck + within), ICC_FLOOR), 1.0))


def precision_weights(counts: NDArray[np.float64], icc: float) -> NDArray[np.float64]:
    """Relative precision of the mean of `counts` reviews (1 for a single review)."""
    return counts / (1.0 + (counts - 1.0) * icc)


def arm_data(obs: Observations, arm: Arm, objective: Mapping[str, float]) -> ArmData:
    g = obs.generations
    after = g.time > arm.opened
    offsets = reviewer_offsets(obs, arm.opened, objective)
    icc = review_correlation(obs, arm.opened, objective, offsets)
    arm_gens = after & (g.revision == arm.revision)
    control_gens = after & (g.revision == arm.control)
    _, arm_values, arm_n = generation_reviews(obs, g.id[arm_gens & ~g.failed], objective, offsets)
    _, control_values, control_n = generation_reviews(
        obs, g.id[control_gens & ~g.failed], objective, offsets
    )
    return ArmData(
        arm_values=arm_values,
        control_values=control_values,
        arm_counts=_counts(obs, arm_gens),
        control_counts=_counts(obs, control_gens),
        arm_weights=precision_weights(arm_n, icc),
        control_weights=precision_weights(control_n, icc),
    )


def _counts(obs: Observations, mask: NDArray[np.bool_]) -> ArmCounts:
    g = obs.generations
    ids = g.id[mask]
    ok = mask & ~g.failed & np.isfinite(g.seconds)
    reviewed = np.unique(obs.ratings.generation[np.isin(obs.ratings.generation, ids)])
    with_issue = np.unique(obs.issues.generation[np.isin(obs.issues.generation, reviewed)])
    return ArmCounts(
        n_generations=int(mask.sum()),
        n_failed=int((mask & g.failed).sum()),
        mean_generation_seconds=float(g.seconds[ok].mean()) if ok.any() else None,
        n_reviewed=int(reviewed.size),
        n_with_issue_report=int(with_issue.size),
    )


def unit_variance(obs: Observations, objective: Mapping[str, float]) -> float:
    """Pooled within-revision variance of generation values: the test's prior variance.

    Values are offset-corrected like the tests' (offsets from all ratings so far), so the prior
    matches the variance the tests actually see rather than inflating it with leniency.
    """
    g = obs.generations
    ok = ~g.failed
    offsets = reviewer_offsets(obs, np.inf, objective)
    gens, values = generation_values(obs, g.id[ok], objective, offsets)
    if values.size < 5:
        return 1.0
    order = np.argsort(g.id)
    revision = g.revision[order][np.searchsorted(g.id[order], gens)]
    _, rev_idx = np.unique(revision, return_inverse=True)
    rev_idx = rev_idx.ravel()
    means = np.bincount(rev_idx, weights=values) / np.bincount(rev_idx)
    resid = values - means[rev_idx]
    dof = values.size - means.size
    return float(np.sum(resid**2) / dof) if dof > 3 else float(np.var(values))
