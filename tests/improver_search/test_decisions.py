"""The statistical decision on a challenger: promotion, waiting, futility, guardrails."""

from dataclasses import replace

import numpy as np
import pytest

from improvements.search import Arm
from improvements.search.arm_data import arm_data, unit_variance
from improvements.search.decisions import DecisionRules, challenger_decision
from improvements.search.sequential_test import (
    boundary,
    compare,
    information_to_cross,
    mixture_for_effect,
    radius,
)
from tests.improver_search.feedback_builder import FeedbackBuilder

OVERALL = {"overall_satisfaction": 1.0}


def _experiment(
    seed: int, control_mean: float, arm_mean: float, n: int, *, history: int = 30, **arm_kwargs
):
    fb = FeedbackBuilder(np.random.default_rng(seed))
    fb.add_revision(0, {}, control_mean)
    fb.add_revision(1, {}, arm_mean)
    for _ in range(history):
        fb.generate(0)
    arm = Arm(
        revision=1,
        role="challenger",
        control=0,
        opened=fb.clock + 0.001,  # after the last review of the history
        alpha=0.05,
        mixture=mixture_for_effect(0.5),
    )
    for _ in range(n):
        fb.generate(0, **arm_kwargs.get("control", {}))
        fb.generate(1, **arm_kwargs.get("arm", {}))
    return fb, arm


def _decide(fb: FeedbackBuilder, arm: Arm, rules: DecisionRules | None = None):
    obs = fb.observations()
    return challenger_decision(
        obs, arm, OVERALL, rules or DecisionRules(), prior_variance=unit_variance(obs, OVERALL)
    )


def test_a_clearly_better_arm_is_promoted_with_bounds_above_zero():
    fb, arm = _experiment(1, 2.5, 3.7, 30)
    d = _decide(fb, arm)
    assert d.action == "promote" and d.outcome == "promoted"
    assert d.effect.low > 0 and d.effect.low < d.effect.estimate < d.effect.high
    assert d.n_arm == d.n_control == 30


def test_nothing_is_decided_before_the_minimum_generations_per_arm():
    fb, arm = _experiment(2, 2.0, 4.5, 5)
    d = _decide(fb, arm, DecisionRules(min_generations=8))
    assert d.action == "continue" and "waiting for 8" in d.reason


def test_an_equal_arm_is_dropped_as_futile_once_its_gain_is_ruled_out():
    fb, arm = _experiment(3, 3.0, 3.0, 250)
    d = _decide(fb, arm, DecisionRules(min_effect=0.4))
    assert d.action == "drop" and d.outcome in {"futile", "worse"}
    assert d.effect.high < 0.4


def test_a_clearly_worse_arm_is_dropped_as_worse():
    fb, arm = _experiment(4, 3.5, 2.0, 30)
    d = _decide(fb, arm)
    assert d.action == "drop" and d.outcome == "worse" and d.effect.high < 0


def test_a_better_arm_that_fails_often_is_dropped_by_the_failure_guardrail():
    fb = FeedbackBuilder(np.random.default_rng(5))
    fb.add_revision(0, {}, 2.5)
    fb.add_revision(1, {}, 4.0)
    arm = Arm(revision=1, role="challenger", control=0, opened=fb.clock, alpha=0.05)
    rng = np.random.default_rng(0)
    for _ in range(80):
        fb.generate(0)
        fb.generate(1, failed=bool(rng.random() < 0.6))
    d = _decide(fb, arm)
    assert d.action == "drop" and d.outcome == "guardrail" and "failure rate" in d.reason


def test_a_better_but_slow_arm_is_dropped_by_the_generation_time_guardrail():
    fb, arm = _experiment(6, 2.5, 4.0, 25, arm={"seconds": 30.0}, control={"seconds": 10.0})
    d = _decide(fb, arm)
    assert d.action == "drop" and d.outcome == "guardrail" and "generation takes" in d.reason


