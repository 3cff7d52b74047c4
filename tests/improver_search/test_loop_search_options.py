"""The policy benchmark's options: reviews that rate only the objective (the overall
dimension), and the model's own optimum as a diagnostic."""

import json
from collections import Counter

import numpy as np
import pytest

from benchmarks.loop_search import (
    Store,
    _apply,
    _model_optimum_quality,
    asked_only,
    load_schema,
    run_loop,
    run_seed,
    run_trials,
)
from benchmarks.loop_search import main as loop_search_main
from benchmarks.simulated_reviewers import make_simulator
from improvements.search import (
    Arm,
    ArmDecision,
    ExperimentState,
    ImproverPolicy,
    Plan,
    Settings,
)


@pytest.fixture(scope="module")
def sim():
    return make_simulator(load_schema("diffusers"), family="bumps", seed=0)


def _store_with_default(sim) -> Store:
    store = Store(dimensions=sim.taste.dimensions)
    store.revisions[0] = sim.taste.space.complete(sim.taste.space.default())
    return store


def test_a_review_asked_for_every_dimension_adds_one_rating_per_dimension(sim):
    store = _store_with_default(sim)
    rng = np.random.default_rng(1)

    while not store.generate(sim, 0, rng):  # a failed generation gets no review
        pass

    reviews = len(set(store.r_rvw))
    assert store.n_ratings == reviews * len(sim.taste.dimensions)


def test_a_review_asked_for_the_objective_only_adds_one_overall_rating(sim):
    store = _store_with_default(sim)
    rng = np.random.default_rng(1)
    overall = sim.taste.overall_index

    while not store.generate(sim, 0, rng, only=overall):
        pass

    assert store.n_ratings == len(set(store.r_rvw))
    assert set(store.r_dim) == {overall}


def test_only_the_control_and_challengers_are_asked_for_the_objective_alone_in_tests_mode(sim):
    state = ExperimentState(
        active=0,
        arms=(
            Arm(revision=1, role="challenger", control=0, opened=0.0),
            Arm(revision=2, role="explorer", control=0, opened=0.0),
        ),
    )
    overall = sim.taste.overall_index

    assert [asked_only("tests", r, state, sim) for r in (0, 1, 2)] == [overall, overall, None]
    assert [asked_only("objective", r, state, sim) for r in (0, 1, 2)] == [overall] * 3
    assert [asked_only("all", r, state, sim) for r in (0, 1, 2)] == [None] * 3


def test_a_baseline_asking_only_the_objective_runs_more_trials_in_the_same_budget(sim):
    # Each trial of random search draws one configuration; with one rating per review instead
    # of one per dimension the same budget buys about as many times more trials.
    calls = {"full": 0, "objective": 0}
    original = sim.taste.space.from_unit

    def counting(kind):
        def from_unit(units, base=None):
            calls[kind] += 1
            return original(units, base)

        return from_unit

    for kind, objective_only in (("full", False), ("objective", True)):
        sim.taste.space.from_unit = counting(kind)
        try:
            run_trials(sim, 200, "random", 2, seed=3, objective_only=objective_only)
        finally:
            sim.taste.space.from_unit = original

    assert calls["objective"] > 3 * calls["full"]


def test_the_model_optimum_of_a_policy_without_a_model_is_the_active_configuration(sim):
    store = _store_with_default(sim)
    policy = ImproverPolicy(sim.taste.space, Settings(seed=0))

    quality = _model_optimum_quality(policy, sim, store.revisions, 0)

    assert quality == sim.taste.quality(store.revisions[0])


def test_climbing_reports_the_model_optimum_at_every_checkpoint(sim):
    # Checkpoints past the budget carry the last value, as the other columns do.
    result = run_loop(sim, 500, Settings(seed=0), 50, seed=0, climb=True)

    assert set(result.optimum) == {500, 1000, 2000, 3000}
    assert all(np.isfinite(q) for q in result.optimum.values())


def _reviews_per_video(store: Store) -> dict[int, int]:
    return Counter(g for g, _ in set(zip(store.r_gen, store.r_rvw, strict=True)))


def test_a_fixed_number_of_reviews_per_video_gives_every_video_that_many(sim):
    store = _store_with_default(sim)
    rng = np.random.default_rng(1)

    for _ in range(30):
        store.generate(sim, 0, rng, reviews=1)

    per_video = _reviews_per_video(store)
    assert per_video and set(per_video.values()) == {1}
    assert store.n_ratings == len(per_video) * len(sim.taste.dimensions)


def test_by_default_a_video_gets_one_to_three_reviews(sim):
    store = _store_with_default(sim)
    rng = np.random.default_rng(1)

    for _ in range(60):
        store.generate(sim, 0, rng)

    per_video = _reviews_per_video(store)
    assert set(per_video.values()) == {1, 2, 3}


def test_a_closed_challenger_records_whether_it_was_superseded_or_dropped_by_the_model(sim):
    store = _store_with_default(sim)
    store.revisions[1] = dict(store.revisions[0])
    store.revisions[2] = dict(store.revisions[0])
    arms = tuple(Arm(revision=r, role="challenger", control=0, opened=0.0) for r in (1, 2))
    challengers = {r: {"revision": r, "outcome": "running"} for r in (1, 2)}
    plan = Plan(
        active=0,
        decisions=(
            ArmDecision(1, "drop", "model", "superseded: the model predicts +0.10 [...]"),
            ArmDecision(2, "drop", "model", "the model, with this arm's own ratings, gives ..."),
        ),
        open=(),
        traffic={0: 1.0},
    )

    _apply(plan, ExperimentState(active=0, arms=arms), store, sim, {}, challengers)

    assert challengers[1]["outcome"] == challengers[2]["outcome"] == "model"
    assert challengers[1]["reason"] == "superseded"
    assert challengers[2]["reason"] == "the model"


def test_a_cohort_of_lenient_reviewers_joins_the_loops_panel_once_its_ratings_are_in():
    sim = make_simulator(load_schema("diffusers"), family="bumps", seed=0)
    before = sim.panel.leniency.copy()

    run_loop(sim, 200, Settings(seed=0), 50, seed=0, cohort=(100, 10, 0.5))

    assert sim.panel.size == before.size + 10
    np.testing.assert_array_equal(sim.panel.leniency[: before.size], before)
    assert sim.panel.leniency[before.size :].mean() == pytest.approx(0.5, abs=0.2)
    assert not sim.panel.random_rater[before.size :].any()


def test_a_varied_panels_baselines_are_cached_apart_from_the_standard_panels(tmp_path):
    cache = tmp_path / "baselines.json"
    opts = {"budget": 150, "step_every": 50, "trial_reviews": 2, "baselines": ["random"]}

    for reviewers in ("standard", "varied"):
        run_seed(("diffusers", "bumps", 0, {**opts, "cache": str(cache), "reviewers": reviewers}))

    keys = sorted(json.loads(cache.read_text()))
    assert keys == ["diffusers/bumps/0/random/150/2", "diffusers/bumps/0/random/150/2/varied"]


def test_a_cohort_joining_a_varied_panel_is_refused_before_any_run(capsys):
    with pytest.raises(SystemExit) as exit_:
        loop_search_main(["--reviewers", "varied", "--cohort", "100", "5", "0.5", "--baselines"])

    assert exit_.value.code == 2
    assert "--cohort joins the standard panel only" in capsys.readouterr().err
