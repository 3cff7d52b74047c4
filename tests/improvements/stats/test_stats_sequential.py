import numpy as np
import pytest
import scipy.special

from improvements.stats.sequential import (
    ArmCounts,
    confidence_sequence,
    guardrails,
    rate_confidence_sequence,
    sequential_decision,
)

ALPHA = 0.05
HORIZON = 2000  # ratings per arm
MIN_PER_ARM = 30
SCALE = np.arange(1, 6, dtype=float)
CONTROL = np.array([0.10, 0.15, 0.30, 0.30, 0.15])  # mean 3.25, sd ~1.2
BETTER = np.array([0.03, 0.08, 0.27, 0.37, 0.25])  # mean 3.73: +0.48


def _ratings(rng, probabilities, n_experiments):
    return rng.choice(SCALE, size=(n_experiments, HORIZON), p=probabilities)


def _monitor_every_rating(rng, candidate, control):
    """Replay each experiment with the two arms' ratings arriving in random order and apply the
    decision rule after every single rating; return the first decision of each experiment."""
    n_experiments = candidate.shape[0]
    c_low, c_high = confidence_sequence(candidate, alpha=ALPHA / 2)
    k_low, k_high = confidence_sequence(control, alpha=ALPHA / 2)
    arrivals = rng.permuted(np.tile(np.repeat([1, 0], HORIZON), (n_experiments, 1)), axis=1)
    n_c = np.cumsum(arrivals, axis=1)
    n_k = np.cumsum(1 - arrivals, axis=1)
    at_c = np.clip(n_c - 1, 0, None)
    at_k = np.clip(n_k - 1, 0, None)
    lower = np.take_along_axis(c_low, at_c, 1) - np.take_along_axis(k_high, at_k, 1)
    upper = np.take_along_axis(c_high, at_c, 1) - np.take_along_axis(k_low, at_k, 1)
    may_decide = (n_c >= MIN_PER_ARM) & (n_k >= MIN_PER_ARM)
    never = arrivals.shape[1]
    promote = np.where((lower > 0) & may_decide, np.arange(never), never).min(axis=1)
    rollback = np.where((upper < 0) & may_decide, np.arange(never), never).min(axis=1)
    first = np.where(promote < rollback, "promote", np.where(rollback < never, "rollback", "none"))
    return first, np.minimum(promote, rollback), (n_c, n_k)


def test_confidence_sequence_covers_the_mean_at_all_times_at_once():
    rng = np.random.default_rng(0)
    ratings = _ratings(rng, CONTROL, 1000)
    low, high = confidence_sequence(ratings, alpha=ALPHA)
    true_mean = CONTROL @ SCALE
    ever_missed = ((low > true_mean) | (high < true_mean)).any(axis=1).mean()
    assert ever_missed <= ALPHA
    assert np.all(np.diff(low, axis=1) >= 0) and np.all(np.diff(high, axis=1) <= 0)
    assert np.median(high[:, -1] - low[:, -1]) < 0.5


def test_false_promotion_rate_is_at_most_alpha_when_monitoring_after_every_rating():
    rng = np.random.default_rng(1)
    first, _, _ = _monitor_every_rating(
        rng, _ratings(rng, CONTROL, 1000), _ratings(rng, CONTROL, 1000)
    )
    assert (first == "promote").mean() <= ALPHA
    assert (first == "rollback").mean() <= ALPHA


def test_a_half_point_improvement_is_promoted_within_the_horizon():
    rng = np.random.default_rng(2)
    first, when, _ = _monitor_every_rating(
        rng, _ratings(rng, BETTER, 300), _ratings(rng, CONTROL, 300)
    )
    assert (first == "promote").mean() >= 0.9
    assert (first == "rollback").mean() == 0.0
    assert np.median(when[first == "promote"]) < 1500  # ratings in both arms together


def test_a_worse_candidate_is_rolled_back():
    rng = np.random.default_rng(3)
    first, _, _ = _monitor_every_rating(
        rng, _ratings(rng, CONTROL, 200), _ratings(rng, BETTER, 200)
    )
    assert (first == "rollback").mean() >= 0.9


