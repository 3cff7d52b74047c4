"""Canary decisions that stay valid when the result is checked after every rating.

A fixed-sample test checked repeatedly will eventually "win" by chance. Instead each arm gets a
confidence sequence: intervals (L_n, U_n) for its mean rating that hold for all n at once with
probability >= 1 - alpha/2, however often we look and whenever we stop. We use the predictable
plug-in empirical-Bernstein sequence of Waudby-Smith & Ramdas (2023, "Estimating means of bounded
random variables by betting", JRSS-B, Thm 2), which needs only that ratings lie in known bounds and
adapts to their actual spread (a 1-5 rating with sd 1 needs ~4x fewer ratings than the
worst-case Hoeffding / sub-Gaussian sequence of Howard et al. 2021). Running intersections keep
each interval no wider than the one before. A union bound then gives the difference
candidate - control as [L_c - U_k, U_c - L_k], valid at level 1 - alpha at every interleaving of
the two arms' ratings.

Because the running-intersection bounds only ever tighten, a decision reached once stays reached
at every later check: re-running `sequential_decision` on all ratings so far is equivalent to
having stopped at the first crossing.

Guardrails use the same idea on counts: failure and issue-report rates get Robbins' (1970)
beta-binomial mixture confidence sequence, which depends only on the counts, not on the order of
events, and stays tight for rare events (a 2% failure rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.optimize
import scipy.special
from numpy.typing import ArrayLike, NDArray

RATING_BOUNDS = (1.0, 5.0)
# Cap on the betting fraction; 1/2 is the value Waudby-Smith & Ramdas recommend.
_TRUNCATION = 0.5


@dataclass(frozen=True)
class Decision:
    kind: Literal["promote", "rollback", "continue"]
    lower: float | None  # confidence-sequence bounds on mean(candidate) - mean(control)
    upper: float | None
    estimate: float | None  # difference of the arms' sample means
    n_candidate: int
    n_control: int
    reason: str


def confidence_sequence(
    values: ArrayLike, *, alpha: float, bounds: tuple[float, float] = RATING_BOUNDS
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower and upper bounds on the mean after each observation, in arrival order.

    Valid simultaneously for all prefixes with probability >= 1 - alpha when the observations
    are independent with a common mean (or, more generally, have that conditional mean) and lie
    within `bounds`. Works along the last axis, so a batch of sequences can be passed as 2-d.
    """
    low, high = bounds
    if not high > low:
        raise ValueError("bounds must be (low, high) with high > low")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    x = np.asarray(values, dtype=np.float64)
    if np.any(x < low) or np.any(x > high) or not np.all(np.isfinite(x)):
        raise ValueError(f"values must lie within {bounds}")
    x = (x - low) / (high - low)
    if x.shape[-1] == 0:
        return np.full(x.shape, low), np.full(x.shape, high)

    t = np.arange(1, x.shape[-1] + 1, dtype=np.float64)
    log_term = math.log(2 / alpha)  # each side at alpha / 2
    # Predictable (uses only earlier observations) mean and variance estimates, started at the
    # centre of [0, 1] and the largest possible variance 1/4 as one pseudo-observation.
    mean_now = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    mean_before = _shift_right(mean_now, 0.5)
    var_now = (0.25 + np.cumsum((x - mean_now) ** 2, axis=-1)) / (t + 1)
    var_before = _shift_right(var_now, 0.25)
    bet = np.minimum(np.sqrt(2 * log_term / (var_before * t * np.log1p(t))), _TRUNCATION)
    psi = (-np.log1p(-bet) - bet) / 4
    bet_sum = np.cumsum(bet, axis=-1)
    centre = np.cumsum(bet * x, axis=-1) / bet_sum
    margin = (log_term + np.cumsum(4 * (x - mean_before) ** 2 * psi, axis=-1)) / bet_sum
    lower = np.maximum.accumulate(np.maximum(centre - margin, 0.0), axis=-1)
    upper = np.minimum.accumulate(np.minimum(centre + margin, 1.0), axis=-1)
    return low + (high - low) * lower, low + (high - low) * upper