def test_issue_report_guardrail_drops_an_arm_that_draws_complaints():
    fb, arm = _experiment(7, 2.5, 3.2, 30, arm={"issue": "flicker"})
    d = _decide(fb, arm, DecisionRules(max_issue_rate_increase=0.25))
    assert d.action == "drop" and "issue report rate" in d.reason


def test_only_generations_created_after_the_arm_opened_count():
    fb, arm = _experiment(8, 3.0, 3.0, 10, history=40)
    data = arm_data(fb.observations(), arm, OVERALL)
    assert data.control_values.size <= 10 and data.arm_values.size <= 10


def test_the_control_history_adds_its_most_recent_generations_from_before_the_arm_opened():
    fb, arm = _experiment(8, 3.0, 3.0, 10, history=40)
    obs = fb.observations()
    concurrent = arm_data(obs, arm, OVERALL)
    with_history = arm_data(obs, arm, OVERALL, control_history=25)
    assert with_history.arm_values.size == concurrent.arm_values.size
    added = with_history.control_values.size - concurrent.control_values.size
    assert 20 <= added <= 25  # the 25 most recent, less any without a review
    counts = with_history.control_counts.n_generations - concurrent.control_counts.n_generations
    assert counts == 25
    assert with_history.n_control_history == added and concurrent.n_control_history == 0


def test_a_challenger_is_promoted_on_fewer_new_generations_when_the_control_history_counts():
    def new_generations_to_promote(seed: int, history: int) -> int:
        fb = FeedbackBuilder(np.random.default_rng(seed))
        fb.add_revision(0, {}, 3.0)
        fb.add_revision(1, {}, 3.5)
        for _ in range(40):
            fb.generate(0)
        arm = Arm(revision=1, role="challenger", control=0, opened=fb.clock, alpha=0.05)
        rules = DecisionRules(min_generations=8, control_history=history)
        total = 0
        for n in range(1, 300):
            fb.generate(1)
            # Without history the control gets half the test's traffic, with it a fifth.
            total += 1
            if not history or n % 4 == 0:
                fb.generate(0)
                total += 1
            if n % 4 == 0 and _decide(fb, arm, rules).action == "promote":
                return total
        return total

    concurrent = np.median([new_generations_to_promote(seed, 0) for seed in range(20)])
    with_history = np.median([new_generations_to_promote(seed, 40) for seed in range(20)])
    assert with_history < 0.6 * concurrent, (with_history, concurrent)


def test_a_promotion_says_how_many_control_generations_came_from_before_the_arm_opened():
    fb, arm = _experiment(1, 2.5, 3.7, 30, history=20)
    d = _decide(fb, arm, DecisionRules(control_history=10))
    assert d.action == "promote"
    assert "the control's include 10 from before the arm opened" in d.reason
    assert d.n_control == 40


def test_reviewer_offsets_are_frozen_from_ratings_before_the_arm_opened():
    # A harsh reviewer (-0.9) rates only the arm after it opens. Without the frozen offset the
    # arm would look 0.9 worse; with it (fitted on the history) the difference is about 0.
    fb = FeedbackBuilder(np.random.default_rng(9), leniency_sd=0.0, random_share=0.0)
    fb.leniency[0] = -0.9
    fb.add_revision(0, {}, 3.0)
    fb.add_revision(1, {}, 3.0)
    for i in range(60):
        fb.generate(0, reviewers=[i % fb.n_reviewers])
    for _ in range(30):
        fb.generate(0, reviewers=[0])
    arm = Arm(revision=1, role="challenger", control=0, opened=fb.clock, alpha=0.05)
    for i in range(40):
        fb.generate(0, reviewers=[1 + i % (fb.n_reviewers - 1)])
        fb.generate(1, reviewers=[0])
    data = arm_data(fb.observations(), arm, OVERALL)
    assert data.arm_values.mean() - data.control_values.mean() == pytest.approx(0.0, abs=0.25)


