"""The oracle bound benchmark: the step it tests closes the share asked, and its test decides."""

import math

import pytest

from benchmarks.loop_search import load_schema
from benchmarks.oracle_bound import run_step, step_config
from benchmarks.simulated_reviewers import make_simulator


@pytest.mark.parametrize("share", [0.25, 0.5, 1.0])
def test_the_tested_configuration_closes_at_least_the_share_of_the_gap_asked(share):
    sim = make_simulator(load_schema("diffusers"), family="bumps", seed=2)
    _, closed = step_config(sim, share)
    assert closed >= share - 1e-9


def test_the_whole_gap_is_confirmed_within_a_few_hundred_ratings_and_a_null_step_is_not():
    schema = load_schema("builtin")
    whole = run_step(schema, "builtin", "bumps", 0, 500, 1.0)
    assert whole["effect"] > 0
    assert whole["confirmed_at"] <= 500
    assert whole["fixed"][500]
    tiny = run_step(schema, "builtin", "bumps", 0, 500, 0.0)
    assert tiny["closed"] < 0.05
    assert math.isinf(tiny["confirmed_at"])
