"""Thompson sampling over model variants on their mean rating.

Each variant's ratings are modelled as normal with unknown mean and variance under a conjugate
normal-inverse-gamma prior; choosing a variant = drawing one mean from every posterior and taking
the largest, so a variant is tried about as often as it is probably the best. The prior is weak
and centred on the middle of the 1-5 scale: one pseudo-rating at 3 for the mean, and a variance
prior worth two pseudo-ratings with prior mean 2 (sd ~1.4), so a variant with no data is explored
as eagerly as any plausible one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class VariantStats:
    """Summary of one variant's (preferably bias-corrected) ratings."""

    name: str
    n: int
    mean: float = 0.0
    variance: float = 0.0  # of the ratings, ddof=0


@dataclass(frozen=True)
class NormalInverseGammaPrior:
    mean: float = 3.0
    mean_weight: float = 1.0  # kappa0, in pseudo-ratings
    shape: float = 2.0  # alpha0
    scale: float = 2.0  # beta0; prior mean variance = scale / (shape - 1)


DEFAULT_PRIOR = NormalInverseGammaPrior()


def posterior_mean_draws(
    variants: Sequence[VariantStats],
    n_draws: int,
    rng: np.random.Generator,
    prior: NormalInverseGammaPrior = DEFAULT_PRIOR,
) -> NDArray[np.float64]:
    """(n_draws, len(variants)) draws of each variant's mean rating from its posterior."""
    if not variants:
        raise ValueError("no variants to sample")
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be unique")
    n = np.array([v.n for v in variants], dtype=np.float64)
    mean = np.array([v.mean if v.n else 0.0 for v in variants])
    variance = np.array([v.variance if v.n else 0.0 for v in variants])
    if np.any(n < 0) or np.any(variance < 0):
        raise ValueError("counts and variances must be >= 0")
    kappa = prior.mean_weight + n
    post_mean = (prior.mean_weight * prior.mean + n * mean) / kappa
    shape = prior.shape + n / 2
    scale = (
        prior.scale
        + n * variance / 2
        + prior.mean_weight * n * (mean - prior.mean) ** 2 / (2 * kappa)
    )
    sigma2 = scale / rng.gamma(shape, size=(n_draws, n.size))
    return post_mean + rng.standard_normal((n_draws, n.size)) * np.sqrt(sigma2 / kappa)


def choose_variant(
    variants: Sequence[VariantStats],
    rng: np.random.Generator,
    prior: NormalInverseGammaPrior = DEFAULT_PRIOR,
) -> str:
    """Name of the variant to try next (one Thompson draw)."""
    draw = posterior_mean_draws(variants, 1, rng, prior)[0]
    return variants[int(np.argmax(draw))].name


def probability_best(
    variants: Sequence[VariantStats],
    *,
    n_draws: int = 10_000,
    seed: int = 0,
    prior: NormalInverseGammaPrior = DEFAULT_PRIOR,
) -> dict[str, float]:
    """Monte Carlo posterior probability that each variant has the highest mean rating."""
    draws = posterior_mean_draws(variants, n_draws, np.random.default_rng(seed), prior)
    best = np.bincount(np.argmax(draws, axis=1), minlength=len(variants)) / n_draws
    return {v.name: float(p) for v, p in zip(variants, best, strict=True)}
