"""The end-to-end benchmark is reproducible: two runs of one seed split the traffic alike.

The product assigns each generation to an experiment arm by a hash of its id, a fresh UUID, so
before the benchmark seeded its ids two runs of one seed drifted apart from the first
experiment on. Each run here is a fresh process on its own SQLite database, as the benchmark
runs it.
"""

from __future__ import annotations

import uuid

import pytest

from benchmarks import closed_loop


def _run(seed: int, settings: dict | None = None) -> dict:
    return closed_loop.run_seed(
        {
            "space": "builtin",
            "family": "bumps",
            "seed": seed,
            "mode": "library",
            "render": "stand-in",
            "budget": 400,
            "step_every": 50,
            "trial_reviews": 6,
            "baselines": [],
            "database_url": None,
            "settings": settings or {},
        }
    )


def test_two_runs_of_one_seed_assign_every_generation_to_the_same_revision():
    first, second = _run(0), _run(0)
    # Explorers open from the first steps on, so several revisions share the traffic.
    assert first["revisions"] > 3
    assert first["traffic_digest"] == second["traffic_digest"]
    assert first["curve"] == second["curve"]
    assert first["challengers"] == second["challengers"]


def test_another_seed_splits_the_traffic_differently():
    assert _run(0)["traffic_digest"] != _run(1)["traffic_digest"]


def test_seeded_generation_ids_are_valid_version_4_uuids_and_repeat_per_seed():
    original = uuid.uuid4
    try:
        closed_loop._seed_generation_ids(3)
        first = [uuid.uuid4() for _ in range(3)]
        closed_loop._seed_generation_ids(3)
        again = [uuid.uuid4() for _ in range(3)]
    finally:
        uuid.uuid4 = original
    assert first == again
    assert len(set(first)) == 3
    assert all(u.version == 4 for u in first)


def test_a_policy_setting_override_changes_the_run():
    assert _run(0, {"explorers": 2})["traffic_digest"] != _run(0)["traffic_digest"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--settings", '{"no_such_setting": 1}'], "unknown policy settings: ['no_such_setting']"),
        (["--settings", "{explorers: 2}"], "not JSON"),
        (["--settings", "[1]"], "a JSON object"),
        (["--runs", "builtin/bandpass"], "'builtin/bandpass' is not space/family/seed"),
        (["--runs", "builtin/waves/1"], "unknown taste family 'waves'"),
        (["--runs", "nowhere/bumps/1"], "unknown space 'nowhere'"),
    ],
)
def test_bad_settings_or_runs_are_refused_before_any_run_starts(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        closed_loop.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
