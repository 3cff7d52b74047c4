"""Reviewer reliability weights: who is worth how much, and what the weights do to the test."""

import numpy as np
import pytest

from improvements.search import Arm
from improvements.search.arm_data import arm_data, reviewer_corrections
from improvements.search.evidence import evidence_gather
from improvements.search.reviewer_reliability import reliability_weights, weights_of
from improvements.search.sequential_test import compare, mixture_for_effect
from tests.improver_search.feedback_builder import FeedbackBuilder

OVERALL = {"overall_satisfaction": 1.0}


def _panel(seed: int, *, random_share: float = 0.0) -> FeedbackBuilder:
    fb = FeedbackBuilder(np.random.default_rng(seed), n_reviewers=12, random_share=random_share)
    fb.add_revision(0, {}, 3.0)
    fb.add_revision(1, {}, 3.3)
    return fb


def test_a_random_rater_and_a_noisy_reviewer_weigh_less_than_a_careful_one():
    fb = _panel(1)
    fb.noise[:] = 0.6
    fb.noise[0], fb.noise[1] = 0.3, 1.2
    fb.random_rater[2] = True
    for i in range(240):
        fb.generate(i % 2, reviewers=[i % fb.n_reviewers])
    weights = reviewer_corrections(fb.observations(), np.inf, OVERALL).weights
    typical = np.median([weights[j] for j in range(3, fb.n_reviewers)])
    assert weights[0] > 1.3 * typical
    assert weights[1] < 0.7 * typical
    assert weights[2] < 0.5 * typical


def test_reviewers_who_are_alike_all_weigh_about_one():
    fb = _panel(2)
    fb.noise[:] = 0.6
    for i in range(360):
        fb.generate(i % 2, reviewers=[i % fb.n_reviewers])
    weights = reviewer_corrections(fb.observations(), np.inf, OVERALL).weights
    assert all(0.7 < w < 1.4 for w in weights.values())


def test_a_reviewer_with_few_ratings_keeps_a_weight_near_the_pool():
    rng = np.random.default_rng(3)
    reviewer = np.r_[np.repeat(np.arange(10), 50), [99, 99]]
    residual = np.r_[rng.normal(0, 0.7, 500), [1.4, -1.4]]  # two ratings 2 sd out
    weights = reliability_weights(reviewer, residual)
    assert 0.5 < weights[99] < 1.0
    assert weights_of([99, 12345], weights)[1] == 1.0  # an unknown reviewer counts as the pool


def test_weighted_compare_with_unit_weights_is_the_plain_comparison():
    rng = np.random.default_rng(4)
    a, c = rng.normal(3.3, 0.7, 40), rng.normal(3.0, 0.7, 50)
    kwargs = {"alpha": 0.05, "futility_alpha": 0.1, "rho": mixture_for_effect(0.3)}
    plain = compare(a, c, prior_variance=0.5, **kwargs)
    unit = compare(
        a, c, prior_variance=0.5, arm_weights=np.ones(40), control_weights=np.ones(50), **kwargs
    )
    assert unit == plain
    assert plain.arm_mean == pytest.approx(a.mean()) and plain.control_mean == pytest.approx(
        c.mean()
    )


@pytest.mark.parametrize(
    "values, weights",
    [
        ({"arm_values": [3.0, 3.1], "control_values": [3.0]}, {"arm_weights": [1.0]}),
        ({"arm_values": [3.0], "control_values": [3.0]}, {"control_weights": [0.0]}),
    ],
)
def test_compare_refuses_weights_that_do_not_match_the_values(values, weights):
    test = {"alpha": 0.05, "futility_alpha": 0.1, "rho": 1.0, "prior_variance": 0.5}
    with pytest.raises(ValueError):
        compare(**values, **test, **weights)


def _weighted_and_plain(seed: int) -> tuple:
    fb = _panel(seed, random_share=0.25)
    for i in range(120):
        fb.generate(0, reviewers=[i % fb.n_reviewers])
    arm = Arm(revision=1, role="challenger", control=0, opened=fb.clock, alpha=0.05)
    for _ in range(60):
        fb.generate(0, reviewers=[int(fb.rng.integers(fb.n_reviewers))])
        fb.generate(1, reviewers=[int(fb.rng.integers(fb.n_reviewers))])
    data = arm_data(fb.observations(), arm, OVERALL)
    kwargs = {"alpha": 0.05, "futility_alpha": 0.1, "rho": mixture_for_effect(0.3)}
    weighted = compare(
        data.arm_values,
        data.control_values,
        prior_variance=0.6,
        arm_weights=data.arm_weights,
        control_weights=data.control_weights,
        **kwargs,
    )
    plain = compare(data.arm_values, data.control_values, prior_variance=0.6, **kwargs)
    return weighted, plain


def test_down_weighting_random_raters_gives_the_test_more_information():
    pairs = [_weighted_and_plain(seed) for seed in range(20)]
    ratio = np.median([w.information / p.information for w, p in pairs])
    assert ratio > 1.15


def test_weighted_bounds_still_cover_the_true_difference():
    # The always-valid interval at the end of the run is at least as wide as a fixed-horizon
    # one; it must contain the true 0.3 in (nearly) every run. Rounding and the 1-5 bounds
    # shrink the rated difference a little below 0.3, which the bounds must also allow for.
    covered = 0
    for seed in range(100, 160):
        weighted, _ = _weighted_and_plain(seed)
        covered += weighted.lower < 0.3 and weighted.lower < weighted.difference < weighted.upper
    assert covered >= 56


def test_evidence_counts_a_random_raters_ratings_as_fewer_effective_ratings():
    fb = _panel(5)
    fb.random_rater[0] = True
    for i in range(300):
        fb.generate(0, reviewers=[1 + i % (fb.n_reviewers - 1)])
    for _ in range(30):
        fb.generate(1, reviewers=[0])
    for i in range(30):
        fb.generate(1, reviewers=[1 + i % (fb.n_reviewers - 1)])
    obs = fb.observations()
    ev = evidence_gather(obs)
    weights = reviewer_corrections(obs, np.inf, OVERALL).weights
    d = ev.dimensions.index("overall_satisfaction")
    row = ev.row(1)
    # Half of revision 1's ratings are the random rater's; they are well under half its weight.
    assert 30 * weights[0] / ev.n_ratings[row, d] < 0.25
    assert ev.mean[row, d] == pytest.approx(3.3, abs=0.35)
