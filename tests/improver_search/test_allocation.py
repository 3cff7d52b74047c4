"""Traffic shares between the control, the challengers and the explorers."""

import math

import numpy as np
import pytest

from improvements.search.allocation import traffic_shares


def _shares(**kwargs):
    defaults = dict(
        control=0,
        challengers=[(1, 0.5, 0.2)],
        explorers=[2, 3],
        testing_share=0.8,
        idle_control_share=0.15,
        rng=np.random.default_rng(0),
    )
    return traffic_shares(**{**defaults, **kwargs})


def test_shares_sum_to_one_and_the_test_gets_its_share():
    shares = _shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares[0] + shares[1] == pytest.approx(0.8)
    assert shares[2] == pytest.approx(shares[3]) == pytest.approx(0.1)


def test_one_challenger_and_the_control_split_the_test_evenly():
    shares = _shares()
    assert shares[0] == pytest.approx(shares[1])


def test_the_control_gets_the_dunnett_share_of_several_challengers():
    k = 4
    shares = _shares(challengers=[(i, 0.5, 0.2) for i in range(1, k + 1)], explorers=[])
    assert shares[0] == pytest.approx(math.sqrt(k) / (math.sqrt(k) + k))


def test_a_control_ahead_on_data_gives_most_of_its_share_to_the_challenger():
    even = _shares()
    ahead = _shares(control_ahead=True)
    assert ahead[0] == pytest.approx(even[0] / 4)
    assert ahead[1] == pytest.approx(0.8 - ahead[0])
    assert ahead[2] == pytest.approx(even[2])


def test_without_challengers_the_control_keeps_its_idle_share():
    shares = _shares(challengers=[])
    assert shares[0] == pytest.approx(0.15)
    assert shares[2] == pytest.approx(0.425)
