"""Calibrate the composites on human ratings: learn, per rating dimension, how metrics predict it.

Django-free (numpy only), so the improver's analysis can call it with plain dicts and the
dashboard can show what it returns. Interface:

    models = calibrate_composites(
        metrics={generation_id: {"sharpness": 412.0, "jitter": 0.0, ...}, ...},
        ratings={generation_id: {"visual_quality": 3.8, "temporal_coherence": 4.1, ...}, ...},
    )
    m = models["visual_quality"]
    m.use_learned        # False → keep the default composite (too little data, or no better)
    m.weights            # {metric: weight} on the metric's [0, 1] score (composites.ScoreMap)
    m.intercept
    m.held_out_rmse      # cross-validated error of the learned model, in rating points
    m.default_rmse       # the same for a straight-line fit on the default composite
    m.predict(metrics_of_one_generation) -> predicted rating (or None if a metric is missing)

`ratings` are per-generation means per dimension, already corrected for rater bias (the
analysis computes them); `metrics` are one generation's metric values (MetricValue rows of one
version — do not mix METRICS_VERSIONs). Each metric enters through its composite score map, so
weights are comparable across metrics and keep the documented direction. The model is ridge
regression; its penalty is chosen by generalised cross-validation on the training folds only,
and `held_out_rmse` comes from an outer K-fold cross-validation, so it is an honest estimate of
the error on new generations. Until a dimension has MIN_GENERATIONS rated generations (and at
least SAMPLES_PER_FEATURE per metric), or when the learned model does not beat the default
composite's held-out error, `use_learned` is False and the defaults stay in force.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import composites

MIN_GENERATIONS = 30
SAMPLES_PER_FEATURE = 5
FOLDS = 5
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)

# Which metrics may explain which rating dimension; other dimensions (e.g. overall
# satisfaction) may use every metric of every composite.
_TABLES = {
    "visual_quality": {**composites.VISUAL_QUALITY, **composites.VISUAL_QUALITY_FACTORS},
    "temporal_coherence": composites.TEMPORAL_COHERENCE,
}
DEFAULT_COMPOSITE = {
    "visual_quality": "visual_quality",
    "temporal_coherence": "temporal_coherence",
    "factual_accuracy": "factual_accuracy",
}


def _score_maps() -> dict[str, composites.ScoreMap]:
    maps: dict[str, composites.ScoreMap] = {}
    for table in _TABLES.values():
        for name, (score_map, _) in table.items():
            maps[name] = score_map
    return maps


def feature_value(name: str, metrics: Mapping[str, object]) -> float | None:
    """A metric's [0, 1] score (its composite score map), or 1 − min(text_cer, 1)."""
    if name == "text_cer":
        return composites.factual_accuracy(_number(metrics.get("text_cer")))
    score_map = _score_maps().get(name)
    raw = composites.scores(metrics, {name: (score_map, 1.0)}) if score_map else {}
    return raw.get(name)


def _number(value: object) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


# Share of the rated generations that must have a metric for the model to use it.
MIN_PRESENT_SHARE = 0.9


def features_for(dimension: str) -> tuple[str, ...]:
    if dimension == "factual_accuracy":
        return ("text_cer",)
    if dimension in _TABLES:
        return tuple(_TABLES[dimension])
    return (*(name for t in _TABLES.values() for name in t), "text_cer")


