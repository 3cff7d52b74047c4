"""ImproverPolicy.step end to end on synthetic feedback (no database)."""

import numpy as np
import pytest

from improvements.search import (
    Arm,
    ExperimentState,
    ImproverPolicy,
    Interval,
    ParameterSpace,
    Settings,
)
from improvements.search.arm_data import unit_variance
from improvements.search.evidence import evidence_gather
from improvements.search.memory import repeats_failure, tried_changes
from improvements.search.policy import explorer_calibration, explorer_shrinkage
from tests.improver_search.feedback_builder import FeedbackBuilder

SCHEMA = {
    "properties": {
        "sharpness": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.2,
            "x-step": 0.05,
            "x-affects": {"visual_quality": "+", "visual_artifact": "+"},
        },
        "speed": {
            "type": "number",
            "minimum": 0,
            "maximum": 3,
            "default": 2.0,
            "x-step": 0.1,
            "x-affects": {"flicker": "+"},
        },
        "crf": {"type": "integer", "minimum": 0, "maximum": 51, "default": 30, "x-step": 2},
        "style": {"type": "string", "enum": ["a", "b", "c"], "default": "a"},
        "seed": {"type": "integer", "minimum": 0, "maximum": 99, "default": 3, "x-tunable": False},
    }
}


def taste(p: dict) -> float:
    """Mean overall rating: sharpness best at 0.7, speed best at 0.5, crf best low."""
    return (
        3.0
        - 2.5 * (p["sharpness"] - 0.7) ** 2
        - 0.4 * (p["speed"] - 0.5) ** 2
        - 0.02 * max(p["crf"] - 18, 0)
        + (0.3 if p["style"] == "b" else 0.0)
    )


@pytest.fixture
def space() -> ParameterSpace:
    return ParameterSpace.from_schema(SCHEMA)


def _feedback(space: ParameterSpace, n_revisions: int = 24, seed: int = 0) -> FeedbackBuilder:
    rng = np.random.default_rng(seed)
    fb = FeedbackBuilder(rng)
    default = space.complete(space.default())
    fb.add_revision(0, default, taste(default))
    for _ in range(12):
        fb.generate(0)
    for r in range(1, n_revisions):
        params = space.from_unit(rng.random(len(space.tunable)), default)
        fb.add_revision(r, params, taste(params))
        for _ in range(2):
            fb.generate(r)
    return fb


def _settings(**kw) -> Settings:
    return Settings(min_model_revisions=6, **kw)


def _challenger_running(
    fb: FeedbackBuilder, revision: int, params: dict, generations: int, mean: float | None = None
) -> ExperimentState:
    """`params` opened as a challenger of revision 0, then `generations` of each; its true mean
    rating is `mean`, else the taste's."""
    fb.add_revision(revision, params, taste(params) if mean is None else mean)
    arm = Arm(revision=revision, role="challenger", control=0, opened=fb.clock, alpha=0.05)
    for _ in range(generations):
        fb.generate(revision)
        fb.generate(0)
    return ExperimentState(active=0, arms=[arm])


def test_plan_traffic_sums_to_one_over_the_control_and_every_arm(space):
    fb = _feedback(space)
    plan = ImproverPolicy(space, _settings()).step(fb.observations(), ExperimentState(active=0))
    assert sum(plan.traffic.values()) == pytest.approx(1.0)
    assert plan.active == 0 and 0 in plan.traffic
    assert {a.key for a in plan.open} <= set(plan.traffic)
    assert all(share > 0 for share in plan.traffic.values())


def test_new_arms_change_parameters_by_at_least_a_step_and_never_untunable_ones(space):
    fb = _feedback(space)
    policy = ImproverPolicy(space, _settings(explorers=6))
    plan = policy.step(fb.observations(), ExperimentState(active=0))
    active = fb.revisions[0]
    assert plan.open
    for arm in plan.open:
        assert arm.changes, "a proposal must change something"
        assert space.restrict_to_meaningful(arm.params, active) == dict(arm.params)
        assert arm.params["seed"] == active["seed"]
        for name, (old, new) in arm.changes.items():
            assert space.by_name[name].meaningful(old, new)


