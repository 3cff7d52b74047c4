"""The model-calibration benchmark: leave-one-out residuals and predictions at new moves."""

import numpy as np
import pytest

from benchmarks.model_calibration import loo_z, report, run_seed
from improvements.search import gaussian_process as gpr


def test_leave_one_out_residuals_equal_those_of_a_fit_without_each_point():
    rng = np.random.default_rng(3)
    groups = (slice(0, 1), slice(1, 2), slice(2, 5))
    x = rng.random((25, 5))
    y = np.sin(3 * x[:, 0]) + rng.normal(0, 0.2, 25)
    noise, per_video = np.full(25, 0.04), 1 / rng.integers(1, 4, 25)
    gp = gpr.condition(x, y, noise, per_video, groups, rng.normal(-0.5, 0.4, gpr.n_hyper(3)))
    c = gpr.kernel(x, x, groups, gp.hyper) + np.diag(noise + gp.hyper.tau**2 * per_video)

    z = loo_z(gp)

    for i in (0, 7, 24):
        keep = np.arange(25) != i
        k = c[keep][:, i]
        solve = np.linalg.solve(c[keep][:, keep], np.column_stack([y[keep] - gp.mean, k]))
        mean = gp.mean + k @ solve[:, 0]
        var = c[i, i] - k @ solve[:, 1]
        assert z[i] == pytest.approx((y[i] - mean) / np.sqrt(var), rel=1e-6)


def test_a_short_run_reports_both_checks_with_finite_figures():
    result = run_seed(("diffusers", "bumps", 0, 300, (0.1, 0.4), {}))

    assert result["loo_z2"] and all(np.isfinite(v) for v in result["loo_z2"].values())
    assert set(result["moves"]) == {"0.1", "0.4"}
    for move in result["moves"].values():
        assert all(np.isfinite(v) for v in move.values()) and move["z2"] > 0
    text = report([result])
    assert "leave-one-out z^2" in text and "| 0.4 |" in text
