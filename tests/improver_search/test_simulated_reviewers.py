"""The benchmark's simulated reviewers: seeded, any JSON-Schema space, integer 1-5 ratings."""

import numpy as np
import pytest

from benchmarks.loop_search import SPACES, load_schema
from benchmarks.simulated_reviewers import FAMILIES, make_simulator
from pipelines.declarations import declaration_check

SCHEMA = {
    "properties": {
        "steps": {
            "type": "integer",
            "minimum": 2,
            "maximum": 100,
            "default": 20,
            "x-scale": "log",
            "x-cost": True,
        },
        "guidance": {"type": "number", "minimum": 1, "maximum": 15, "default": 7},
        "sampler": {"type": "string", "enum": ["a", "b", "c", "d"], "default": "a"},
        "tiled": {"type": "boolean", "default": False},
        "seed": {"type": "integer", "minimum": 0, "maximum": 9, "default": 1, "x-tunable": False},
        "prompt_suffix": {"type": "string", "default": ""},
    }
}
DIMS = ("look", "motion", "overall_satisfaction")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds_a_seeded_taste_with_a_gap_over_any_space(family):
    a = make_simulator(SCHEMA, family=family, seed=3, dimensions=DIMS)
    b = make_simulator(SCHEMA, family=family, seed=3, dimensions=DIMS)
    t = a.taste
    assert t.best_quality - t.default_quality > 0.5
    assert t.best_quality == b.taste.best_quality
    assert t.quality(t.best_params()) == pytest.approx(t.best_quality)
    assert t.quality(t.space.default()) == pytest.approx(t.default_quality)


@pytest.mark.parametrize("space", sorted(SPACES))
def test_every_benchmark_space_is_a_valid_declaration_with_a_taste_per_family(space):
    schema = load_schema(space)
    declaration_check({"type": "object", "properties": schema["properties"]})
    for family in FAMILIES:
        taste = make_simulator(schema, family=family, seed=0).taste
        assert taste.best_quality - taste.default_quality > 0.5


def test_ratings_are_integers_from_1_to_5_for_every_dimension():
    sim = make_simulator(SCHEMA, family="bumps", seed=1, dimensions=DIMS)
    params = sim.taste.space.default()
    for reviewer in range(sim.panel.size):
        _, _, luck = sim.generate(params)
        review = sim.review(params, luck, reviewer)
        assert review.ratings.shape == (len(DIMS),)
        assert review.ratings.dtype.kind == "i"
        assert review.ratings.min() >= 1 and review.ratings.max() <= 5


def test_a_bad_configuration_draws_issue_reports_including_other_with_a_note():
    sim = make_simulator(SCHEMA, family="bumps", seed=2)
    space = sim.taste.space
    rng = np.random.default_rng(0)
    worst = min(
        (space.from_unit(rng.random(len(space.tunable)), space.default()) for _ in range(300)),
        key=sim.taste.quality,
    )
    issues = []
    for _ in range(200):
        _, _, luck = sim.generate(worst)
        issues += sim.review(worst, luck, int(rng.integers(sim.panel.size))).issues
    assert issues
    categories = {c for c, _ in issues}
    assert categories - {"other"}
    notes = [n for c, n in issues if c == "other" and n]
    assert all(isinstance(n, str) for n in notes)


def test_the_panel_has_lenient_harsh_and_random_reviewers():
    sim = make_simulator(SCHEMA, family="bandpass", seed=4)
    assert sim.panel.leniency.min() < 0 < sim.panel.leniency.max()
    assert sim.panel.random_rater.any() and not sim.panel.random_rater.all()


def test_expected_rating_matches_simulated_ratings():
    sim = make_simulator(SCHEMA, family="bumps", seed=5)
    params = sim.taste.space.default()
    overall = sim.taste.overall_index
    values = []
    rng = np.random.default_rng(1)
    for _ in range(3000):
        _, _, luck = sim.generate(params)
        values.append(sim.review(params, luck, int(rng.integers(sim.panel.size))).ratings[overall])
    assert np.mean(values) == pytest.approx(sim.expected_rating(params, overall), abs=0.06)


def test_expected_rating_matches_simulated_ratings_of_the_varied_panel():
    sim = make_simulator(SCHEMA, family="bumps", seed=5, reviewers="varied")
    params = sim.taste.best_params()
    values = []
    rng = np.random.default_rng(1)
    for _ in range(3000):
        _, _, luck = sim.generate(params)
        values.append(sim.review(params, luck, int(rng.integers(sim.panel.size))).ratings)
    values = np.array(values)
    for d in range(len(sim.taste.dimensions)):
        assert values[:, d].mean() == pytest.approx(sim.expected_rating(params, d), abs=0.06)


def test_in_the_varied_panel_a_reviewer_who_uses_more_of_the_scale_rates_further_apart():
    sim = make_simulator(SCHEMA, family="mlp", seed=2, reviewers="varied")
    careful = np.flatnonzero(~sim.panel.random_rater)
    narrow, wide = (
        careful[np.argmin(sim.panel.scale[careful])],
        careful[np.argmax(sim.panel.scale[careful])],
    )
    assert sim.panel.scale[wide] > 1.3 * sim.panel.scale[narrow]
    good, bad = sim.taste.best_params(), sim.taste.space.default()
    overall = sim.taste.overall_index
    spread = {}
    for j in (narrow, wide):
        rated = {}
        for name, params in (("good", good), ("bad", bad)):
            luck = np.zeros(len(sim.taste.dimensions))
            rated[name] = np.mean(
                [sim.review(params, luck, j).ratings[overall] for _ in range(400)]
            )
        spread[j] = rated["good"] - rated["bad"]
    assert spread[wide] > spread[narrow] > 0


def test_the_standard_panel_is_the_same_whether_or_not_varied_panels_exist():
    a = make_simulator(SCHEMA, family="bumps", seed=7)
    b = make_simulator(SCHEMA, family="bumps", seed=7, reviewers="standard")
    assert a.panel.scale is None and a.panel.dim_leniency is None
    assert np.array_equal(a.panel.leniency, b.panel.leniency)
    varied = make_simulator(SCHEMA, family="bumps", seed=7, reviewers="varied")
    assert varied.taste.best_quality == a.taste.best_quality
    assert varied.panel.dim_leniency.shape == (varied.panel.size, len(a.taste.dimensions))
    with pytest.raises(ValueError, match="reviewers"):
        make_simulator(SCHEMA, family="bumps", seed=7, reviewers="grumpy")