def test_a_failed_change_is_not_proposed_again(space):
    fb = _feedback(space)
    active = fb.revisions[0]
    # The obvious improvement (sharpness up, speed down) was tested and failed.
    failed_params = {**active, "sharpness": 0.7, "speed": 0.5}
    fb.add_revision(100, failed_params, taste(active))
    history = [
        Arm(
            revision=100,
            role="challenger",
            control=0,
            opened=0.0,
            alpha=0.05,
            outcome="futile",
            effect=Interval(0.0, -0.3, 0.05, 0.95),
        )
    ]
    state = ExperimentState(active=0, history=history)
    memory = tried_changes(space, history, fb.revisions)
    policy = ImproverPolicy(space, _settings(explorers=8, repeat_override_probability=1.01))
    for _ in range(3):
        plan = policy.step(fb.observations(), state)
        units = np.array([space.to_unit(a.params) for a in plan.open])
        assert not repeats_failure(space, units, space.to_unit(active), memory).any()
        for _ in range(4):
            fb.generate(0)


def test_memory_flags_the_same_change_in_a_bigger_dose_but_not_the_opposite_one(space):
    active = space.complete(space.default())
    failed = {**active, "crf": 26}
    revisions = {0: active, 1: failed}
    history = [Arm(revision=1, role="challenger", control=0, opened=0.0, outcome="futile")]
    memory = tried_changes(space, history, revisions)
    candidates = [
        {**active, "crf": 20},
        {**active, "crf": 34},
        {**active, "crf": 26},
        {**active, "crf": 26, "speed": 1.0},
    ]
    units = np.array([space.to_unit(c) for c in candidates])
    flagged = repeats_failure(space, units, space.to_unit(active), memory)
    assert flagged.tolist() == [True, False, True, False]
    # A promoted change is not a failure.
    ok = [Arm(revision=1, role="challenger", control=0, opened=0.0, outcome="promoted")]
    assert not repeats_failure(
        space, units, space.to_unit(active), tried_changes(space, ok, revisions)
    ).any()


def test_a_clear_winner_is_promoted_and_the_other_challenger_superseded(space):
    fb = _feedback(space)
    best = space.complete({**fb.revisions[0], "sharpness": 0.7, "speed": 0.5, "crf": 18})
    good = space.complete({**fb.revisions[0], "sharpness": 0.6, "style": "b"})
    fb.add_revision(200, best, taste(best) + 0.6)
    fb.add_revision(201, good, taste(fb.revisions[0]) + 0.5)
    opened = fb.clock
    arms = [
        Arm(revision=r, role="challenger", control=0, opened=opened, alpha=0.025, mixture=1.0)
        for r in (200, 201)
    ]
    for _ in range(25):
        for r in (0, 200, 201):
            fb.generate(r)
    plan = ImproverPolicy(space, _settings(max_challengers=2)).step(
        fb.observations(), ExperimentState(active=0, arms=arms)
    )
    outcome = {d.revision: (d.action, d.outcome) for d in plan.decisions}
    # At most one promotion per step; the other challenger's control is retired with it.
    assert outcome[200] == ("promote", "promoted")
    assert outcome[201] == ("drop", "superseded")
    assert [d.action for d in plan.decisions].count("promote") == 1
    assert plan.active == 200
    assert all(a.control == 200 for a in plan.open)
    assert 200 in plan.traffic and 0 not in plan.traffic


