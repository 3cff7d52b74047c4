"""Gaussian-process regression for noisy, replicated ratings of configurations.

One observation per configuration (revision): its bias-corrected mean rating `y_i` with a known
sampling variance `noise_i` (residual variance / ratings) plus an unknown between-video variance
`tau^2 * per_video_i` (per_video = 1 / generations) that the fit learns.

Kernel: an additive part plus an interaction part, both Matern 5/2 over grouped features (one
group per parameter; an unordered enum's one-hot columns form one group):

    k(x, x') = sum_g s_g^2 M(|x_g - x'_g| / l_g)  +  s_0^2 M(sqrt(sum_g |x_g - x'_g|^2 / (c l_g)^2))

The additive part learns each parameter's own effect from *all* observations (what a taste
over 10-15 parameters mostly is: each parameter has its sweet spot); the interaction part, with
the same lengthscales stretched by c, carries what depends on several parameters at once.
A parameter the data show to be irrelevant gets a small s_g and a long l_g.

The constant mean is profiled out by generalised least squares (and its uncertainty added to
predictions). Hyperparameters are MAP estimates under normal priors on their logs (centred per
parameter by the caller, e.g. from `x-affects`), by L-BFGS with the analytic gradient. Cost is
O(n^3 + G n^2) in the number of configurations n, never in the number of ratings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray

_SQRT5 = math.sqrt(5.0)
LOG_LENGTH_BOUNDS = (math.log(0.03), math.log(30.0))
LOG_AMPLITUDE_BOUNDS = (math.log(1e-3), math.log(5.0))
LOG_STRETCH_BOUNDS = (math.log(0.5), math.log(10.0))
LOG_TAU_BOUNDS = (math.log(1e-3), math.log(3.0))
_JITTER = 1e-8


@dataclass(frozen=True)
class Prior:
    """Normal priors on the log hyperparameters; per-group entries have one value per group."""

    length_mean: NDArray[np.float64]
    amplitude_mean: NDArray[np.float64]  # log s_g
    length_sd: float = 0.8
    amplitude_sd: float = 1.0
    interaction_mean: float = math.log(0.2)  # log s_0
    interaction_sd: float = 1.0
    stretch_mean: float = math.log(1.5)  # log c
    stretch_sd: float = 0.5
    tau_mean: float = math.log(0.15)
    tau_sd: float = 1.0


@dataclass(frozen=True)
class Hyper:
    lengths: NDArray[np.float64]
    amplitudes: NDArray[np.float64]
    interaction: float
    stretch: float
    tau: float

    @classmethod
    def unpack(cls, theta: NDArray[np.float64], n_groups: int) -> Hyper:
        g = n_groups
        return cls(
            lengths=np.exp(theta[:g]),
            amplitudes=np.exp(theta[g : 2 * g]),
            interaction=math.exp(theta[2 * g]),
            stretch=math.exp(theta[2 * g + 1]),
            tau=math.exp(theta[2 * g + 2]),
        )


def n_hyper(n_groups: int) -> int:
    return 2 * n_groups + 3


def prior_vector(prior: Prior) -> NDArray[np.float64]:
    return np.concatenate(
        [
            prior.length_mean,
            prior.amplitude_mean,
            [prior.interaction_mean, prior.stretch_mean, prior.tau_mean],
        ]
    )


@dataclass
class GaussianProcess:
    """A fitted GP; `predict` / `covariance` give the posterior of the latent function."""

    x: NDArray[np.float64]
    groups: tuple[slice, ...]
    theta: NDArray[np.float64]
    mean: float
    chol: NDArray[np.float64]
    weights: NDArray[np.float64]  # C^-1 (y - mean)
    ones_solve: NDArray[np.float64]  # C^-1 1
    ones_quad: float  # 1' C^-1 1

    @property
    def hyper(self) -> Hyper:
        return Hyper.unpack(self.theta, len(self.groups))

    @property
    def lengthscales(self) -> NDArray[np.float64]:
        return self.hyper.lengths

    @property
    def prior_variance(self) -> float:
        h = self.hyper
        return float(np.sum(h.amplitudes**2) + h.interaction**2)

    @property
    def scale(self) -> float:
        return math.sqrt(self.prior_variance)

    def relevance(self) -> NDArray[np.float64]:
        """Each parameter's additive amplitude (rating points): how much it matters alone."""
        return self.hyper.amplitudes

    def cross(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """k(x_train, z): (n_train, n_z)."""
        return kernel(self.x, z, self.groups, self.hyper)

    def cross_from_sq(self, sq: NDArray[np.float64]) -> NDArray[np.float64]:
        """k(x_train, z) from precomputed per-group squared distances (G, n_train, n_z)."""
        return _kernel_from_sq(sq, self.hyper)[0]

    def predict(self, z: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior mean and variance of the latent function at z (mean uncertainty included)."""
        k = self.cross(z)
        mu = self.mean + k.T @ self.weights
        v = scipy.linalg.solve_triangular(self.chol, k, lower=True, check_finite=False)
        var = self.prior_variance - np.sum(v * v, axis=0)
        r = 1.0 - k.T @ self.ones_solve
        var = var + r * r / self.ones_quad
        return mu, np.maximum(var, 1e-12)

    def covariance(self, z1: NDArray[np.float64], z2: NDArray[np.float64]) -> NDArray[np.float64]:
        """Posterior covariance matrix between the latent function at z1 and at z2."""
        k1, k2 = self.cross(z1), self.cross(z2)
        v1 = scipy.linalg.solve_triangular(self.chol, k1, lower=True, check_finite=False)
        v2 = scipy.linalg.solve_triangular(self.chol, k2, lower=True, check_finite=False)
        prior = kernel(z1, z2, self.groups, self.hyper)
        r1 = 1.0 - k1.T @ self.ones_solve
        r2 = 1.0 - k2.T @ self.ones_solve
        return prior - v1.T @ v2 + np.outer(r1, r2) / self.ones_quad


def fit(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    noise: NDArray[np.float64],
    per_video: NDArray[np.float64],
    groups: Sequence[slice],
    prior: Prior,
    *,
    start: NDArray[np.float64] | None = None,
    max_iter: int = 60,
    max_fit_points: int = 80,
    rng: np.random.Generator | None = None,
) -> GaussianProcess:
    """MAP fit. `noise`: known variance of each y; `per_video`: 1 / generations of each y.

    Hyperparameters are optimised on at most `max_fit_points` observations (the most precise
    half and a random half of the rest) and the posterior conditions on all of them: the
    hyperparameters settle long before the posterior mean stops improving with more points.
    `max_iter=0` keeps `start` as it is.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    groups = tuple(groups)
    g = len(groups)
    sq_all = group_sq_dists(x, x, groups)
    rows = np.arange(y.size)
    if y.size > max_fit_points:
        precise = np.argsort(noise + per_video * 0.05)[: max_fit_points // 2]
        others = np.setdiff1d(rows, precise)
        rng = rng or np.random.default_rng(y.size)
        extra = rng.choice(others, max_fit_points - precise.size, replace=False)
        rows = np.sort(np.concatenate([precise, extra]))
    sq = sq_all[:, rows][:, :, rows]
    theta0 = prior_vector(prior)
    if start is not None and start.shape == theta0.shape and np.all(np.isfinite(start)):
        theta0 = start.copy()
    bounds = (
        [LOG_LENGTH_BOUNDS] * g
        + [LOG_AMPLITUDE_BOUNDS] * g
        + [LOG_AMPLITUDE_BOUNDS, LOG_STRETCH_BOUNDS, LOG_TAU_BOUNDS]
    )
    lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    theta0 = np.clip(theta0, lo, hi)
    theta = theta0
    if y.size >= 3 and max_iter > 0:
        result = scipy.optimize.minimize(
            neg_log_posterior,
            theta0,
            args=(sq, y[rows], noise[rows], per_video[rows], prior),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iter},
        )
        if np.all(np.isfinite(result.x)):
            theta = result.x
    return condition(x, y, noise, per_video, groups, theta, sq_all)


def condition(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    noise: NDArray[np.float64],
    per_video: NDArray[np.float64],
    groups: tuple[slice, ...],
    theta: NDArray[np.float64],
    sq: NDArray[np.float64] | None = None,
) -> GaussianProcess:
    """The posterior for fixed hyperparameters."""
    if sq is None:
        sq = group_sq_dists(x, x, groups)
    hyper = Hyper.unpack(theta, len(groups))
    c = _kernel_from_sq(sq, hyper)[0]
    c[np.diag_indices_from(c)] += noise + hyper.tau**2 * per_video + _JITTER
    chol = _cholesky(c)
    ones = np.ones(y.size)
    ones_solve = scipy.linalg.cho_solve((chol, True), ones, check_finite=False)
    ones_quad = float(ones @ ones_solve)
    mean = float(ones_solve @ y / ones_quad)
    weights = scipy.linalg.cho_solve((chol, True), y - mean, check_finite=False)
    return GaussianProcess(x, groups, theta, mean, chol, weights, ones_solve, ones_quad)


def neg_log_posterior(
    theta: NDArray[np.float64],
    sq: NDArray[np.float64],
    y: NDArray[np.float64],
    noise: NDArray[np.float64],
    per_video: NDArray[np.float64],
    prior: Prior,
) -> tuple[float, NDArray[np.float64]]:
    n_groups = sq.shape[0]
    hyper = Hyper.unpack(theta, n_groups)
    k, grads = _kernel_from_sq(sq, hyper, with_gradient=True)
    c = k.copy()
    tau2 = hyper.tau**2
    c[np.diag_indices_from(c)] += noise + tau2 * per_video + _JITTER
    try:
        chol = scipy.linalg.cholesky(c, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    ones = np.ones(y.size)
    ones_solve = scipy.linalg.cho_solve((chol, True), ones, check_finite=False)
    mean = float(ones_solve @ y / (ones @ ones_solve))
    resid = y - mean
    alpha = scipy.linalg.cho_solve((chol, True), resid, check_finite=False)
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    nll = 0.5 * resid @ alpha + 0.5 * log_det + 0.5 * y.size * math.log(2 * math.pi)
    w = np.outer(alpha, alpha) - _inverse_from_cholesky(chol)  # d nll / d C = -w / 2
    grad = np.empty_like(theta)
    stacked = np.stack(grads).reshape(len(grads), -1)
    grad[: 2 * n_groups + 2] = -0.5 * (stacked @ w.ravel())
    grad[2 * n_groups + 2] = -0.5 * np.sum(np.diag(w) * 2.0 * tau2 * per_video)
    diff = theta - prior_vector(prior)
    sds = np.concatenate(
        [
            np.full(n_groups, prior.length_sd),
            np.full(n_groups, prior.amplitude_sd),
            [prior.interaction_sd, prior.stretch_sd, prior.tau_sd],
        ]
    )
    nll += 0.5 * np.sum((diff / sds) ** 2)
    grad += diff / sds**2
    return float(nll), grad


def _kernel_from_sq(
    sq: NDArray[np.float64], hyper: Hyper, *, with_gradient: bool = False
) -> tuple[NDArray[np.float64], list[NDArray[np.float64]]]:
    """Kernel matrix from per-group squared distances, and dK/dtheta (all but tau) if asked."""
    lengths, amps = hyper.lengths, hyper.amplitudes
    n_groups, shape = sq.shape[0], sq.shape[1:]
    flat = sq.reshape(n_groups, -1)
    # All groups at once, flattened to (G, n_a * n_b) so the sums over groups are BLAS calls.
    r2 = flat * (1.0 / lengths**2)[:, None]
    r = np.sqrt(r2)
    e = np.exp(-_SQRT5 * r)
    poly = 1.0 + _SQRT5 * r
    m = (poly + (5.0 / 3.0) * r2) * e
    a2 = amps**2
    k = a2 @ m
    inv_scaled2 = 1.0 / (lengths * hyper.stretch) ** 2
    r2i = inv_scaled2 @ flat
    ri = np.sqrt(r2i)
    ei = np.exp(-_SQRT5 * ri)
    s02 = hyper.interaction**2
    k_int = s02 * (1.0 + _SQRT5 * ri + (5.0 / 3.0) * r2i) * ei
    k = (k + k_int).reshape(shape)
    if not with_gradient:
        return k, []
    factor = s02 * (5.0 / 3.0) * (1.0 + _SQRT5 * ri) * ei  # -(dk_int / d r^2)
    d_length = (a2 * (5.0 / 3.0))[:, None] * r2 * poly * e + factor * (flat * inv_scaled2[:, None])
    d_amp = (2.0 * a2)[:, None] * m
    grads = [*d_length.reshape(n_groups, *shape), *d_amp.reshape(n_groups, *shape)]
    return k, [*grads, (2.0 * k_int).reshape(shape), (factor * r2i).reshape(shape)]


def kernel(
    a: NDArray[np.float64], b: NDArray[np.float64], groups: Sequence[slice], hyper: Hyper
) -> NDArray[np.float64]:
    return _kernel_from_sq(group_sq_dists(a, b, groups), hyper)[0]


def kernel_from_sq(sq: NDArray[np.float64], hyper: Hyper) -> NDArray[np.float64]:
    return _kernel_from_sq(sq, hyper)[0]


def group_sq_dists(
    a: NDArray[np.float64], b: NDArray[np.float64], groups: Sequence[slice]
) -> NDArray[np.float64]:
    """(G, n_a, n_b) squared distances within each feature group."""
    out = np.empty((len(groups), a.shape[0], b.shape[0]))
    for g, cols in enumerate(groups):
        if cols.stop - cols.start == 1:
            diff = a[:, cols.start, None] - b[None, :, cols.start]
            out[g] = diff * diff
        else:
            aa, bb = a[:, cols], b[:, cols]
            out[g] = np.maximum(
                np.sum(aa * aa, 1)[:, None] + np.sum(bb * bb, 1)[None, :] - 2 * aa @ bb.T, 0.0
            )
    return out


def _inverse_from_cholesky(chol: NDArray[np.float64]) -> NDArray[np.float64]:
    inv, info = scipy.linalg.lapack.dpotri(chol, lower=1)
    if info != 0:
        return scipy.linalg.cho_solve((chol, True), np.eye(chol.shape[0]), check_finite=False)
    return np.tril(inv) + np.tril(inv, -1).T


def _cholesky(c: NDArray[np.float64]) -> NDArray[np.float64]:
    try:
        return scipy.linalg.cholesky(c, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        bump = 1e-6 * max(float(np.mean(np.diag(c))), 1e-6)
        return scipy.linalg.cholesky(c + bump * np.eye(c.shape[0]), lower=True, check_finite=False)
