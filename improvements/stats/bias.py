"""Reviewer-bias-corrected mean rating per revision, with 95% intervals.

Model (the additive subject-bias model of ITU-T P.910 / P.1401, fitted by ridge least squares):

    value_i = mu[revision_i] + b[reviewer_i] + e_i

`mu` is what a revision would score from the panel's average reviewer, `b` a reviewer's offset
(a harsh reviewer has b < 0). The offsets carry a small ridge penalty `shrinkage * b**2`
(default 0.1 pseudo-ratings at offset 0). It makes every design solvable (a reviewer who rated one
revision, a revision rated only by reviewers nobody else saw, reviewers with no ratings) while
biasing an offset by only shrinkage / (n + shrinkage) of itself. A larger, random-effects-style
penalty would narrow the intervals a little but bias the corrected means whenever reviewers are
unevenly spread over revisions, which is exactly when correction matters; in simulation that cost
several points of interval coverage, so it is not the default. With one common penalty the fitted
offsets sum to exactly zero within each connected group of revisions and reviewers, which is what
pins `mu` to "the panel's average reviewer".

Everything is computed from per-(revision, reviewer) cell sums, so the cost after one bincount
pass over the ratings depends on the number of cells, not on the number of ratings. The reviewer
offsets are eliminated analytically (their block of the normal equations is diagonal), leaving a
dense revisions x revisions system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.stats
from numpy.typing import ArrayLike, NDArray

# Above this many possible (revision, reviewer) cells the cells are found by sorting instead of a
# dense bincount, so memory stays proportional to the number of ratings.
_DENSE_CELL_LIMIT = 4_000_000
# Prior degrees of freedom given to the pooled residual variance when estimating each
# revision's own variance: a revision with few ratings borrows the pooled value, one with
# thousands uses its own (a broken revision rated 1 by everyone has a much smaller spread).
_POOLED_VARIANCE_DF = 4.0
_CELL_CHUNK = 1 << 18


@dataclass(frozen=True)
class CorrectedMeans:
    """Per-revision and per-reviewer results; arrays are indexed by revision / reviewer index.

    Revisions without ratings have nan means and intervals; intervals are nan when the data
    leave no residual degrees of freedom.
    """

    mean: NDArray[np.float64]
    ci_low: NDArray[np.float64]
    ci_high: NDArray[np.float64]
    std_error: NDArray[np.float64]
    raw_mean: NDArray[np.float64]
    n: NDArray[np.int64]
    n_reviewers: NDArray[np.int64]
    reviewer_offset: NDArray[np.float64]
    reviewer_n: NDArray[np.int64]
    residual_sd: float
    shrinkage: float
    level: float

    def residuals(
        self, revision: ArrayLike, reviewer: ArrayLike, value: ArrayLike
    ) -> NDArray[np.float64]:
        """Each rating minus its revision's corrected mean and its reviewer's offset (the
        indices and ratings the model was fitted on)."""
        revision_idx = np.asarray(revision, dtype=np.int64).ravel()
        reviewer_idx = np.asarray(reviewer, dtype=np.int64).ravel()
        y = np.asarray(value, dtype=np.float64).ravel()
        return y - self.mean[revision_idx] - self.reviewer_offset[reviewer_idx]

    def revision_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per revision with ratings (nan becomes None)."""

        def clean(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return [
            {
                "revision": int(r),
                "mean": clean(self.mean[r]),
                "ci_low": clean(self.ci_low[r]),
                "ci_high": clean(self.ci_high[r]),
                "std_error": clean(self.std_error[r]),
                "raw_mean": clean(self.raw_mean[r]),
                "n": int(self.n[r]),
                "n_reviewers": int(self.n_reviewers[r]),
            }
            for r in np.flatnonzero(self.n)
        ]


@dataclass(frozen=True)
class _Cells:
    revision: NDArray[np.int64]
    reviewer: NDArray[np.int64]
    count: NDArray[np.float64]
    total: NDArray[np.float64]
    total_sq: NDArray[np.float64]


@dataclass(frozen=True)
class _Fit:
    mu: NDArray[np.float64]  # per present revision
    offset: NDArray[np.float64]  # per reviewer
    schur_inverse: NDArray[np.float64]  # (present revisions)^2
    # leak[:, j] = S^-1 N[:, j] / (n_j + shrinkage): how reviewer j's ratings move each
    # revision's estimate through the offset (they enter with a minus sign).
    leak: NDArray[np.float64]
    reviewer_weight: NDArray[np.float64]  # 1 / (n_j + shrinkage)
    cell_rss: NDArray[np.float64]
    effective_params: float


def corrected_means(
    revision: ArrayLike,
    reviewer: ArrayLike,
    value: ArrayLike,
    *,
    n_revisions: int | None = None,
    n_reviewers: int | None = None,
    generation: ArrayLike | None = None,
    shrinkage: float = 0.1,
    level: float = 0.95,
) -> CorrectedMeans:
    """Fit the additive reviewer-offset model for one rating dimension.

    `revision`, `reviewer` are 0-based integer indices, `value` the ratings, all of one length.
    Keep the indices compact (0..R-1, 0..J-1): one R x J dense matrix is part of the solution.
    `shrinkage` is the ridge weight on the offsets, in ratings.

    Intervals: t intervals from the exact sampling variance of the ridge estimator for this
    design, with a per-revision residual variance moderated towards the pooled one. Ratings of one
    generation share that video's quality, so they are not independent draws of the revision's
    quality; pass `generation` (one id per rating) to widen the intervals with a cluster-robust
    (by generation) variance — they are never made narrower than the model-based ones.
    """
    revision_idx = _as_index(revision, "revision")
    reviewer_idx = _as_index(reviewer, "reviewer")
    y = np.asarray(value, dtype=np.float64)
    if not (revision_idx.shape == reviewer_idx.shape == y.shape) or y.ndim != 1:
        raise ValueError("revision, reviewer and value must be 1-d arrays of one length")
    if not np.all(np.isfinite(y)):
        raise ValueError("ratings must be finite")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    if not shrinkage > 0:
        raise ValueError("shrinkage must be positive")
    gen_idx = None
    if generation is not None:
        gen_idx = np.unique(np.asarray(generation), return_inverse=True)[1].ravel()
        if gen_idx.shape != y.shape:
            raise ValueError("generation must have one entry per rating")

    n_rev = _size(n_revisions, revision_idx, "n_revisions")
    n_rvw = _size(n_reviewers, reviewer_idx, "n_reviewers")
    if y.size == 0:
        return _empty_result(n_rev, n_rvw, shrinkage, level)
    cells = _aggregate_cells(revision_idx, reviewer_idx, y, n_rvw)

    n_per_revision = np.bincount(cells.revision, cells.count, n_rev)
    sum_per_revision = np.bincount(cells.revision, cells.total, n_rev)
    reviewer_n = np.bincount(cells.reviewer, cells.count, n_rvw)
    reviewer_sum = np.bincount(cells.reviewer, cells.total, n_rvw)
    present = np.flatnonzero(n_per_revision)
    compact = np.full(n_rev, -1, dtype=np.int64)
    compact[present] = np.arange(present.size)
    cell_rev = compact[cells.revision]
    counts = scipy.sparse.csr_matrix(
        (cells.count, (cell_rev, cells.reviewer)), shape=(present.size, n_rvw)
    )

    n_total = y.size
    model = _solve(
        shrinkage,
        counts,
        cells,
        cell_rev,
        n_per_revision[present],
        sum_per_revision[present],
        reviewer_n,
        reviewer_sum,
    )

    df_resid = n_total - model.effective_params
    pooled_var = model.cell_rss.sum() / df_resid if df_resid >= 1 else np.nan
    std_error = np.full(present.size, np.nan)
    df = np.full(present.size, np.nan)
    if np.isfinite(pooled_var):
        rss_rev = np.bincount(cell_rev, model.cell_rss, present.size)
        prior_df = min(_POOLED_VARIANCE_DF, df_resid)
        df_rev = n_per_revision[present] * df_resid / n_total
        var_rev = (rss_rev + prior_df * pooled_var) / (df_rev + prior_df)
        df = np.minimum(df_rev + prior_df, df_resid)
        std_error = np.sqrt(_model_variance(model, cells, cell_rev, var_rev))
        if gen_idx is not None:
            residual = y - model.mu[compact[revision_idx]] - model.offset[reviewer_idx]
            clustered, n_clusters = _cluster_variance(
                model, compact[revision_idx], reviewer_idx, gen_idx, residual
            )
            usable = n_clusters >= 2
            std_error[usable] = np.maximum(std_error[usable], np.sqrt(clustered[usable]))
            df[usable] = np.minimum(df[usable], n_clusters[usable] - 1)

    quantile = np.full(present.size, np.nan)
    ok = np.isfinite(df)
    quantile[ok] = scipy.stats.t.ppf(0.5 + level / 2, df[ok])

    mean = np.full(n_rev, np.nan)
    mean[present] = model.mu
    se_full = np.full(n_rev, np.nan)
    se_full[present] = std_error
    half = np.full(n_rev, np.nan)
    half[present] = quantile * std_error
    raw_mean = np.full(n_rev, np.nan)
    raw_mean[present] = sum_per_revision[present] / n_per_revision[present]
    return CorrectedMeans(
        mean=mean,
        ci_low=mean - half,
        ci_high=mean + half,
        std_error=se_full,
        raw_mean=raw_mean,
        n=n_per_revision.astype(np.int64),
        n_reviewers=np.bincount(cells.revision, minlength=n_rev).astype(np.int64),
        reviewer_offset=model.offset,
        reviewer_n=reviewer_n.astype(np.int64),
        residual_sd=float(np.sqrt(pooled_var)),
        shrinkage=float(shrinkage),
        level=level,
    )


def _empty_result(n_rev: int, n_rvw: int, shrinkage: float, level: float) -> CorrectedMeans:
    nan = np.full(n_rev, np.nan)
    return CorrectedMeans(
        mean=nan,
        ci_low=nan.copy(),
        ci_high=nan.copy(),
        std_error=nan.copy(),
        raw_mean=nan.copy(),
        n=np.zeros(n_rev, dtype=np.int64),
        n_reviewers=np.zeros(n_rev, dtype=np.int64),
        reviewer_offset=np.zeros(n_rvw),
        reviewer_n=np.zeros(n_rvw, dtype=np.int64),
        residual_sd=np.nan,
        shrinkage=shrinkage,
        level=level,
    )


def _as_index(values: ArrayLike, name: str) -> NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} indices must be >= 0")
    return arr