def test_an_explorer_is_dropped_once_it_has_its_reviews_and_is_not_promising(space):
    fb = _feedback(space)
    bad = {**fb.revisions[0], "sharpness": 0.0, "speed": 3.0}
    fb.add_revision(300, bad, taste(bad))
    arm = Arm(revision=300, role="explorer", control=0, opened=fb.clock)
    fb.generate(300, reviewers=[1, 2, 3])
    plan = ImproverPolicy(space, _settings(explorer_reviews=2)).step(
        fb.observations(), ExperimentState(active=0, arms=[arm])
    )
    (decision,) = [d for d in plan.decisions if d.revision == 300]
    assert decision.action == "drop" and decision.outcome == "explored"
    assert 300 not in plan.traffic


def test_rationale_names_its_evidence_and_the_model_interval(space):
    fb = _feedback(space, n_revisions=30)
    plan = ImproverPolicy(space, _settings(explorers=4)).step(
        fb.observations(), ExperimentState(active=0)
    )
    arm = plan.open[0]
    assert arm.predicted.low < arm.predicted.estimate < arm.predicted.high
    assert "predicts overall_satisfaction" in arm.rationale
    assert "visual_quality" in arm.evidence["dimensions"]
    for name in arm.changes:
        assert name in arm.rationale


def test_no_model_and_no_challenger_with_too_few_revisions(space):
    fb = FeedbackBuilder(np.random.default_rng(1))
    default = space.complete(space.default())
    fb.add_revision(0, default, 3.0)
    for _ in range(5):
        fb.generate(0)
    plan = ImproverPolicy(space, _settings()).step(fb.observations(), ExperimentState(active=0))
    assert all(a.role == "explorer" for a in plan.open)
    assert plan.open and plan.active == 0


def test_issue_evidence_gives_the_share_of_reviews_with_an_interval_inside_0_1(space):
    rng = np.random.default_rng(4)
    fb = FeedbackBuilder(rng)
    default = space.complete(space.default())
    fb.add_revision(0, default, taste(default))
    for _ in range(16):
        fb.generate(0, issue="flicker")
    for r in range(1, 24):
        params = space.from_unit(rng.random(len(space.tunable)), default)
        fb.add_revision(r, params, taste(params))
        for _ in range(2):
            fb.generate(r)
    plan = ImproverPolicy(space, _settings(explorers=6)).step(
        fb.observations(), ExperimentState(active=0)
    )
    cited = [i for arm in plan.open for i in arm.evidence.get("issues", [])]
    assert cited, "the active revision's flicker reports are cited"
    for issue in cited:
        low, high = issue["active_rate_interval"]
        assert 0.0 <= low <= issue["active_rate"] <= high <= 1.0
    assert any("95%" in arm.rationale and "flicker" in arm.rationale for arm in plan.open)


def test_a_challenger_gets_most_of_the_test_traffic_while_the_control_history_is_ahead(space):
    fb = _feedback(space)
    for _ in range(30):
        fb.generate(0)
    best = space.complete(
        {**fb.revisions[0], "sharpness": 0.7, "speed": 0.5, "crf": 18, "style": "b"}
    )
    state = _challenger_running(fb, 200, best, generations=3)
    concurrent = ImproverPolicy(space, _settings(control_history=0)).step(fb.observations(), state)
    history = ImproverPolicy(space, _settings(control_history=40)).step(fb.observations(), state)
    assert concurrent.traffic[0] == pytest.approx(concurrent.traffic[200], rel=0.05)
    assert history.traffic[200] > 3 * history.traffic[0]
    decision = next(d for d in history.decisions if d.revision == 200)
    assert decision.n_control > 30 and decision.n_arm == 3


