"""The data of one challenger's test: per-generation objective values of the arm and of the
control, with reviewer offsets frozen when the arm opened, and guardrail counts.

- The arm's generations created after it opened count. The control's count too (a concurrent
  control: whatever else changes over time - prompts, the reviewer pool - changes for both),
  plus up to `control_history` of its most recent generations from *before* the arm opened: the
  same configuration, so the same distribution, and a control that has been measured for a
  while needs little new traffic. The test stays a nested sequence of means (the control's
  history is simply its first values), which is all its always-valid guarantee needs.
- Each review's objective value is the weighted mean of its objective dimensions, each rating
  minus its reviewer's offset. Offsets are fitted on the ratings given *before* the arm opened
  (`corrected_means` with a ridge worth `OFFSET_SHRINKAGE` ratings, clipped to +-OFFSET_CLIP),
  so they are fixed before the test's first rating and the test stays valid; a reviewer new
  since then gets 0. Removing leniency this way takes most of the between-reviewer spread out
  of the comparison.
- With the control's history in the test, only reviewers who had rated before the arm opened
  count (`ReviewerCorrections.known`), on both sides. A reviewer new since then has no frozen
  offset; the concurrent generations share their leniency between the arms, but the history
  never saw them, so a lenient cohort joining the panel after the arm opened would raise the
  arm against the control's history (200 null experiments with 20 joiners 0.5 points lenient:
  21% promoted with them, within alpha without). They count in the next arm's test.
- Each review also carries its reviewer's reliability weight (`reviewer_reliability`), fitted
  on the same early ratings: a generation's value is the weighted mean of its reviews (reviews
  of one video share that video's luck, so the unit of the test is the generation) and its
  weight is the sum of theirs. The test weights generations by it; the weights depend only on
  who reviewed, not on what they rated after the arm opened, so the means stay unbiased.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from improvements.search.observations import Arm, Observations
from improvements.search.reviewer_reliability import reliability_weights, weights_of
from improvements.stats import ArmCounts, corrected_means

OFFSET_SHRINKAGE = 3.0
OFFSET_CLIP = 1.0


@dataclass(frozen=True)
class ArmData:
    arm_values: NDArray[np.float64]
    control_values: NDArray[np.float64]
    arm_weights: NDArray[np.float64]  # each generation's reliability weight
    control_weights: NDArray[np.float64]
    arm_counts: ArmCounts
    control_counts: ArmCounts
    n_control_history: int = 0  # control values from generations made before the arm opened
    n_reviews_left_out: int = 0  # by reviewers new since the arm opened (with the history)


def objective_columns(
    dimensions: tuple[str, ...], objective: Mapping[str, float]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    idx = np.array([dimensions.index(d) for d in objective], dtype=np.int64)
    w = np.array([objective[d] for d in objective], dtype=np.float64)
    return idx, w / w.sum()


@dataclass(frozen=True)
class ReviewerCorrections:
    """What the ratings given before a time say about each reviewer."""

    offsets: dict[int, dict[int, float]]  # objective dimension index -> {reviewer: offset}
    weights: dict[int, float]  # reviewer -> relative weight of one rating (1 = the pool)

    @property
    def known(self) -> NDArray[np.int64]:
        """Reviewers who rated an objective dimension before the time: their offsets are
        estimates, everyone else's is 0."""
        return np.array(sorted({j for by_reviewer in self.offsets.values() for j in by_reviewer}))


def reviewer_corrections(
    obs: Observations, before: float, objective: Mapping[str, float]
) -> ReviewerCorrections:
    """Offsets (objective dimensions) and reliability weights (all dimensions) from the ratings
    that arrived before `before`."""
    r = obs.ratings
    objective_dims, _ = objective_columns(obs.dimensions, objective)
    early = r.time < before
    offsets: dict[int, dict[int, float]] = {int(d): {} for d in objective_dims}
    residual_reviewer: list[np.ndarray] = []
    residuals: list[np.ndarray] = []
    for d in np.unique(r.dimension[early]):
        mask = early & (r.dimension == d)
        if mask.sum() < 2:
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
        residual_reviewer.append(r.reviewer[mask])
        residuals.append(fit.residuals(rev_idx, rvw_idx, r.value[mask]))
        if int(d) in offsets:
            clipped = np.clip(np.nan_to_num(fit.reviewer_offset), -OFFSET_CLIP, OFFSET_CLIP)
            offsets[int(d)] = {int(j): float(o) for j, o in zip(reviewers, clipped, strict=True)}
    weights = (
        reliability_weights(np.concatenate(residual_reviewer), np.concatenate(residuals))
        if residuals
        else {}
    )
    return ReviewerCorrections(offsets, weights)