def _size(given: int | None, idx: NDArray[np.int64], name: str) -> int:
    needed = int(idx.max()) + 1 if idx.size else 0
    if given is None:
        return needed
    if given < needed:
        raise ValueError(f"{name}={given} but an index {needed - 1} occurs")
    return given


def _aggregate_cells(
    revision: NDArray[np.int64],
    reviewer: NDArray[np.int64],
    y: NDArray[np.float64],
    n_reviewers: int,
) -> _Cells:
    key = revision * n_reviewers + reviewer
    n_keys = (int(revision.max()) + 1) * n_reviewers
    if n_keys <= _DENSE_CELL_LIMIT:
        count = np.bincount(key, minlength=n_keys)
        cell_key = np.flatnonzero(count)
        count = count[cell_key].astype(np.float64)
        total = np.bincount(key, y, n_keys)[cell_key]
        total_sq = np.bincount(key, y * y, n_keys)[cell_key]
    else:
        cell_key, of_rating = np.unique(key, return_inverse=True)
        of_rating = of_rating.ravel()
        count = np.bincount(of_rating, minlength=cell_key.size).astype(np.float64)
        total = np.bincount(of_rating, y, cell_key.size)
        total_sq = np.bincount(of_rating, y * y, cell_key.size)
    return _Cells(
        revision=cell_key // n_reviewers,
        reviewer=cell_key % n_reviewers,
        count=count,
        total=total,
        total_sq=total_sq,
    )


