import numpy as np
import pytest

from improvements.stats.thompson import (
    NormalInverseGammaPrior,
    VariantStats,
    choose_variant,
    posterior_mean_draws,
    probability_best,
)


def test_clearly_best_variant_is_chosen_almost_always():
    variants = [
        VariantStats("small", n=200, mean=3.1, variance=1.0),
        VariantStats("large", n=200, mean=3.6, variance=1.0),
        VariantStats("tiny", n=200, mean=2.8, variance=1.0),
    ]
    rng = np.random.default_rng(0)
    picks = [choose_variant(variants, rng) for _ in range(1000)]
    assert picks.count("large") / len(picks) > 0.9
    assert probability_best(variants)["large"] > 0.99


def test_without_data_every_variant_is_explored():
    variants = [VariantStats(name, n=0) for name in ("a", "b", "c")]
    rng = np.random.default_rng(1)
    picks = [choose_variant(variants, rng) for _ in range(3000)]
    for name in ("a", "b", "c"):
        assert 0.28 < picks.count(name) / len(picks) < 0.39


def test_untried_variant_keeps_being_explored_next_to_a_mediocre_one():
    variants = [VariantStats("known", n=100, mean=3.0, variance=1.0), VariantStats("new", n=0)]
    share = probability_best(variants)["new"]
    assert 0.3 < share < 0.7


def test_probabilities_sum_to_one_and_are_reproducible():
    variants = [
        VariantStats("a", n=5, mean=3.5, variance=0.8),
        VariantStats("b", n=8, mean=3.3, variance=1.2),
    ]
    first = probability_best(variants, seed=3)
    assert sum(first.values()) == pytest.approx(1.0)
    assert first == probability_best(variants, seed=3)


def test_posterior_matches_the_conjugate_update():
    # Prior mean 3 worth 1 rating, n=4 ratings with mean 4: posterior mean (3 + 16) / 5.
    prior = NormalInverseGammaPrior(mean=3.0, mean_weight=1.0, shape=3.0, scale=2.0)
    draws = posterior_mean_draws(
        [VariantStats("v", n=4, mean=4.0, variance=0.5)], 200_000, np.random.default_rng(4), prior
    )
    assert draws.mean() == pytest.approx(19 / 5, abs=0.01)
    # Marginal posterior of the mean is Student t: var = beta_n / (kappa_n (alpha_n - 1)).
    beta_n = 2.0 + 4 * 0.5 / 2 + 1 * 4 * (4.0 - 3.0) ** 2 / (2 * 5)
    assert draws.var() == pytest.approx(beta_n / (5 * (3.0 + 2 - 1)), rel=0.03)


def test_variant_names_must_be_unique():
    with pytest.raises(ValueError):
        probability_best([VariantStats("a", 1, 3.0), VariantStats("a", 2, 4.0)])
    with pytest.raises(ValueError):
        choose_variant([], np.random.default_rng(0))