def test_with_the_control_history_a_reviewer_new_since_the_arm_opened_counts_on_neither_side():
    # The newcomer's leniency is unknown (offset 0) and the history never saw them: their 10
    # reviews of the arm would lift it against that history, so they count in the next test.
    fb = FeedbackBuilder(np.random.default_rng(4), random_share=0.0)
    fb.add_revision(0, {}, 3.0)
    fb.add_revision(1, {}, 3.0)
    for i in range(40):
        fb.generate(0, reviewers=[i % fb.n_reviewers])
    arm = Arm(revision=1, role="challenger", control=0, opened=fb.clock, alpha=0.05)
    fb.add_reviewers(1, leniency=1.0)
    newcomer = fb.n_reviewers - 1
    for i in range(10):
        fb.generate(1, reviewers=[i])
        fb.generate(1, reviewers=[newcomer])
        fb.generate(0, reviewers=[newcomer])
    obs = fb.observations()
    with_history = arm_data(obs, arm, OVERALL, control_history=40)
    concurrent = arm_data(obs, arm, OVERALL)
    assert with_history.arm_values.size == 10 and concurrent.arm_values.size == 20
    assert with_history.control_values.size == 40  # the history alone
    assert concurrent.control_values.size == 10  # the newcomer's, shared between the arms
    assert with_history.n_reviews_left_out == 20 and concurrent.n_reviews_left_out == 0


def test_an_arm_opened_with_a_concurrent_control_counts_no_history_whatever_the_rules_say():
    fb, arm = _experiment(8, 3.0, 3.0, 10, history=40)
    frozen = replace(arm, control_history=0)
    rules = DecisionRules(control_history=40)

    concurrent = _decide(fb, arm, DecisionRules(control_history=0))
    assert _decide(fb, frozen, rules).n_control == concurrent.n_control
    assert _decide(fb, arm, rules).n_control > _decide(fb, frozen, rules).n_control


def test_mixture_boundary_needs_more_evidence_at_smaller_alpha():
    assert boundary(30.0, 3.0, 0.01) > boundary(30.0, 3.0, 0.05)
    assert radius(100.0, 3.0, 0.05) < radius(30.0, 3.0, 0.05)


def test_compare_brackets_the_true_difference_of_large_samples():
    rng = np.random.default_rng(10)
    a, c = rng.normal(3.4, 0.7, 4000), rng.normal(3.0, 0.7, 4000)
    cmp = compare(
        a, c, alpha=0.05, futility_alpha=0.1, rho=mixture_for_effect(0.4), prior_variance=0.5
    )
    assert cmp.lower < 0.4 < cmp.upper and cmp.upper - cmp.lower < 0.2


def test_the_information_a_test_needs_falls_with_the_effect_and_meets_the_boundary():
    rho = mixture_for_effect(0.3)
    small, large = (information_to_cross(e, rho, 0.05) for e in (0.2, 0.6))
    assert large < small
    # Where it says, the expected statistic meets the boundary.
    assert 0.2 * small == pytest.approx(boundary(small, rho, 0.05), rel=1e-6)


def test_a_test_already_ahead_needs_less_and_one_past_its_boundary_needs_nothing():
    rho = mixture_for_effect(0.3)
    fresh = information_to_cross(0.3, rho, 0.05)
    ahead = information_to_cross(0.3, rho, 0.05, difference=0.5, information=30.0)
    assert ahead - 30.0 < fresh
    past = boundary(30.0, rho, 0.05) / 30.0 + 0.01
    assert information_to_cross(0.3, rho, 0.05, difference=past, information=30.0) == 30.0


def test_without_a_positive_effect_a_test_never_gets_there():
    rho = mixture_for_effect(0.3)
    assert information_to_cross(0.0, rho, 0.05, limit=1e4) == 1e4
    assert information_to_cross(-0.2, rho, 0.05, difference=0.1, information=5.0) == 1e6
