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


@dataclass(frozen=True)
class ArmData:
    arm_values: NDArray[np.float64]
    control_values: NDArray[np.float64]
    arm_counts: ArmCounts
    control_counts: ArmCounts


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
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0))
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
    sums = np.bincount(gen_idx.ravel(), weights=review_value, minlength=gens.size)
    counts = np.bincount(gen_idx.ravel(), minlength=gens.size)
    return gens, sums / counts


def arm_data(obs: Observations, arm: Arm, objective: Mapping[str, float]) -> ArmData:
    g = obs.generations
    after = g.time > arm.opened
    offsets = reviewer_offsets(obs, arm.opened, objective)
    arm_gens = after & (g.revision == arm.revision)
    control_gens = after & (g.revision == arm.control)
    _, arm_values = generation_values(obs, g.id[arm_gens & ~g.failed], objective, offsets)
    _, control_values = generation_values(obs, g.id[control_gens & ~g.failed], objective, offsets)
    return ArmData(
        arm_values=arm_values,
        control_values=control_values,
        arm_counts=_counts(obs, arm_gens),
        control_counts=_counts(obs, control_gens),
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
