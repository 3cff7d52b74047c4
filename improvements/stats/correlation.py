"""Which automated metrics predict which human rating dimension.

Spearman rank correlation, because metric scales are arbitrary and often non-linear in perceived
quality; only monotonicity matters. Each (metric, dimension) pair uses the generations where both
are known (nan = missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# The fewest generations with both a metric and a rating for which a correlation is computed.
MIN_PAIRS = 10


@dataclass(frozen=True)
class MetricCorrelation:
    metric: str
    dimension: str
    rho: float | None  # None: fewer than min_n pairs, or one side constant
    p_value: float | None
    n: int


def metric_rating_correlations(
    metrics: Mapping[str, ArrayLike],
    ratings: Mapping[str, ArrayLike],
    *,
    min_n: int = MIN_PAIRS,
) -> list[MetricCorrelation]:
    """Spearman rho of every metric against every dimension's per-generation mean rating.

    All arrays are aligned by generation (same length, same order).
    """
    from scipy.stats import spearmanr  # loaded when used: importing scipy.stats takes a while

    if min_n < 3:
        raise ValueError("min_n must be at least 3")
    metric_arrays = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
    rating_arrays = {k: np.asarray(v, dtype=np.float64) for k, v in ratings.items()}
    shapes = {a.shape for a in [*metric_arrays.values(), *rating_arrays.values()]}
    if len(shapes) > 1 or any(len(shape) != 1 for shape in shapes):
        raise ValueError("metric and rating arrays must be 1-d and aligned by generation")

    results = []
    for metric, x_all in metric_arrays.items():
        for dimension, y_all in rating_arrays.items():
            both = np.isfinite(x_all) & np.isfinite(y_all)
            x, y = x_all[both], y_all[both]
            n = int(both.sum())
            if n < min_n or np.ptp(x) == 0 or np.ptp(y) == 0:
                results.append(MetricCorrelation(metric, dimension, None, None, n))
                continue
            rho, p_value = spearmanr(x, y)
            results.append(MetricCorrelation(metric, dimension, float(rho), float(p_value), n))
    return results
