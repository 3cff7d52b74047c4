import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from improvements.search import Observations
from improvements.search import gaussian_process as gpr
from improvements.search.evidence import evidence_gather
from improvements.search.space import ParameterSpace
from improvements.search.surrogate import objective_weights_for, surrogate_fit
from tests.improver_search.feedback_builder import FeedbackBuilder


def _prior(n_groups: int) -> gpr.Prior:
    return gpr.Prior(length_mean=np.zeros(n_groups), amplitude_mean=np.full(n_groups, -1.0))


def test_marginal_likelihood_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    groups = [slice(0, 1), slice(1, 2), slice(2, 5)]
    x = rng.random((30, 5))
    y = np.sin(3 * x[:, 0]) + rng.normal(0, 0.2, 30)
    noise, per_video = np.full(30, 0.04), 1 / rng.integers(1, 4, 30)
    sq = gpr.group_sq_dists(x, x, groups)
    theta = rng.normal(-0.5, 0.4, gpr.n_hyper(3))
    prior = _prior(3)
    _, grad = gpr.neg_log_posterior(theta, sq, y, noise, per_video, prior)
    eps = 1e-6
    numeric = np.array(
        [
            (
                gpr.neg_log_posterior(theta + e, sq, y, noise, per_video, prior)[0]
                - gpr.neg_log_posterior(theta - e, sq, y, noise, per_video, prior)[0]
            )
            / (2 * eps)
            for e in np.eye(theta.size) * eps
        ]
    )
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_additive_kernel_recovers_an_additive_function_from_noisy_points():
    rng = np.random.default_rng(1)
    n, d = 120, 8
    x = rng.random((n, d))

    def f(z):
        return np.exp(-((z[:, 0] - 0.3) ** 2) / 0.02) + (z[:, 1] - 0.5) ** 2

    y = f(x) + rng.normal(0, 0.25, n)
    groups = [slice(j, j + 1) for j in range(d)]
    gp = gpr.fit(x, y, np.full(n, 0.0625), np.zeros(n), groups, _prior(d))
    z = rng.random((2000, d))
    mean, var = gp.predict(z)
    assert np.corrcoef(mean, f(z))[0, 1] > 0.85
    # The two relevant parameters stand out.
    assert set(np.argsort(-gp.relevance())[:2]) == {0, 1}
    assert np.all(var > 0)


def _two_parameter_space() -> ParameterSpace:
    return ParameterSpace.from_schema(
        {
            "properties": {
                "a": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.1},
                "b": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            }
        }
    )


def _linear_in_a(space: ParameterSpace) -> Observations:
    """25 revisions spread over the space, the mean rating rising by 2 points along `a`."""
    rng = np.random.default_rng(2)
    fb = FeedbackBuilder(rng)
    for r in range(25):
        params = space.from_unit(rng.random(2), space.default()) if r else space.default()
        fb.add_revision(r, params, 2.0 + 2.0 * params["a"])
        for _ in range(3):
            fb.generate(r)
    return fb.observations()


def test_surrogate_predicts_the_objective_difference_with_an_interval():
    space = _two_parameter_space()
    obs = _linear_in_a(space)
    evidence = evidence_gather(obs)
    model = surrogate_fit(evidence, space, objective_weights_for(obs.dimensions, None))
    z = space.features([{"a": 0.9, "b": 0.5}])
    z0 = space.features([space.default()])
    mean, var = model.objective_difference(z, z0)
    # Ratings compress the latent 2-point slope (rounding, the 1-5 bounds, random raters):
    # compare with the slope the corrected means themselves show.
    a = np.array([p["a"] for p in evidence.params])
    slope = np.polyfit(a, evidence.mean[:, 1], 1)[0]
    assert mean[0] == pytest.approx(0.8 * slope, abs=0.3)
    assert 0 < np.sqrt(var[0]) < 0.4
    assert model.beta.get("visual_quality", 0) > 0  # the other dimension carries the signal


def test_shorter_prior_lengthscales_widen_the_interval_away_from_the_data():
    space = _two_parameter_space()
    rng = np.random.default_rng(3)
    fb = FeedbackBuilder(rng)
    for r in range(15):  # every revision near the default: a in [0, 0.3]
        params = {"a": 0.3 * rng.random(), "b": rng.random()} if r else space.default()
        fb.add_revision(r, params, 3.0 + params["a"])
        fb.generate(r)
    obs = fb.observations()
    evidence = evidence_gather(obs)
    objective = objective_weights_for(obs.dimensions, None)
    far = space.features([{"a": 0.95, "b": 0.5}])
    z0 = space.features([space.default()])
    sds = {}
    for scale in (1.0, 0.5):
        model = surrogate_fit(evidence, space, objective, length_scale=scale)
        sds[scale] = float(np.sqrt(model.objective_difference(far, z0)[1][0]))
    assert sds[0.5] > 1.1 * sds[1.0]


def test_uncertain_stacking_weights_widen_the_interval_where_their_outputs_change():
    space = _two_parameter_space()
    obs = _linear_in_a(space)
    evidence = evidence_gather(obs)
    objective = objective_weights_for(obs.dimensions, None)
    model = surrogate_fit(evidence, space, objective, stack_uncertainty=True)
    assert model.beta.get("visual_quality", 0) > 0
    assert model.beta_cov is not None and model.beta_cov.shape == (len(model.beta),) * 2
    assert np.all(np.linalg.eigvalsh(model.beta_cov) >= 0)
    # Within the prior's scale: a point of one dimension is worth about a point of the overall.
    assert model.beta["visual_quality"] < 1.5
    z = space.features([{"a": 0.9, "b": 0.5}, {"a": 0.1, "b": 0.5}])
    z0 = space.features([space.default()])
    mean, var = model.objective_difference(z, z0)
    known_mean, known_var = dataclasses.replace(model, beta_cov=None).objective_difference(z, z0)
    np.testing.assert_allclose(mean, known_mean)
    assert var[0] > 1.1 * known_var[0]  # far from the default: visual_quality changes a lot
    assert var[1] == pytest.approx(known_var[1], rel=0.05)  # the default itself: no change
    draws = model.objective_samples(z, 400, np.random.default_rng(0))
    assert np.var(draws[:, 0] - draws[:, 1]) > 0


def test_the_decision_core_imports_no_django():
    code = (
        "import sys, improvements.search; "
        "assert not any(m.startswith('django') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
