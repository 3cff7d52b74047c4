"""The interval of a proportion (issue-report and failure shares) stays inside [0, 1]."""

import numpy as np
import pytest

from improvements.stats.proportions import wilson_interval


@pytest.mark.parametrize(("events", "n"), [(0, 5), (1, 1), (15, 16), (47, 50), (3, 10)])
def test_the_interval_of_a_proportion_stays_inside_0_and_1(events, n):
    low, high = wilson_interval(events, n)
    assert 0.0 <= low <= events / n <= high <= 1.0


def test_a_high_rate_on_few_reviews_no_longer_reaches_above_one():
    # The old Poisson interval printed "rate 0.94, 95% CI 0.52-1.55" for 15 of 16.
    low, high = wilson_interval(15, 16)
    assert high < 1.0 and low == pytest.approx(0.717, abs=0.01)


def test_the_interval_covers_the_true_rate_near_the_nominal_level():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(2000):
        k = int(rng.binomial(30, 0.1))
        low, high = wilson_interval(k, 30)
        hits += low <= 0.1 <= high
    assert 0.92 <= hits / 2000 <= 0.99


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="events"):
        wilson_interval(5, 3)
