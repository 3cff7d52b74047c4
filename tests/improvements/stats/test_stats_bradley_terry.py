import math

import numpy as np
import pytest
import scipy.special

from improvements.stats.bradley_terry import bradley_terry, win_probability


def test_three_wins_in_four_give_odds_of_three():
    result = bradley_terry(2, [0, 0, 0, 1], [1, 1, 1, 0], alpha=0, n_bootstrap=0)
    assert result.strength[0] - result.strength[1] == pytest.approx(math.log(3), abs=1e-6)
    assert result.strength.sum() == pytest.approx(0.0, abs=1e-12)
    assert result.win_probability(0, 1) == pytest.approx(0.75, abs=1e-6)
    assert result.ranking() == [0, 1]


@pytest.mark.parametrize(
    ("a_wins", "b_wins", "ties", "log_odds"),
    [
        (2, 0, 2, math.log(3)),  # A: 2 + 2/2 = 3 wins, B: 2/2 = 1 win
        (1, 1, 2, 0.0),  # 2 against 2
        (1, 0, 2, math.log(2)),  # 2 against 1
    ],
)
def test_ties_count_as_half_a_win_each(a_wins, b_wins, ties, log_odds):
    result = bradley_terry(
        2,
        [0] * a_wins + [1] * b_wins,
        [1] * a_wins + [0] * b_wins,
        tie_a=[0, 1][:ties] if ties <= 2 else [0] * ties,
        tie_b=[1, 0][:ties] if ties <= 2 else [1] * ties,
        alpha=0,
        n_bootstrap=0,
    )
    assert result.strength[0] - result.strength[1] == pytest.approx(log_odds, abs=1e-6)
    assert result.wins.tolist() == [a_wins + ties / 2, b_wins + ties / 2]


def test_fit_solves_the_likelihood_equations():
    # At the maximum-likelihood estimate each item's expected wins equal its observed wins.
    rng = np.random.default_rng(0)
    truth = np.array([1.0, 0.3, 0.0, -0.4, -0.9])
    first = rng.integers(0, 5, 400)
    second = (first + rng.integers(1, 5, 400)) % 5
    first_wins = rng.random(400) < scipy.special.expit(truth[first] - truth[second])
    tie = rng.random(400) < 0.15
    winner = np.where(first_wins, first, second)[~tie]
    loser = np.where(first_wins, second, first)[~tie]
    result = bradley_terry(
        5, winner, loser, tie_a=first[tie], tie_b=second[tie], alpha=0, n_bootstrap=0
    )
    expected = np.zeros(5)
    for i, j in zip(first, second, strict=True):
        p = win_probability(result.strength[i], result.strength[j])
        expected[i] += p
        expected[j] += 1 - p
    np.testing.assert_allclose(expected, result.wins, atol=1e-5)


def _simulated(rng, truth, n_comparisons):
    n = truth.size
    first = rng.integers(0, n, n_comparisons)
    second = (first + rng.integers(1, n, n_comparisons)) % n
    first_wins = rng.random(n_comparisons) < scipy.special.expit(truth[first] - truth[second])
    return np.where(first_wins, first, second), np.where(first_wins, second, first)


def test_ordering_is_recovered_and_intervals_cover_the_truth():
    rng = np.random.default_rng(1)
    truth = np.array([1.2, 0.6, 0.1, -0.5, -1.4])
    truth -= truth.mean()
    covered = []
    for _ in range(20):
        winner, loser = _simulated(rng, truth, 600)
        result = bradley_terry(5, winner, loser, n_bootstrap=150, seed=int(rng.integers(1e9)))
        covered.append((result.ci_low <= truth) & (truth <= result.ci_high))
    assert result.ranking() == [0, 1, 2, 3, 4]
    assert np.all(result.ci_low <= result.strength) and np.all(result.strength <= result.ci_high)
    assert np.mean(covered) >= 0.88


def test_bootstrap_is_reproducible_with_a_seed():
    rng = np.random.default_rng(2)
    winner, loser = _simulated(rng, np.array([0.5, 0.0, -0.5]), 100)
    one = bradley_terry(3, winner, loser, n_bootstrap=50, seed=7)
    two = bradley_terry(3, winner, loser, n_bootstrap=50, seed=7)
    np.testing.assert_array_equal(one.ci_low, two.ci_low)


def test_uncompared_items_get_no_strength():
    result = bradley_terry(4, [0, 1], [1, 0], tie_a=[2], tie_b=[0], n_bootstrap=20)
    assert np.isnan(result.strength[3]) and np.isnan(result.ci_low[3])
    assert result.n_comparisons.tolist() == [3, 2, 1, 0]
    assert 3 not in result.ranking()
    assert np.nansum(result.strength) == pytest.approx(0.0, abs=1e-9)


def test_unbeaten_item_stays_finite_with_regularisation():
    result = bradley_terry(3, [0, 0, 1], [1, 2, 2], n_bootstrap=50)
    assert np.isfinite(result.strength).all()
    assert result.ranking() == [0, 1, 2]


def test_maximum_likelihood_without_regularisation_needs_wins_and_losses():
    with pytest.raises(ValueError):
        bradley_terry(2, [0], [1], alpha=0, n_bootstrap=0)
    with pytest.raises(ValueError):
        bradley_terry(2, [0, 1], [1, 0], alpha=0, n_bootstrap=10)
    with pytest.raises(ValueError):
        bradley_terry(2, [0], [0])
    with pytest.raises(ValueError):
        bradley_terry(2, [0], [2])