@dataclass(frozen=True)
class GenerationValues:
    ids: NDArray[np.int64]
    values: NDArray[np.float64]  # reliability-weighted mean of the generation's reviews
    weights: NDArray[np.float64]  # sum of its reviews' reliability weights
    left_out: int = 0  # reviews not counted: their reviewer was not known (`known_only`)

    @classmethod
    def empty(cls, left_out: int = 0) -> GenerationValues:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), left_out)


def generation_values(
    obs: Observations,
    generation_ids: NDArray[np.int64],
    objective: Mapping[str, float],
    corrections: ReviewerCorrections | None = None,
    *,
    known_only: bool = False,
) -> GenerationValues:
    """Objective values of the listed generations that have a complete review; `known_only`:
    of the reviews by reviewers the corrections know."""
    if generation_ids.size == 0:
        return GenerationValues.empty()
    r = obs.ratings
    dims, weights = objective_columns(obs.dimensions, objective)
    mask = np.isin(r.generation, generation_ids) & np.isin(r.dimension, dims)
    if not mask.any():
        return GenerationValues.empty()
    left_out = 0
    if known_only and corrections is not None:
        unknown = mask & ~np.isin(r.reviewer, corrections.known)
        reviews_out = np.unique(np.stack([r.generation[unknown], r.reviewer[unknown]]), axis=1)
        left_out = reviews_out.shape[1]
        mask &= ~unknown
        if not mask.any():
            return GenerationValues.empty(left_out)
    gen, rvw, dim, val = r.generation[mask], r.reviewer[mask], r.dimension[mask], r.value[mask]
    if corrections is not None:
        shift = np.zeros(val.size)
        for d, by_reviewer in corrections.offsets.items():
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
    review_gen, review_reviewer = reviews[complete, 0], reviews[complete, 1]
    review_weight = weights_of(review_reviewer, corrections.weights if corrections else {})
    gens, gen_idx = np.unique(review_gen, return_inverse=True)
    gen_idx = gen_idx.ravel()
    sums = np.bincount(gen_idx, weights=review_weight * review_value, minlength=gens.size)
    gen_weight = np.bincount(gen_idx, weights=review_weight, minlength=gens.size)
    return GenerationValues(gens, sums / gen_weight, gen_weight, left_out)


def arm_data(
    obs: Observations, arm: Arm, objective: Mapping[str, float], control_history: int = 0
) -> ArmData:
    g = obs.generations
    after = g.time > arm.opened
    corrections = reviewer_corrections(obs, arm.opened, objective)
    arm_gens = after & (g.revision == arm.revision)
    control_gens = after & (g.revision == arm.control)
    if control_history > 0:
        before = np.flatnonzero(~after & (g.revision == arm.control))
        history = before[np.argsort(g.time[before], kind="stable")][-control_history:]
        control_gens[history] = True
    # With the history, only reviewers known at opening count (see the module's docstring).
    known_only = control_history > 0
    arm_values = generation_values(
        obs, g.id[arm_gens & ~g.failed], objective, corrections, known_only=known_only
    )
    control_values = generation_values(
        obs, g.id[control_gens & ~g.failed], objective, corrections, known_only=known_only
    )
    return ArmData(
        arm_values=arm_values.values,
        control_values=control_values.values,
        arm_weights=arm_values.weights,
        control_weights=control_values.weights,
        arm_counts=_counts(obs, arm_gens),
        control_counts=_counts(obs, control_gens),
        n_control_history=int(np.isin(control_values.ids, g.id[control_gens & ~after]).sum()),
        n_reviews_left_out=arm_values.left_out + control_values.left_out,
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
    """Pooled within-revision variance of a generation value of weight 1: the test's prior.

    Values are corrected and weighted like the tests' (offsets and weights from all ratings so
    far), so the prior matches the variance the tests actually see rather than inflating it with
    leniency; a generation of weight w has variance ~ this / w.
    """
    g = obs.generations
    ok = ~g.failed
    gv = generation_values(obs, g.id[ok], objective, reviewer_corrections(obs, np.inf, objective))
    if gv.values.size < 5:
        return 1.0
    order = np.argsort(g.id)
    revision = g.revision[order][np.searchsorted(g.id[order], gv.ids)]
    _, rev_idx = np.unique(revision, return_inverse=True)
    rev_idx = rev_idx.ravel()
    w = gv.weights
    means = np.bincount(rev_idx, weights=w * gv.values) / np.bincount(rev_idx, weights=w)
    resid = gv.values - means[rev_idx]
    dof = gv.values.size - means.size
    if dof <= 3:
        return float(np.var(gv.values))
    # E[w^2 r^2] = w * phi for a value of variance phi / w (the sandwich form of the test).
    return float(np.sum(w * w * resid**2) / np.sum(w) * gv.values.size / dof)
