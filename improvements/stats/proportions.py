"""Intervals for proportions: the share of reviews that report an issue, of generations that fail.

A proportion's interval must stay inside [0, 1]; the normal or Poisson approximations do not
(an early rationale read "rate 0.94, 95% CI 0.52-1.55"). The Wilson score interval does, and
holds its coverage near the nominal level for small counts and rates near 0 or 1. scipy's
`binomtest(...).proportion_ci(method="wilson")` computes it.
"""

from __future__ import annotations

import math


def wilson_interval(events: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of `events` successes in `n` trials; (0, 1) when n is 0."""
    if n < 0 or events < 0 or events > n:
        raise ValueError(f"need 0 <= events <= n, got events={events}, n={n}")
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(int(events), int(n)).proportion_ci(confidence_level=level, method="wilson")
    low, high = float(ci.low), float(ci.high)
    return max(0.0, low) if math.isfinite(low) else 0.0, min(1.0, high)
