"""The policy benchmark's report of what each closed test measured against the truth."""

from benchmarks.loop_search import measured_line


def test_the_report_gives_each_outcomes_mean_error_in_rating_points_and_standard_errors():
    challengers = [
        {"outcome": "promoted", "rating_effect": 0.4, "measured": (0.6, 0.1)},
        {"outcome": "promoted", "rating_effect": 0.5, "measured": (0.6, 0.2)},
        {"outcome": "futile", "rating_effect": 0.3, "measured": (0.0, 0.15)},
        {"outcome": "running", "rating_effect": 0.3},  # still open: nothing measured yet
    ]

    line = measured_line(challengers)

    assert "promoted 2: +0.15 rating points (+1.2 se)" in line
    assert "futile 1: -0.30 rating points (-2.0 se)" in line
    assert "running" not in line


def test_the_report_says_so_when_no_test_has_closed():
    assert measured_line([{"outcome": "running", "rating_effect": 0.2}]).endswith("none closed")
