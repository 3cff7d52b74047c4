"""Always-valid comparison of an arm with the control: a normal-mixture confidence sequence.

Why not `improvements.stats.sequential_decision`: it bounds each arm's mean separately with an
empirical-Bernstein sequence at alpha/2 and subtracts the bounds. That is valid for any bounded
ratings but adds the two half-widths, so it needs roughly four times the ratings of a direct
two-sample sequence; within a budget of a few thousand ratings it decides almost nothing.

Here the statistic is the difference of the arms' means over *generations* (a generation's value
is the mean of its reviews, so reviews of one video count as one unit) with information
I = 1 / Var(difference). Under effect `delta`, S = (diff - delta) * I behaves as a Brownian
motion in information time (the canonical joint distribution of group-sequential theory,
Jennison & Turnbull 2000, ch. 3; it holds for traffic shares that depend only on the past).
Robbins' normal mixture over the drift then gives a boundary valid at every look at once
(Ville's inequality), as in the mixture SPRT of Johari, Pekelis & Walsh (2017, "Always valid
inference"). One-sided, with a half-normal mixture of precision `rho` (in information units):

    M(S, I) = 2 sqrt(rho / (I + rho)) exp(S^2 / (2 (I + rho))) Phi(S / sqrt(I + rho))

and P(M ever exceeds 1/alpha) <= alpha. The lower bound on the effect is the delta where
M = 1/alpha: `diff - b(I) / I`, and the upper bound (for futility) is the mirror image.

`rho` only tunes *when* the sequence is tightest (near I = rho); any value fixed before the first
look keeps the guarantee, so the policy sets it from the predicted effect when it opens the arm.

The variance is a plug-in (each arm's sample variance over generations, weighted by the
generations' reliability weights when given, shrunk towards a prior worth `PRIOR_WEIGHT`
generations), which makes the guarantee asymptotic; the decision waits for
a minimum number of generations per arm. The false-promotion rate is checked in simulation
(tests/improver_search/test_false_promotions.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special
from numpy.typing import ArrayLike

# Generations' worth of weight for the prior variance in the plug-in estimate.
PRIOR_WEIGHT = 8.0


@dataclass(frozen=True)
class Comparison:
    difference: float  # mean(arm) - mean(control)
    information: float  # 1 / Var(difference)
    lower: float  # always-valid lower bound at the arm's alpha
    upper: float  # always-valid upper bound at the futility level
    n_arm: int
    n_control: int
    arm_mean: float
    control_mean: float


def log_mixture(s: float, information: float, rho: float) -> float:
    """log M(S, I) of the one-sided half-normal mixture (see the module docstring)."""
    v = information + rho
    return (
        math.log(2.0)
        + 0.5 * math.log(rho / v)
        + s * s / (2 * v)
        + float(scipy.special.log_ndtr(s / math.sqrt(v)))
    )


def boundary(information: float, rho: float, alpha: float) -> float:
    """The S at which the one-sided mixture reaches 1/alpha (S >= boundary: reject)."""
    if information <= 0:
        return math.inf
    target = math.log(1.0 / alpha)
    v = information + rho
    hi = math.sqrt(v * (2 * target + math.log(v / rho))) + 1.0
    while log_mixture(hi, information, rho) < target:
        hi *= 2
    return float(
        scipy.optimize.brentq(lambda s: log_mixture(s, information, rho) - target, 0.0, hi)
    )


def radius(information: float, rho: float, alpha: float) -> float:
    """Half-width on the effect scale: the bound is difference -/+ radius."""
    return boundary(information, rho, alpha) / information if information > 0 else math.inf


def mixture_for_effect(effect: float) -> float:
    """The mixture precision that makes the test quickest for a true `effect`.

    For a drift `effect`, the information at which `effect * I` first crosses the boundary is
    smallest near rho = 1 / effect^2 (measured: 0.3 -> 10.8, 0.5 -> 3.3, 0.8 -> 1.3, 1.2 -> 0.6,
    within 5% of the best stopping information); the stopping time is flat around it, so a
    rough prediction of the effect is enough.
    """
    effect = min(max(abs(effect), 0.1), 3.0)
    return 1.0 / (effect * effect)


def compare(
    arm_values: ArrayLike,
    control_values: ArrayLike,
    *,
    alpha: float,
    futility_alpha: float,
    rho: float,
    prior_variance: float,
    arm_weights: ArrayLike | None = None,
    control_weights: ArrayLike | None = None,
) -> Comparison:
    """Always-valid bounds on mean(arm) - mean(control) from per-generation values.

    With weights (a generation's reliability, fixed by who reviewed it), each arm's mean is the
    weighted mean and its variance the sandwich estimate sum(w^2 r^2) / sum(w)^2, written as
    phi / sum(w) with phi the variance of a value of weight 1 and shrunk towards
    `prior_variance` on that scale. Without weights (all 1) this is the plain mean and sample
    variance.
    """
    a = np.asarray(arm_values, dtype=np.float64)
    c = np.asarray(control_values, dtype=np.float64)
    n_a, n_c = a.size, c.size
    if n_a == 0 or n_c == 0:
        return Comparison(math.nan, 0.0, -math.inf, math.inf, n_a, n_c, math.nan, math.nan)
    w_a = np.ones(n_a) if arm_weights is None else np.asarray(arm_weights, dtype=np.float64)
    w_c = np.ones(n_c) if control_weights is None else np.asarray(control_weights, dtype=np.float64)
    if w_a.shape != a.shape or w_c.shape != c.shape or (w_a <= 0).any() or (w_c <= 0).any():
        raise ValueError("weights must be positive, one per value")
    mean_a, var_a = _weighted_mean_and_variance(a, w_a, prior_variance)
    mean_c, var_c = _weighted_mean_and_variance(c, w_c, prior_variance)
    diff = mean_a - mean_c
    info = 1.0 / (var_a + var_c)
    return Comparison(
        difference=diff,
        information=info,
        lower=diff - radius(info, rho, alpha),
        upper=diff + radius(info, rho, futility_alpha),
        n_arm=n_a,
        n_control=n_c,
        arm_mean=mean_a,
        control_mean=mean_c,
    )


def _weighted_mean_and_variance(x: np.ndarray, w: np.ndarray, prior: float) -> tuple[float, float]:
    """The weighted mean and its variance, phi / sum(w), with phi shrunk towards `prior`."""
    n = x.size
    total = float(w.sum())
    mean = float(np.dot(w, x) / total)
    # Unbiased for phi when var(x_i) = phi / w_i; with unit weights the sample variance. One
    # value has no spread to measure and gets the prior alone.
    sample = float(np.sum(w * w * (x - mean) ** 2) / total * n / max(n - 1, 1))
    phi = ((n - 1) * sample + PRIOR_WEIGHT * prior) / (n - 1 + PRIOR_WEIGHT)
    return mean, phi / total


def information_to_cross(
    effect: float,
    rho: float,
    alpha: float,
    *,
    difference: float = 0.0,
    information: float = 0.0,
    limit: float = 1e6,
) -> float:
    """The information at which a test with drift `effect` is expected to reach its boundary.

    The statistic S = difference * information now; it then grows by `effect` per unit of
    information (its expectation under that effect), and the test promotes where S meets
    `boundary(I, rho, alpha)`. Returns `information` when it is already past the boundary and
    `limit` when the drift never gets there within it (no positive effect, or one so small
    that the boundary's slow growth keeps ahead). A planning figure (the median crossing time
    of the drift, ignoring the noise), not part of any guarantee.
    """
    s_now = difference * information

    def gap(i: float) -> float:
        return s_now + effect * (i - information) - boundary(i, rho, alpha)

    start = max(information, 1e-6)
    if gap(start) >= 0:
        return information
    if effect <= 0:
        return limit
    hi = max(start * 2, 1.0)
    while gap(hi) < 0:
        if hi >= limit:
            return limit
        hi = min(hi * 2, limit)
    return float(scipy.optimize.brentq(gap, start, hi))
