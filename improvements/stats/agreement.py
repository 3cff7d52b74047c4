"""Inter-rater agreement: Krippendorff's alpha at the ordinal level (Krippendorff 2011).

The `krippendorff` package does the arithmetic. Alpha only looks at which values each unit
received, not at who gave them, so ratings are turned into a units x values count table with one
bincount instead of a reviewers x units matrix (500 reviewers x 50,000 generations would be a
200 MB matrix of mostly nan; the count table for 1-5 ratings is 50,000 x 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import krippendorff
import numpy as np
from numpy.typing import ArrayLike, NDArray

RATING_SCALE = (1, 2, 3, 4, 5)


def krippendorff_alpha_ordinal(
    reliability_data: ArrayLike, *, value_domain: Sequence[float] | None = None
) -> float | None:
    """Ordinal alpha of a reviewers x units matrix with nan for "did not rate".

    None when alpha is undefined: no unit rated by two reviewers, or all pairable ratings equal.
    """
    data = np.asarray(reliability_data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError("reliability_data must be a reviewers x units matrix")
    rated = ~np.isnan(data)
    pairable = rated.sum(axis=0) >= 2
    if not _has_disagreement_to_measure(data[:, pairable][rated[:, pairable]]):
        return None
    return _finite_or_none(
        krippendorff.alpha(
            reliability_data=data, level_of_measurement="ordinal", value_domain=value_domain
        )
    )


def krippendorff_alpha_ordinal_from_ratings(
    unit: ArrayLike, value: ArrayLike, *, value_domain: Sequence[float] = RATING_SCALE
) -> float | None:
    """Ordinal alpha from one row per rating: `unit` (e.g. generation id) and its `value`.

    Each (reviewer, unit) pair must occur at most once (the review model guarantees it); who the
    reviewer was does not enter alpha. None when alpha is undefined, as above.
    """
    units = np.asarray(unit)
    values = np.asarray(value, dtype=np.float64)
    if units.shape != values.shape or values.ndim != 1:
        raise ValueError("unit and value must be 1-d arrays of one length")
    counts = value_counts(units, values, value_domain=value_domain)
    pairable = counts.sum(axis=1) >= 2
    counts = counts[pairable]
    if not pairable.any() or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    return _finite_or_none(
        krippendorff.alpha(
            value_counts=counts,
            value_domain=list(value_domain),
            level_of_measurement="ordinal",
        )
    )


def value_counts(
    unit: ArrayLike, value: ArrayLike, *, value_domain: Sequence[float] = RATING_SCALE
) -> NDArray[np.int64]:
    """Units x values table: entry [u, v] counts the ratings of unit u equal to value_domain[v].

    Rows follow the sorted distinct unit ids.
    """
    domain = np.asarray(value_domain, dtype=np.float64)
    if np.any(np.diff(domain) <= 0):
        raise ValueError("value_domain must be strictly increasing")
    values = np.asarray(value, dtype=np.float64)
    position = np.searchsorted(domain, values)
    inside = position < domain.size
    inside[inside] = domain[position[inside]] == values[inside]
    if not inside.all():
        raise ValueError(f"ratings outside the value domain {list(value_domain)}")
    unit_index = np.unique(np.asarray(unit), return_inverse=True)[1].ravel()
    n_units = int(unit_index.max()) + 1 if unit_index.size else 0
    flat = np.bincount(unit_index * domain.size + position, minlength=n_units * domain.size)
    return flat.reshape(n_units, domain.size)


def reliability_matrix(
    reviewer: ArrayLike,
    unit: ArrayLike,
    value: ArrayLike,
    *,
    n_reviewers: int | None = None,
    n_units: int | None = None,
) -> NDArray[np.float64]:
    """Reviewers x units matrix (nan = not rated) from 0-based index arrays, for small panels
    or for inspection; prefer `krippendorff_alpha_ordinal_from_ratings` at scale."""
    rows = np.asarray(reviewer, dtype=np.int64)
    cols = np.asarray(unit, dtype=np.int64)
    values = np.asarray(value, dtype=np.float64)
    shape = (
        n_reviewers if n_reviewers is not None else int(rows.max(initial=-1)) + 1,
        n_units if n_units is not None else int(cols.max(initial=-1)) + 1,
    )
    matrix = np.full(shape, np.nan)
    matrix[rows, cols] = values
    return matrix


def _has_disagreement_to_measure(pairable_values: NDArray[np.float64]) -> bool:
    # Alpha = 1 - observed / expected disagreement; expected is 0 when every pairable value is
    # the same, and the package raises when nothing is pairable.
    return pairable_values.size >= 2 and np.unique(pairable_values).size >= 2


def _finite_or_none(alpha: float) -> float | None:
    return float(alpha) if np.isfinite(alpha) else None
