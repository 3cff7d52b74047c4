"""The panel-change benchmark: its scenarios change the panel as they say, and its table has
every one of them."""

import numpy as np

from benchmarks.panel_change import SCENARIOS, main
from tests.improver_search.feedback_builder import FeedbackBuilder


def test_a_drifting_panel_rates_the_same_configuration_higher_later():
    fb = FeedbackBuilder(np.random.default_rng(0), random_share=0.0, drift=0.02, drift_from=50)
    fb.add_revision(0, {}, 3.0)
    for _ in range(100):
        fb.generate(0)
    r = fb.observations().ratings
    early, late = r.value[r.time < 50].mean(), r.value[r.time > 80].mean()
    assert late - early > 0.5  # about 0.02 * 15-50 generations past the start of the drift


def test_the_table_has_a_row_per_scenario_and_a_column_per_control(capsys):
    assert main(["--experiments", "2", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "| history 40 | concurrent only |" in out
    for scenario in SCENARIOS:
        assert f"| {scenario} |" in out