def test_decision_function_agrees_with_the_vectorised_replay():
    rng = np.random.default_rng(4)
    candidate, control = _ratings(rng, BETTER, 1)[0], _ratings(rng, CONTROL, 1)[0]
    first, when, (n_c, n_k) = _monitor_every_rating(rng, candidate[None], control[None])
    assert first[0] == "promote"
    step = int(when[0])
    before = sequential_decision(candidate[: n_c[0, step - 1]], control[: n_k[0, step - 1]])
    at = sequential_decision(candidate[: n_c[0, step]], control[: n_k[0, step]])
    later = sequential_decision(candidate, control)
    assert before.kind == "continue" and at.kind == "promote" and later.kind == "promote"
    assert at.lower > 0 and at.lower <= at.estimate <= at.upper


def test_nothing_is_decided_before_the_minimum_per_arm():
    decision = sequential_decision([5.0] * 29, [1.0] * 500, min_per_arm=30)
    assert decision.kind == "continue" and decision.lower > 0
    assert sequential_decision([5.0] * 30, [1.0] * 500, min_per_arm=30).kind == "promote"
    empty = sequential_decision([], [3.0])
    assert empty.kind == "continue" and empty.lower is None


def test_futility_rolls_back_when_the_minimum_effect_is_ruled_out():
    rng = np.random.default_rng(5)
    same = rng.choice(SCALE, size=(2, HORIZON), p=CONTROL)
    assert sequential_decision(same[0], same[1]).kind == "continue"
    futile = sequential_decision(same[0], same[1], min_effect=0.5)
    assert futile.kind == "rollback" and futile.upper < 0.5 and "futile" in futile.reason


def test_values_outside_the_bounds_are_rejected():
    with pytest.raises(ValueError):
        sequential_decision([6.0], [3.0])
    with pytest.raises(ValueError):
        confidence_sequence([0.5], alpha=0.05, bounds=(0.0, 1.0 - 1.0))


def _log_mixture(events, n, p):
    # Beta(1, 1)-mixture likelihood ratio against rate p (Robbins 1970), vectorised.
    return (
        scipy.special.betaln(1 + events, 1 + n - events)
        - scipy.special.xlogy(events, p)
        - scipy.special.xlog1py(n - events, -p)
    )


def test_rate_confidence_sequence_holds_at_all_times_at_once():
    rng = np.random.default_rng(6)
    rate = 0.02
    events = np.cumsum(rng.random((1000, HORIZON)) < rate, axis=1)
    n = np.arange(1, HORIZON + 1)
    # p lies outside the sequence at (events, n) exactly when the mixture reaches 1/alpha.
    outside = _log_mixture(events, n, rate) >= np.log(1 / ALPHA)
    assert outside.any(axis=1).mean() <= ALPHA
    # ... and spot checks that the returned bounds are that set's edges.
    for k in (1, 10, 100, 250, 500, 2000):
        for e in {int(events[0, k - 1]), int(events[1, k - 1]), 0, k}:
            low, high = rate_confidence_sequence(e, k, alpha=ALPHA)
            assert low <= e / k <= high
            for edge in (low, high):
                if 0 < edge < 1:
                    assert _log_mixture(e, k, edge) == pytest.approx(np.log(1 / ALPHA), abs=1e-6)
            inside = (low + high) / 2
            assert _log_mixture(e, k, inside) < np.log(1 / ALPHA)


def test_rate_bounds_are_tight_for_rare_events():
    low, high = rate_confidence_sequence(8, 400, alpha=0.025)
    assert 0 < low < 0.02 < high < 0.07
    assert rate_confidence_sequence(0, 0, alpha=0.05) == (0.0, 1.0)


def _arm(n=400, failed=8, seconds=10.0, reviewed=300, reported=30):
    return ArmCounts(n, failed, seconds, reviewed, reported)


def test_guardrails_pass_when_the_candidate_looks_like_the_control():
    assert guardrails(_arm(), _arm(failed=12, seconds=12.0, reported=36)) == []


def test_guardrails_catch_failures_slowness_and_issue_reports():
    breaches = guardrails(
        _arm(failed=120, seconds=25.0, reported=150), _arm(), max_failure_rate_increase=0.05
    )
    assert [b.name for b in breaches] == ["failure_rate", "issue_report_rate", "generation_time"]
    assert breaches[0].candidate == pytest.approx(0.3) and breaches[0].control == pytest.approx(
        0.02
    )
    assert "2.50x" in breaches[2].reason


def test_guardrails_wait_for_enough_data_and_evidence():
    # 3 failures in 10 is alarming but could be chance; 10 generations is below min_count anyway.
    assert guardrails(_arm(n=10, failed=3, reviewed=10, reported=1), _arm()) == []
    # A small excess over the allowed increase is not yet evidence of a breach.
    assert guardrails(_arm(failed=36), _arm(failed=8)) == []