def _solve(
    ridge: float,
    counts: scipy.sparse.csr_matrix,
    cells: _Cells,
    cell_rev: NDArray[np.int64],
    n_rev: NDArray[np.float64],
    sum_rev: NDArray[np.float64],
    n_rvw: NDArray[np.float64],
    sum_rvw: NDArray[np.float64],
) -> _Fit:
    # Normal equations [[D_r, N], [N', D_j + ridge]] [mu; b] = [sum_r; sum_j]; eliminating the
    # diagonal reviewer block leaves S mu = sum_r - N D^-1 sum_j with S = D_r - N D^-1 N'.
    weight = 1.0 / (n_rvw + ridge)
    weighted = counts.multiply(weight).tocsr()
    schur = np.diag(n_rev) - (weighted @ counts.T).toarray()
    rhs = sum_rev - weighted @ sum_rvw
    schur_inverse = scipy.linalg.inv(schur, check_finite=False)
    schur_inverse = (schur_inverse + schur_inverse.T) / 2
    mu = schur_inverse @ rhs
    offset = weight * (sum_rvw - counts.T @ mu)
    fitted = mu[cell_rev] + offset[cells.reviewer]
    cell_rss = np.maximum(cells.total_sq - 2 * fitted * cells.total + cells.count * fitted**2, 0.0)
    # Trace of the hat matrix: (R + J) - ridge * trace(C_bb), with
    # trace(C_bb) = sum(weight) + trace(S^-1 N D^-2 N').
    trace_cbb = weight.sum() + np.einsum(
        "ij,ji->", schur_inverse, (weighted @ weighted.T).toarray()
    )
    effective_params = n_rev.size + n_rvw.size - ridge * trace_cbb
    leak = np.asarray(weighted.T @ schur_inverse).T
    return _Fit(mu, offset, schur_inverse, leak, weight, cell_rss, float(effective_params))