@dataclass(frozen=True)
class DimensionModel:
    dimension: str
    features: tuple[str, ...]
    n: int  # generations with a rating and every feature
    use_learned: bool
    reason: str
    intercept: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    alpha: float | None = None
    held_out_rmse: float | None = None
    default_rmse: float | None = None  # straight line on the default composite, same folds
    mean_rmse: float | None = None  # predicting the mean rating, same folds

    def predict(self, metrics: Mapping[str, object]) -> float | None:
        """Predicted rating for one generation's metrics (None when a feature is missing)."""
        x = [feature_value(f, metrics) for f in self.features]
        if any(v is None for v in x) or not self.weights:
            return None
        return self.intercept + sum(
            self.weights[f] * v for f, v in zip(self.features, x, strict=True)
        )  # type: ignore[operator]

    def as_dict(self) -> dict[str, object]:
        return {
            "dimension": self.dimension,
            "features": list(self.features),
            "n": self.n,
            "use_learned": self.use_learned,
            "reason": self.reason,
            "intercept": self.intercept,
            "weights": dict(self.weights),
            "alpha": self.alpha,
            "held_out_rmse": self.held_out_rmse,
            "default_rmse": self.default_rmse,
            "mean_rmse": self.mean_rmse,
        }


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Ridge on centred data (intercept not penalised): (intercept, coefficients)."""
    mx, my = x.mean(axis=0), y.mean()
    xc, yc = x - mx, y - my
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return float(my - mx @ coef), coef


def _gcv_alpha(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> float:
    """The penalty with the lowest generalised cross-validation error on (x, y)."""
    xc, yc = x - x.mean(axis=0), y - y.mean()
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    n = len(y)
    best, best_err = alphas[0], math.inf
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink * uty)
        dof = shrink.sum() + 1.0  # + intercept
        err = float(np.sum((yc - fitted) ** 2)) / max(n - dof, 1e-9) ** 2 * n
        if err < best_err:
            best, best_err = alpha, err
    return best


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::k] for i in range(k)]


def _cv_rmse(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], fit) -> float:
    errors = []
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        predict = fit(x[train], y[train])
        errors.append((predict(x[test]) - y[test]) ** 2)
    return float(math.sqrt(np.concatenate(errors).mean()))


def _fit_ridge(alphas: Sequence[float]):
    def fit(x: np.ndarray, y: np.ndarray):
        intercept, coef = _ridge(x, y, _gcv_alpha(x, y, alphas))
        return lambda xt: intercept + xt @ coef

    return fit


def _fit_mean(x: np.ndarray, y: np.ndarray):
    mean = float(y.mean())
    return lambda xt: np.full(len(xt), mean)


def calibrate_dimension(
    dimension: str,
    metrics: Mapping[str, Mapping[str, object]],
    ratings: Mapping[str, float],
    *,
    min_generations: int = MIN_GENERATIONS,
    folds: int = FOLDS,
    alphas: Sequence[float] = ALPHAS,
    seed: int = 0,
) -> DimensionModel:
    """Fit one dimension (see the module docstring); `ratings`: generation id → mean rating."""
    rated = [
        (m, y)
        for m, y in ((metrics.get(g), _number(r)) for g, r in ratings.items())
        if m is not None and y is not None
    ]
    # A metric this pipeline's videos do not have (`quantizer` for a codec that exports no
    # H.264 QP) is left out of the model rather than every generation that lacks it.
    features = tuple(
        f
        for f in features_for(dimension)
        if sum(feature_value(f, m) is not None for m, _ in rated) >= MIN_PRESENT_SHARE * len(rated)
    )
    rows, ys, defaults = [], [], []
    composite = DEFAULT_COMPOSITE.get(dimension)
    for m, y in rated:
        x = [feature_value(f, m) for f in features]
        if any(v is None for v in x):
            continue
        rows.append(x)
        ys.append(y)
        defaults.append(_number(m.get(composite)) if composite else None)
    n = len(ys)
    needed = max(min_generations, SAMPLES_PER_FEATURE * len(features))
    if n < needed:
        return DimensionModel(
            dimension, features, n, False, f"{n} rated generations with metrics; {needed} needed"
        )
    x, y = np.asarray(rows, float), np.asarray(ys, float)
    split = _folds(n, min(folds, n), seed)
    held_out = _cv_rmse(x, y, split, _fit_ridge(alphas))
    mean_rmse = _cv_rmse(x, y, split, _fit_mean)
    default_rmse = None
    if all(d is not None for d in defaults):
        d = np.asarray(defaults, float)[:, None]
        default_rmse = _cv_rmse(d, y, split, _fit_ridge((1e-6,)))
    alpha = _gcv_alpha(x, y, alphas)
    intercept, coef = _ridge(x, y, alpha)
    benchmark = default_rmse if default_rmse is not None else mean_rmse
    better = held_out < benchmark
    reason = (
        f"held-out RMSE {held_out:.3f} vs {benchmark:.3f} for the "
        f"{'default composite' if default_rmse is not None else 'mean rating'}"
    )
    return DimensionModel(
        dimension=dimension,
        features=features,
        n=n,
        use_learned=better,
        reason=reason,
        intercept=intercept,
        weights={f: float(c) for f, c in zip(features, coef, strict=True)},
        alpha=alpha,
        held_out_rmse=held_out,
        default_rmse=default_rmse,
        mean_rmse=mean_rmse,
    )


def calibrate_composites(
    metrics: Mapping[str, Mapping[str, object]],
    ratings: Mapping[str, Mapping[str, float]],
    *,
    dimensions: Sequence[str] | None = None,
    min_generations: int = MIN_GENERATIONS,
    seed: int = 0,
) -> dict[str, DimensionModel]:
    """One DimensionModel per rating dimension found in `ratings` (or the given `dimensions`)."""
    if dimensions is None:
        dimensions = sorted({d for per_gen in ratings.values() for d in per_gen})
    return {
        dim: calibrate_dimension(
            dim,
            metrics,
            {g: r[dim] for g, r in ratings.items() if dim in r},
            min_generations=min_generations,
            seed=seed,
        )
        for dim in dimensions
    }
