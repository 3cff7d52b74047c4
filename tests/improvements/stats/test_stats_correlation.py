import numpy as np
import pytest
import scipy.stats

from improvements.stats.correlation import metric_rating_correlations


def test_each_metric_is_correlated_with_each_dimension_on_complete_pairs():
    rng = np.random.default_rng(0)
    sharpness = rng.normal(size=200)
    flicker = rng.normal(size=200)
    visual = np.exp(sharpness) + rng.normal(0, 0.3, 200)  # monotone, non-linear
    motion = -flicker + rng.normal(0, 0.3, 200)
    visual[:20] = np.nan  # generations without ratings on this dimension
    results = metric_rating_correlations(
        {"sharpness": sharpness, "flicker": flicker}, {"visual": visual, "motion": motion}
    )
    by_pair = {(r.metric, r.dimension): r for r in results}
    assert len(results) == 4
    assert by_pair["sharpness", "visual"].rho > 0.8
    assert by_pair["sharpness", "visual"].n == 180
    assert by_pair["flicker", "motion"].rho < -0.8
    assert abs(by_pair["flicker", "visual"].rho) < 0.2
    expected = scipy.stats.spearmanr(sharpness[20:], visual[20:])
    assert by_pair["sharpness", "visual"].rho == pytest.approx(expected.statistic)
    assert by_pair["sharpness", "visual"].p_value == pytest.approx(expected.pvalue)


def test_constant_or_short_columns_give_none():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    short = np.full(30, np.nan)
    short[:5] = rng.normal(size=5)
    results = metric_rating_correlations(
        {"constant": np.ones(30), "x": x}, {"short": short, "visual": x + 1}
    )
    by_pair = {(r.metric, r.dimension): r for r in results}
    assert by_pair["constant", "visual"].rho is None and by_pair["constant", "visual"].n == 30
    assert by_pair["x", "short"].rho is None and by_pair["x", "short"].n == 5
    assert by_pair["x", "visual"].rho == pytest.approx(1.0)


def test_arrays_must_be_aligned():
    with pytest.raises(ValueError):
        metric_rating_correlations({"m": [1.0, 2.0, 3.0]}, {"d": [1.0, 2.0]})