def sequential_decision(
    candidate_values: ArrayLike,
    control_values: ArrayLike,
    *,
    alpha: float = 0.05,
    min_effect: float = 0.0,
    min_per_arm: int = 30,
    bounds: tuple[float, float] = RATING_BOUNDS,
) -> Decision:
    """Promote, roll back or keep running, from each arm's ratings in arrival order.

    - promote when the lower bound of candidate - control is > 0 (the candidate is better);
    - roll back when the upper bound is < `min_effect`: with min_effect=0 the candidate is worse,
      with min_effect > 0 it is also rolled back once an improvement of that size is ruled out
      (futility), so a canary cannot run forever;
    - otherwise continue; nothing is decided before `min_per_arm` ratings in each arm.

    P(promoting a candidate that is not better) <= alpha and P(a futility/worse rollback of a
    candidate at least `min_effect` better) <= alpha, whenever and however often this is called.
    """
    if min_effect < 0:
        raise ValueError("min_effect must be >= 0")
    candidate = np.asarray(candidate_values, dtype=np.float64).ravel()
    control = np.asarray(control_values, dtype=np.float64).ravel()
    n_c, n_k = candidate.size, control.size
    if n_c == 0 or n_k == 0:
        return Decision("continue", None, None, None, n_c, n_k, "no ratings yet in one arm")
    c_low, c_high = confidence_sequence(candidate, alpha=alpha / 2, bounds=bounds)
    k_low, k_high = confidence_sequence(control, alpha=alpha / 2, bounds=bounds)
    lower = float(c_low[-1] - k_high[-1])
    upper = float(c_high[-1] - k_low[-1])
    estimate = float(candidate.mean() - control.mean())

    def decide(kind: Literal["promote", "rollback", "continue"], reason: str) -> Decision:
        return Decision(kind, lower, upper, estimate, n_c, n_k, reason)

    if min(n_c, n_k) < min_per_arm:
        return decide("continue", f"waiting for {min_per_arm} ratings per arm")
    if c_low[-1] > c_high[-1] or k_low[-1] > k_high[-1]:
        # The running intersection went empty: the ratings are not a stationary stream (drift,
        # a changed rubric). Keep the control rather than trust either arm.
        return decide("rollback", "confidence sequence became empty; ratings are not stationary")
    if lower > 0:
        return decide("promote", f"candidate better: difference >= {lower:.3f}")
    if upper < 0:
        return decide("rollback", f"candidate worse: difference <= {upper:.3f}")
    if upper < min_effect:
        return decide(
            "rollback", f"futile: difference <= {upper:.3f} < minimum effect {min_effect:.3f}"
        )
    return decide("continue", f"difference within [{lower:.3f}, {upper:.3f}]")


@dataclass(frozen=True)
class ArmCounts:
    """What the guardrails need about one arm of a canary."""

    n_generations: int  # finished or failed
    n_failed: int
    mean_generation_seconds: float | None  # over successful generations
    n_reviewed: int  # reviewed generations
    n_with_issue_report: int  # reviewed generations with at least one issue report


@dataclass(frozen=True)
class GuardrailBreach:
    name: Literal["failure_rate", "generation_time", "issue_report_rate"]
    candidate: float
    control: float
    limit: float
    reason: str