def test_the_models_sure_favourite_opens_as_a_challenger_before_anything_is_screened(space):
    fb = _feedback(space, n_revisions=30)
    state = ExperimentState(active=0)
    # Screening needs more reviews than any revision has: only the favourite path can open one.
    unscreened = _settings(verify_reviews=100, open_unscreened_probability=0.9)
    plan = ImproverPolicy(space, unscreened).step(fb.observations(), state)
    (challenger,) = [a for a in plan.open if a.role == "challenger"]
    assert challenger.evidence["origin"].startswith("favourite:")
    assert "Not screened" in challenger.rationale
    assert challenger.predicted.estimate >= unscreened.min_effect
    assert taste(challenger.params) > taste(fb.revisions[0]) + 0.3
    # No explorer spends its review on the point under test.
    steps = space.unit_steps()
    tested = space.to_unit(challenger.params)
    for arm in plan.open:
        if arm.role == "explorer":
            assert np.any(np.abs(space.to_unit(arm.params) - tested) >= steps - 1e-9)
    screened_only = ImproverPolicy(
        space, _settings(verify_reviews=100, open_unscreened_probability=1.0)
    ).step(fb.observations(), state)
    assert not [a for a in screened_only.open if a.role == "challenger"]


def test_concurrent_challengers_split_alpha_unless_each_is_its_own_experiment(space):
    fb = _feedback(space, n_revisions=30)
    state = ExperimentState(active=0)

    def alphas(**settings) -> list[float]:
        chosen = _settings(verify_reviews=100, max_challengers=2, **settings)
        plan = ImproverPolicy(space, chosen).step(fb.observations(), state)
        return [a.alpha for a in plan.open if a.role == "challenger"]

    split = alphas()
    own = alphas(split_alpha=False)
    assert split and all(a == pytest.approx(0.025) for a in split)
    assert own and all(a == pytest.approx(0.05) for a in own)


def test_a_small_gain_under_test_gives_way_to_the_models_sure_favourite(space):
    fb = _feedback(space, n_revisions=30)
    small = space.complete({**fb.revisions[0], "sharpness": 0.5})
    state = _challenger_running(fb, 300, small, generations=10)
    # Nothing is screened (too few reviews everywhere): only the favourite can supersede it.
    plan = ImproverPolicy(space, _settings(verify_reviews=100)).step(fb.observations(), state)
    decision = next(d for d in plan.decisions if d.revision == 300)
    assert (decision.action, decision.outcome) == ("drop", "model")
    assert "unscreened favourite" in decision.reason
    assert decision.n_arm == 10
    (challenger,) = [a for a in plan.open if a.role == "challenger"]
    assert taste(challenger.params) > taste(small) + 0.3
    # Without the favourite path nothing can supersede it, and its test goes on.
    kept = ImproverPolicy(
        space, _settings(verify_reviews=100, open_unscreened_probability=1.0)
    ).step(fb.observations(), state)
    assert next(d for d in kept.decisions if d.revision == 300).action == "continue"


def _pre_emption_step(space, sharpness: float, generations: int, **settings):
    """A challenger of revision 0 with `sharpness` changed, `generations` into its test, and
    one policy step in which only the sooner-confirmation rule may supersede it."""
    fb = _feedback(space, n_revisions=30)
    params = space.complete({**fb.revisions[0], "sharpness": sharpness})
    state = _challenger_running(fb, 300, params, generations=generations)
    chosen = _settings(verify_reviews=100, supersede_probability=1.0, **settings)
    plan = ImproverPolicy(space, chosen).step(fb.observations(), state)
    return params, next(d for d in plan.decisions if d.revision == 300), plan


def test_a_long_test_of_a_small_gain_is_pre_empted_by_a_candidate_confirmed_sooner(space):
    small, decision, plan = _pre_emption_step(space, 0.5, 10)
    assert (decision.action, decision.outcome) == ("drop", "model")
    assert decision.reason.startswith("pre-empted: its test")
    assert "unscreened favourite" in decision.reason
    (challenger,) = [a for a in plan.open if a.role == "challenger"]
    assert taste(challenger.params) > taste(small) + 0.3
    _, kept, _ = _pre_emption_step(space, 0.5, 10, preempt_sooner=False)
    assert kept.action == "continue"
    # The same candidate, but the rule asks it to be better with near certainty.
    _, unsure, _ = _pre_emption_step(space, 0.5, 10, preempt_probability=0.9999)
    assert unsure.action == "continue"
    # ... or only once the running arm has more generations than these 10.
    _, young, _ = _pre_emption_step(space, 0.5, 10, preempt_min_generations=11)
    assert young.action == "continue"
    _, old_enough, _ = _pre_emption_step(space, 0.5, 10, preempt_min_generations=10)
    assert old_enough.action == "drop"


