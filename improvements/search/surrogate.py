"""The surrogate model: every output as a function of the parameters, learned from all revisions.

Outputs, each a Gaussian process over the declared space (`gaussian_process`), one observation
per revision with a known noise level:

- every rating dimension: its reviewer-bias-corrected mean;
- every issue signal with enough reports: the share of reviews reporting it;
- generation time: the mean log seconds.

The objective (a weighted mean of dimensions; by default the overall rating) is modelled by
*stacking*: objective = sum_k beta_k * output_k(x) + residual(x), where the outputs are the other
dimensions and the issue signals, beta comes from a sign-constrained Bayesian regression across
revisions with its prior stated in rating points (`_stacking_posterior`), and the residual is a
GP of its own. When the overall rating mostly follows the other dimensions, its prediction then
borrows their ratings (five ratings per review instead of one) and the reviewers' complaints;
when it does not, beta shrinks and the residual GP carries it. beta is an estimate: its
posterior covariance C enters every predicted difference and Thompson draw, Var(beta'a) =
beta'V_a beta + a'C a + tr(C V_a) (`stack_uncertainty`; off, beta is treated as known).

`x-affects` enters as the prior on lengthscales: a parameter declared to move an output starts
with a short lengthscale (relevant) for it, one declared for other outputs only starts long.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray

from improvements.search import gaussian_process as gpr
from improvements.search.evidence import Evidence
from improvements.search.issue_signals import param_words
from improvements.search.space import ParameterSpace

# Priors per parameter and output, from x-affects: lengthscale (unit coordinates) and the
# additive amplitude as a share of the output's typical scale, for a parameter declared to move
# this output, declared to move other outputs only, or with no declaration at all.
_LENGTH = {"declared": math.log(0.4), "elsewhere": math.log(0.8), "undeclared": math.log(0.6)}
_AMPLITUDE = {"declared": 0.6, "elsewhere": 0.2, "undeclared": 0.35}
# A signal needs this many reporting reviews overall before it gets a model of its own.
MIN_SIGNAL_REPORTS = 5
MAX_SIGNALS = 4
_RATE_FLOOR = 0.02


@dataclass
class Output:
    name: str
    kind: str  # dimension | signal | time
    gp: gpr.GaussianProcess
    rows: NDArray[np.int64]  # training rows, as indices into Surrogate.x


@dataclass
class Surrogate:
    space: ParameterSpace
    outputs: dict[str, Output]
    objective_weights: Mapping[str, float]
    beta: dict[str, float]  # stacking weights of the auxiliary outputs
    residual: Output | None  # objective minus the stacked part
    n_revisions: int
    x: NDArray[np.float64]  # features of every revision in the evidence
    thetas: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    # Covariance of the stacking weights (in the order of `beta`), or None to treat them as
    # known: an estimated weight's error multiplies its output's predicted change.
    beta_cov: NDArray[np.float64] | None = None

    # --- predictions ---------------------------------------------------------------------------

    def objective(self, z: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior mean and variance of the objective at features z (the variance treats the
        stacking weights as known; `objective_difference` and the draws carry their error)."""
        mean = np.zeros(z.shape[0])
        var = np.zeros(z.shape[0])
        for name, b in self.beta.items():
            m, v = self.outputs[name].gp.predict(z)
            mean += b * m
            var += b * b * v
        if self.residual is not None:
            m, v = self.residual.gp.predict(z)
            mean += m
            var += v
        return mean, var

    def objective_mean(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """Posterior mean of the objective only (cheap: no variances)."""
        sq = gpr.group_sq_dists(self.x, z, self.space.feature_groups)
        mean = np.zeros(z.shape[0])
        parts = [(self.outputs[n], b) for n, b in self.beta.items()]
        if self.residual is not None:
            parts.append((self.residual, 1.0))
        for output, b in parts:
            gp = output.gp
            mean += b * (gp.mean + gp.cross_from_sq(sq[:, output.rows, :]).T @ gp.weights)
        return mean

    def objective_difference(
        self, z: NDArray[np.float64], z0: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean and variance of objective(z) - objective(z0), z0 a single point."""
        mean = np.zeros(z.shape[0])
        var = np.zeros(z.shape[0])
        geometry = _Geometry.of(self, z, z0)
        changes, variances = [], []
        for name, b in self.beta.items():
            m, v = geometry.difference(self.outputs[name])
            mean += b * m
            var += b * b * v
            changes.append(m)
            variances.append(v)
        if self.residual is not None:
            m, v = geometry.difference(self.residual)
            mean += m
            var += v
        if self.beta_cov is not None and changes:
            # Var(b'a) with b and a independent: b'V_a b (above) + a'C a + tr(C V_a).
            a = np.array(changes)  # (outputs, z)
            var += np.einsum("iz,ij,jz->z", a, self.beta_cov, a)
            var += np.diag(self.beta_cov) @ np.array(variances)
        return mean, np.maximum(var, 1e-10)

    def output_difference(
        self, name: str, z: NDArray[np.float64], z0: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return _Geometry.of(self, z, z0).difference(self.outputs[name])

    def objective_samples(
        self, z: NDArray[np.float64], n_samples: int, rng: np.random.Generator
    ) -> NDArray[np.float64]:
        """(n_samples, len(z)) joint posterior draws of the objective (for Thompson sampling)."""
        total = np.zeros((n_samples, z.shape[0]))
        parts = [(self.outputs[n].gp, np.full(n_samples, b)) for n, b in self.beta.items()]
        if self.beta_cov is not None and parts:
            errors = rng.multivariate_normal(np.zeros(len(parts)), self.beta_cov, n_samples)
            parts = [(gp, b + errors[:, k]) for k, (gp, b) in enumerate(parts)]
        if self.residual is not None:
            parts.append((self.residual.gp, np.ones(n_samples)))
        for gp, b in parts:
            mean, _ = gp.predict(z)
            cov = gp.covariance(z, z)
            cov[np.diag_indices_from(cov)] += 1e-8
            try:
                chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                w, v = np.linalg.eigh(cov)
                chol = v * np.sqrt(np.maximum(w, 0))
            draws = mean + rng.standard_normal((n_samples, z.shape[0])) @ chol.T
            total += b[:, None] * draws
        return total

    def summary(self) -> dict[str, object]:
        """JSON-ready: lengthscales per output, stacking weights (for the dashboard/rationale)."""
        names = self.space.tunable_names
        out: dict[str, object] = {
            "revisions": self.n_revisions,
            "stacking": {k: round(v, 3) for k, v in self.beta.items()},
            "lengthscales": {
                o.name: {
                    n: round(float(x), 3) for n, x in zip(names, o.gp.lengthscales, strict=True)
                }
                for o in self.outputs.values()
            },
        }
        if self.residual is not None:
            out["residual_scale"] = round(self.residual.gp.scale, 3)
        return out


@dataclass
class _Geometry:
    """Squared distances between every revision and [z; z0], computed once per query and
    shared by all outputs (each uses the rows it was trained on)."""

    sq_train: NDArray[np.float64]  # (G, n_revisions, m + 1)
    sq_z0: NDArray[np.float64]  # (G, m, 1)

    @classmethod
    def of(cls, model: Surrogate, z: NDArray[np.float64], z0: NDArray[np.float64]) -> _Geometry:
        groups = model.space.feature_groups
        zz = np.vstack([z, z0])
        return cls(gpr.group_sq_dists(model.x, zz, groups), gpr.group_sq_dists(z, z0, groups))

    def difference(self, output: Output) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior mean and variance of f(z) - f(z0)."""
        gp = output.gp
        k = gp.cross_from_sq(self.sq_train[:, output.rows, :])
        mu = gp.mean + k.T @ gp.weights
        v = scipy.linalg.solve_triangular(gp.chol, k, lower=True, check_finite=False)
        r = 1.0 - k.T @ gp.ones_solve
        var = gp.prior_variance - np.sum(v * v, axis=0) + r * r / gp.ones_quad
        prior_cov = gpr.kernel_from_sq(self.sq_z0, gp.hyper)[:, 0]
        cov = prior_cov - v[:, :-1].T @ v[:, -1] + r[:-1] * r[-1] / gp.ones_quad
        return mu[:-1] - mu[-1], np.maximum(var[:-1] + var[-1] - 2 * cov, 1e-12)


# --- fitting ----------------------------------------------------------------------------------


def objective_weights_for(
    dimensions: Sequence[str], weights: Mapping[str, float] | None
) -> dict[str, float]:
    """The objective's dimension weights: as given, else overall_satisfaction, else equal."""
    if weights:
        unknown = set(weights) - set(dimensions)
        if unknown:
            raise ValueError(f"objective names unknown dimensions: {sorted(unknown)}")
        total = sum(weights.values())
        return {d: w / total for d, w in weights.items() if w}
    if "overall_satisfaction" in dimensions:
        return {"overall_satisfaction": 1.0}
    return {d: 1.0 / len(dimensions) for d in dimensions}


@dataclass
class Warm:
    """Hyperparameters from earlier fits, by output, with the data size they were fitted on.

    A fit reuses them without re-optimising until the number of revisions has grown by
    `REFIT_GROWTH`: it changes speed, and only marginally the numbers.
    """

    theta: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    fitted_on: dict[str, int] = field(default_factory=dict)


REFIT_GROWTH = 1.15


def surrogate_fit(
    evidence: Evidence,
    space: ParameterSpace,
    objective: Mapping[str, float],
    *,
    stack: bool = True,
    warm: Warm | None = None,
    max_iter: int = 60,
    max_fit_points: int = 80,
    length_scale: float = 1.0,
    stack_uncertainty: bool = True,
) -> Surrogate:
    """Fit every output's Gaussian process on the evidence; `length_scale` multiplies the
    prior's lengthscales (below 1: a less smooth function, wider intervals away from data)."""
    warm = warm if warm is not None else Warm()
    prior_for = functools.partial(_prior, space, length_scale=length_scale)
    x = space.features(evidence.params)
    groups = space.feature_groups
    outputs: dict[str, Output] = {}
    thetas: dict[str, NDArray[np.float64]] = {}
    dims = evidence.dimensions

    def fit_gp(
        name: str, rows: NDArray[np.bool_], y, noise, per_video, prior
    ) -> gpr.GaussianProcess:  # noqa: ANN001
        n = int(rows.sum())
        start = warm.theta.get(name)
        fresh = start is None or n > REFIT_GROWTH * warm.fitted_on.get(name, 0)
        gp = gpr.fit(
            x[rows],
            y[rows],
            noise[rows],
            per_video[rows],
            groups,
            prior,
            start=start,
            max_iter=max_iter if fresh else 0,
            max_fit_points=max_fit_points,
        )
        if fresh:
            warm.theta[name] = gp.theta
            warm.fitted_on[name] = n
        thetas[name] = gp.theta
        return gp

    def fit_one(name: str, kind: str, rows: NDArray[np.bool_], y, noise, per_video, prior) -> None:  # noqa: ANN001
        gp = fit_gp(name, rows, y, noise, per_video, prior)
        outputs[name] = Output(name, kind, gp, np.flatnonzero(rows))

    per_video = 1.0 / np.maximum(evidence.n_rated_generations, 1.0)
    for d, dim in enumerate(dims):
        n = evidence.n_ratings[:, d]
        rows = (n > 0) & np.isfinite(evidence.mean[:, d])
        if rows.sum() < 3:
            continue
        noise = evidence.residual_var[d] / np.maximum(n, 1.0)
        prior = prior_for(dim, scale=0.5)
        fit_one(dim, "dimension", rows, evidence.mean[:, d], noise, per_video, prior)

    reviews = evidence.n_reviews
    ranked = sorted(evidence.signals.items(), key=lambda kv: -kv[1].sum())
    for name, counts in ranked[:MAX_SIGNALS]:
        if counts.sum() < MIN_SIGNAL_REPORTS:
            continue
        rows = reviews > 0
        if rows.sum() < 3:
            continue
        rate = np.where(rows, counts / np.maximum(reviews, 1), 0.0)
        pooled = max(counts.sum() / reviews.sum(), _RATE_FLOOR)
        noise = pooled * (1 - pooled) / np.maximum(reviews, 1.0)
        prior = prior_for(name, scale=max(pooled, 0.05), tau=0.05)
        fit_one(f"signal:{name}", "signal", rows, rate, noise, per_video, prior)

    rows = evidence.n_timed > 0
    if rows.sum() >= 3:
        noise = evidence.log_seconds_var / np.maximum(evidence.n_timed, 1.0)
        prior = prior_for("generation_seconds", scale=0.3, tau=0.02)
        fit_one("time", "time", rows, evidence.log_seconds, noise, np.zeros(len(rows)), prior)

    # The objective per revision and its sampling variance.
    w = np.array([objective.get(d, 0.0) for d in dims])
    obj_cols = w > 0
    has_all = np.all(evidence.n_ratings[:, obj_cols] > 0, axis=1)
    y_obj = np.where(has_all, np.nan_to_num(evidence.mean) @ w, np.nan)
    noise_obj = np.sum(
        (w[obj_cols] ** 2)
        * evidence.residual_var[obj_cols]
        / np.maximum(evidence.n_ratings[:, obj_cols], 1.0),
        axis=1,
    )
    rows = has_all & np.isfinite(y_obj)
    beta: dict[str, float] = {}
    beta_cov: NDArray[np.float64] | None = None
    residual: Output | None = None
    if rows.sum() >= 3:
        aux = [
            name
            for name, o in outputs.items()
            if o.kind != "time" and not (o.kind == "dimension" and objective.get(name, 0.0) > 0)
        ]
        target = y_obj.copy()
        if len(objective) > 1 or not stack:
            aux = aux if stack else []
        if aux and stack and rows.sum() >= 8:
            beta, beta_cov = _stacking_posterior(
                outputs, aux, x[rows], y_obj[rows], noise_obj[rows]
            )
            if not stack_uncertainty:
                beta_cov = None
            for name, b in beta.items():
                target[rows] -= b * outputs[name].gp.predict(x[rows])[0]
        prior = prior_for("objective", scale=0.25 if beta else 0.5)
        gp = fit_gp("objective", rows, target, noise_obj, per_video, prior)
        residual = Output("objective", "objective", gp, np.flatnonzero(rows))
    return Surrogate(
        space=space,
        outputs=outputs,
        objective_weights=dict(objective),
        beta=beta,
        residual=residual,
        n_revisions=int(rows.sum()),
        x=x,
        thetas=thetas,
        beta_cov=beta_cov,
    )


# Prior scale of a stacking weight, in objective points per unit of the output: every dimension
# is rated on the same scale, so a point more of one is worth about a point of the objective or
# less; an issue signal is a share of reviews (0-1).
_STACK_PRIOR_SCALE = {"dimension": 1.0, "signal": 3.0}


def _stacking_posterior(
    outputs: Mapping[str, Output],
    aux: Sequence[str],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    noise: NDArray[np.float64],
) -> tuple[dict[str, float], NDArray[np.float64] | None]:
    """Stacking weights as a sign-constrained Bayesian regression, with their covariance.

    A better dimension can only help the objective and a more frequent complaint only hurt it,
    so weights are >= 0 for dimensions and <= 0 for issue signals (non-negative least squares
    on sign-flipped columns). The prior is stated in the objective's units
    (`_STACK_PRIOR_SCALE`), not per standardised column, so an output that barely varies across
    the revisions cannot get a huge weight (a ridge on standardised columns gave 2-4 points per
    point of a dimension, and treated the weight as known). The weights' posterior covariance
    (Gaussian, given the signs) is returned so that predictions carry it.
    """
    a = np.column_stack([outputs[n].gp.predict(x)[0] for n in aux])
    keep = a.std(axis=0) > 1e-6
    if not keep.any():
        return {}, None
    names = [n for n, k in zip(aux, keep, strict=True) if k]
    sign = np.array([-1.0 if outputs[n].kind == "signal" else 1.0 for n in names])
    tau = np.array([_STACK_PRIOR_SCALE.get(outputs[n].kind, 1.0) for n in names])
    weight = 1.0 / np.maximum(noise, 1e-4)
    weight = weight / weight.mean()
    centre = np.average(a[:, keep], axis=0, weights=weight)
    a = (a[:, keep] - centre) * sign
    yc = y - np.average(y, weights=weight)
    root = np.sqrt(weight)
    aw, yw = a * root[:, None], yc * root
    # sigma^2: the residual variance at unit weight (noise and what stacking misses), from a
    # first fit; it sets the prior's precision sigma^2 / tau^2 in the design's units.
    sigma2 = float(np.sum(yw**2) / max(y.size - 1, 1))
    for _ in range(2):
        design = np.vstack([aw, np.diag(np.sqrt(sigma2) / tau)])
        target = np.concatenate([yw, np.zeros(len(names))])
        coef, _ = scipy.optimize.nnls(design, target)
        used = coef > 1e-9
        rss = float(np.sum((aw @ coef - yw) ** 2))
        sigma2 = max(rss / max(y.size - int(used.sum()), 1), 1e-6)
    if not used.any():
        return {}, None
    d_used = np.vstack([aw[:, used], np.diag(np.sqrt(sigma2) / tau[used])])
    cov = sigma2 * np.linalg.inv(d_used.T @ d_used)
    cov = cov * np.outer(sign[used], sign[used])
    beta = {n: float(c * sg) for n, c, sg, u in zip(names, coef, sign, used, strict=True) if u}
    return beta, cov


def _prior(
    space: ParameterSpace,
    output: str,
    *,
    scale: float,
    tau: float = 0.15,
    length_scale: float = 1.0,
) -> gpr.Prior:
    token = output.split(":", 1)[1] if output.startswith("other:") else None
    lengths = np.empty(len(space.tunable))
    amplitudes = np.empty(len(space.tunable))
    for j, p in enumerate(space.tunable):
        if token is not None:
            kind = "declared" if token[:5] in param_words(space, p.name) else "undeclared"
        elif output == "objective" or not p.affects:
            kind = "undeclared"
        elif output in p.affects:
            kind = "declared"
        else:
            kind = "elsewhere"
        lengths[j] = _LENGTH[kind] + math.log(length_scale)
        amplitudes[j] = math.log(_AMPLITUDE[kind] * scale)
    return gpr.Prior(
        length_mean=lengths,
        amplitude_mean=amplitudes,
        interaction_mean=math.log(0.4 * scale),
        tau_mean=math.log(tau),
    )