def guardrails(
    candidate: ArmCounts,
    control: ArmCounts,
    *,
    alpha: float = 0.05,
    max_failure_rate_increase: float = 0.05,
    max_generation_time_ratio: float = 1.5,
    max_issue_rate_increase: float = 0.10,
    min_count: int = 20,
) -> list[GuardrailBreach]:
    """Breached guardrails (empty when all hold); any breach means roll back now.

    Rates: breach when the confidence sequence for candidate rate - control rate lies entirely
    above the allowed increase (each arm at alpha/2, valid under continuous monitoring).
    Generation time: breach when the mean-time ratio exceeds the limit once both arms have
    `min_count` generations; it is a cost guardrail read off point estimates because generation
    times are far less noisy than ratings.
    """
    breaches: list[GuardrailBreach] = []
    rate_checks = (
        (
            "failure_rate",
            candidate.n_failed,
            candidate.n_generations,
            control.n_failed,
            control.n_generations,
            max_failure_rate_increase,
        ),
        (
            "issue_report_rate",
            candidate.n_with_issue_report,
            candidate.n_reviewed,
            control.n_with_issue_report,
            control.n_reviewed,
            max_issue_rate_increase,
        ),
    )
    for name, c_events, c_total, k_events, k_total, limit in rate_checks:
        if min(c_total, k_total) < min_count:
            continue
        c_rate, k_rate = c_events / c_total, k_events / k_total
        c_low, _ = rate_confidence_sequence(c_events, c_total, alpha=alpha / 2)
        _, k_high = rate_confidence_sequence(k_events, k_total, alpha=alpha / 2)
        lower = c_low - k_high
        if lower > limit:
            breaches.append(
                GuardrailBreach(
                    name,
                    c_rate,
                    k_rate,
                    limit,
                    f"{name.replace('_', ' ')} {c_rate:.1%} vs control {k_rate:.1%}: "
                    f"increase >= {lower:.1%} exceeds {limit:.1%}",
                )
            )
    c_time, k_time = candidate.mean_generation_seconds, control.mean_generation_seconds
    timed = min(
        candidate.n_generations - candidate.n_failed, control.n_generations - control.n_failed
    )
    if (
        c_time is not None
        and k_time
        and timed >= min_count
        and c_time / k_time > max_generation_time_ratio
    ):
        breaches.append(
            GuardrailBreach(
                "generation_time",
                c_time,
                k_time,
                max_generation_time_ratio,
                f"generation takes {c_time / k_time:.2f}x the control's "
                f"(limit {max_generation_time_ratio:.2f}x)",
            )
        )
    return breaches


def rate_confidence_sequence(events: int, n: int, *, alpha: float) -> tuple[float, float]:
    """Bounds on an event rate (failures, issue reports) after `events` in `n` trials.

    Robbins' (1970) conjugate-mixture method for Bernoulli trials: the likelihood ratio of
    "rate q" against "rate p", averaged over q ~ Beta(1, 1), is a nonnegative martingale under
    rate p, so by Ville's inequality it exceeds 1/alpha at any time with probability <= alpha.
    The bounds are the rates p where it stays below 1/alpha: valid for all n at once, depending
    only on the counts, and (unlike a sub-Gaussian bound) tight for rare events.
    """
    if not 0 <= events <= n:
        raise ValueError("need 0 <= events <= n")
    if n == 0:
        return 0.0, 1.0
    threshold = math.log(1 / alpha)
    rate = events / n  # the mixture is below 1 there, so always inside

    def excess(p: float) -> float:
        return _log_beta_mixture(events, n, p) - threshold

    low = 0.0 if events == 0 else scipy.optimize.brentq(excess, 1e-300, rate, xtol=1e-12)
    high = 1.0 if events == n else scipy.optimize.brentq(excess, rate, 1 - 1e-16, xtol=1e-12)
    return float(low), float(high)


def _log_beta_mixture(events: int, n: int, p: float) -> float:
    return float(
        scipy.special.betaln(1 + events, 1 + n - events)
        - scipy.special.xlogy(events, p)
        - scipy.special.xlog1py(n - events, -p)
    )


def _shift_right(a: NDArray[np.float64], first: float) -> NDArray[np.float64]:
    out = np.empty_like(a)
    out[..., 0] = first
    out[..., 1:] = a[..., :-1]
    return out
