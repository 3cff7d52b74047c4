"""Traffic shares: how new generations are split between the control and the arms.

- While challengers are tested, `testing_share` of the traffic goes to the test: the control gets
  sqrt(K) / (sqrt(K) + K) of it (the allocation that minimises the variance of K comparisons
  with one shared control, Dunnett 1955), and the challengers split the rest by top-two Thompson
  sampling (Russo 2020): the probability that each is the leader or, failing that, the
  runner-up, from normal posteriors of their measured effects, with a floor so none starves.
- When the control's test data already exceed that allocation (its history counts in the test,
  `arm_data`), it gets only `_AHEAD` of its Dunnett part until the challengers catch up: a
  further control generation would shrink the comparison's variance less than a challenger's.
- Explorers split what is left equally; with no explorers the test gets everything.
- With no challenger, the control keeps `idle_control_share` (so that it stays measured for
  the model and for the reviewer offsets of the next test) and the explorers get the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Share of the top-two draws that go to the leader (Russo's beta).
_TOP_TWO_BETA = 0.5
_FLOOR = 0.15  # of an equal split, for a challenger
_AHEAD = 0.25  # of its Dunnett part, for a control whose data are ahead (kept concurrent)


def top_two_probabilities(
    means: Sequence[float], sds: Sequence[float], rng: np.random.Generator, draws: int = 2000
) -> np.ndarray:
    k = len(means)
    if k == 1:
        return np.ones(1)
    samples = rng.normal(np.asarray(means), np.maximum(np.asarray(sds), 1e-6), (draws, k))
    order = np.argsort(-samples, axis=1)
    leader = np.bincount(order[:, 0], minlength=k) / draws
    runner = np.bincount(order[:, 1], minlength=k) / draws
    return _TOP_TWO_BETA * leader + (1 - _TOP_TWO_BETA) * runner


def traffic_shares(
    control: int | str,
    challengers: Sequence[tuple[int | str, float, float]],  # (key, effect mean, effect sd)
    explorers: Sequence[int | str],
    *,
    testing_share: float,
    idle_control_share: float,
    rng: np.random.Generator,
    control_ahead: bool = False,
) -> dict[int | str, float]:
    shares: dict[int | str, float] = {}
    if challengers:
        test = testing_share if explorers else 1.0
        k = len(challengers)
        control_part = math.sqrt(k) / (math.sqrt(k) + k)
        if control_ahead:
            control_part *= _AHEAD
        shares[control] = test * control_part
        probs = top_two_probabilities([c[1] for c in challengers], [c[2] for c in challengers], rng)
        probs = np.maximum(probs, _FLOOR / k)
        probs = probs / probs.sum()
        for (key, _, _), p in zip(challengers, probs, strict=True):
            shares[key] = test * (1 - control_part) * float(p)
        rest = 1.0 - test
    else:
        shares[control] = idle_control_share if explorers else 1.0
        rest = 1.0 - shares[control]
    for key in explorers:
        shares[key] = rest / len(explorers)
    total = sum(shares.values())
    return {key: value / total for key, value in shares.items()}