def test_a_test_near_its_end_is_not_pre_empted_by_a_test_that_must_start_over(space):
    _, decision, plan = _pre_emption_step(space, 0.7, 8)
    # The favourite is predicted far higher, but a new test needs min_generations per arm,
    # more than this one still needs.
    assert decision.action == "continue"
    assert not [a for a in plan.open if a.role == "challenger"]


def _explorers_predicted(
    fb: FeedbackBuilder, space: ParameterSpace, error: float, sd: float, scale: float = 1.0
) -> list[Arm]:
    """Every revision but the default as a closed explorer whose prediction when it opened was
    its true gain times `scale` plus `error`, with a predicted standard deviation of `sd`."""
    default = fb.revisions[0]
    half = 1.6448536269514722 * sd
    arms = []
    for r, params in fb.revisions.items():
        if r == 0:
            continue
        gain = (taste(params) - taste(default)) * scale + error
        arms.append(
            Arm(
                revision=r,
                role="explorer",
                control=0,
                opened=0.0,
                predicted=Interval(gain, gain - half, gain + half, 0.9),
                outcome="explored",
            )
        )
    return arms


def _sharpness_explored(space: ParameterSpace, seed: int, sharpness, generations: int):
    """The default with 40 generations, and 40 revisions that change only its sharpness (to
    `sharpness(rng, default sharpness)`), each with `generations` generations; returns the
    builder, the evidence and the objective's unit variance (objective: the overall rating)."""
    rng = np.random.default_rng(seed)
    fb = FeedbackBuilder(rng)
    default = space.complete(space.default())
    fb.add_revision(0, default, taste(default))
    for _ in range(40):
        fb.generate(0)
    for r in range(1, 41):
        params = {**default, "sharpness": float(sharpness(rng, default["sharpness"]))}
        fb.add_revision(r, params, taste(params))
        for _ in range(generations):
            fb.generate(r)
    obs = fb.observations()
    return fb, evidence_gather(obs), unit_variance(obs, {"overall_satisfaction": 1.0})


def test_explorers_widen_the_model_intervals_when_its_predictions_missed(space):
    # Small changes of the default (gains within about +-0.1), two generations each: the
    # ratings' rounding and the random raters compress big gains, not these.
    objective = {"overall_satisfaction": 1.0}
    fb, evidence, unit_var = _sharpness_explored(
        space, 5, lambda rng, s: s + rng.uniform(-0.1, 0.1), generations=2
    )

    right = explorer_calibration(
        _explorers_predicted(fb, space, 0.0, 0.2), evidence, objective, unit_var
    )
    wrong = explorer_calibration(
        _explorers_predicted(fb, space, 0.8, 0.2), evidence, objective, unit_var
    )

    # Each explorer was measured on two generations, whose noise alone is larger than the
    # model's sd: it must not count as the model's error.
    assert right == pytest.approx(1.0, abs=0.15)
    assert wrong > 2.0
    assert explorer_calibration([], evidence, objective, unit_var) == 1.0