def _model_variance(
    model: _Fit,
    cells: _Cells,
    cell_rev: NDArray[np.int64],
    var_rev: NDArray[np.float64],
) -> NDArray[np.float64]:
    # mu_hat = sum over ratings of a_i * y_i with a_i = S^-1 e_k - leak[:, j] for a rating in
    # cell (k, j); with Var(y_i) = var_rev[k] the variance is a sum over cells.
    variance = np.zeros(model.mu.size)
    for start in range(0, cell_rev.size, _CELL_CHUNK):
        part = slice(start, start + _CELL_CHUNK)
        k, j = cell_rev[part], cells.reviewer[part]
        a = model.schur_inverse[:, k] - model.leak[:, j]
        variance += (a * a) @ (cells.count[part] * var_rev[k])
    return variance


def _cluster_variance(
    model: _Fit,
    rating_rev: NDArray[np.int64],
    rating_reviewer: NDArray[np.int64],
    rating_gen: NDArray[np.int64],
    residual: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n_gen = int(rating_gen.max()) + 1
    n_present = model.mu.size
    # score[g, r] = sum over ratings i of generation g of a_i[r] * residual_i, done as two
    # sparse-times-dense products instead of a Python loop over revisions.
    by_revision = scipy.sparse.csr_matrix(
        (residual, (rating_gen, rating_rev)), shape=(n_gen, n_present)
    )
    by_reviewer = scipy.sparse.csr_matrix(
        (residual, (rating_gen, rating_reviewer)), shape=(n_gen, model.leak.shape[1])
    )
    score = by_revision @ model.schur_inverse.T - by_reviewer @ model.leak.T
    variance = np.einsum("gr,gr->r", score, score)
    gen_rev = np.unique(rating_rev * n_gen + rating_gen) // n_gen
    n_clusters = np.bincount(gen_rev, minlength=n_present).astype(np.float64)
    # CR1 small-sample factor G / (G - 1); generation ids arrive compacted to 0..G-1.
    variance *= n_gen / max(n_gen - 1, 1)
    return variance, n_clusters