def test_explorers_shrink_the_favourites_gain_when_predictions_were_too_large(space):
    # Sharpness over its whole range: true gains from about -0.6 to +0.6, four generations each.
    objective = {"overall_satisfaction": 1.0}
    fb, evidence, unit_var = _sharpness_explored(
        space, 7, lambda rng, s: rng.uniform(0.0, 1.0), generations=4
    )

    right = explorer_shrinkage(
        _explorers_predicted(fb, space, 0.0, 0.1), evidence, objective, unit_var
    )
    doubled = explorer_shrinkage(
        _explorers_predicted(fb, space, 0.0, 0.1, scale=2.0), evidence, objective, unit_var
    )

    # Rounded ratings and random raters compress the measured gains a little against the taste
    # (0.7-0.8 here); predictions twice as large must be believed about half as much.
    assert right > 0.6
    assert doubled / right == pytest.approx(0.5, abs=0.1)
    assert explorer_shrinkage([], evidence, objective, unit_var) == 1.0


def test_a_favourite_whose_kind_of_prediction_missed_does_not_open_untested(space):
    fb = _feedback(space, n_revisions=30)
    # Closed explorers whose predictions were three times their true gains.
    state = ExperimentState(
        active=0, history=tuple(_explorers_predicted(fb, space, 0.0, 0.1, scale=3.0))
    )

    def challengers(**kw) -> list:
        plan = ImproverPolicy(space, _settings(verify_reviews=100, **kw)).step(
            fb.observations(), state
        )
        return [a for a in plan.open if a.role == "challenger"]

    assert len(challengers()) == 1
    assert challengers(shrink_fresh=True) == []


def test_the_reported_favourite_is_one_the_generation_time_guardrail_lets_open(space):
    # Sharper is better up to 0.7, but each 0.1 of sharpness makes a generation 35% slower:
    # from the default 0.2, the guardrail's 1.5 times allows about 0.3 at most.
    rng = np.random.default_rng(4)
    fb = FeedbackBuilder(rng)
    default = space.complete(space.default())

    def add(revision: int, params: dict, generations: int) -> None:
        fb.add_revision(revision, params, taste(params))
        for _ in range(generations):
            fb.generate(revision, seconds=10.0 * float(np.exp(3.0 * params["sharpness"])))

    add(0, default, 12)
    for r in range(1, 30):
        add(r, space.from_unit(rng.random(len(space.tunable)), default), 2)
    state = ExperimentState(active=0)
    guarded = ImproverPolicy(space, _settings())
    guarded.step(fb.observations(), state)
    lifted = ImproverPolicy(space, _settings(max_generation_time_ratio=100.0))
    lifted.step(fb.observations(), state)
    assert guarded.favourite is not None and lifted.favourite is not None
    assert guarded.favourite["sharpness"] <= 0.35
    assert lifted.favourite["sharpness"] > 0.45


def _quick_futility_step(space, gain: float, level: float):
    """A challenger of revision 0 whose true gain is `gain`, 12 generations into its test, and
    one policy step in which neither the model nor a new candidate may drop it."""
    fb = _feedback(space, seed=0)
    default = fb.revisions[0]
    params = space.complete({**default, "crf": 24})
    state = _challenger_running(fb, 300, params, generations=12, mean=taste(default) + gain)
    chosen = _settings(
        verify_reviews=100,
        drop_probability=0.0,
        supersede_probability=1.0,
        preempt_sooner=False,
        quick_futility_level=level,
    )
    plan = ImproverPolicy(space, chosen).step(fb.observations(), state)
    return next(d for d in plan.decisions if d.revision == 300)


def test_a_test_whose_measured_gain_falls_short_of_a_worthwhile_one_is_dropped_as_futile(space):
    worse = _quick_futility_step(space, -0.3, Settings.quick_futility_level)
    assert (worse.action, worse.outcome) == ("drop", "futile")
    assert "is unlikely" in worse.reason and "upper bound" in worse.reason
    # The always-valid bound alone has not ruled it out yet: only the quick bound drops it.
    off = _quick_futility_step(space, -0.3, 1.0)
    assert off.action == "continue"
    # A real gain well above the worthwhile one is not dropped by it.
    better = _quick_futility_step(space, 0.8, Settings.quick_futility_level)
    assert better.action in ("continue", "promote")
    assert "is unlikely" not in better.reason
