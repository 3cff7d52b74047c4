"""Composites calibrated on human ratings: learned only with enough data, and only when better."""

from __future__ import annotations

import numpy as np
import pytest

from videometrics import composites
from videometrics.calibration import MIN_GENERATIONS, calibrate_composites


def _generations(n: int, seed: int = 0) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        m = {
            "sharpness": float(rng.uniform(20, 800)),
            "noise_sigma": float(rng.uniform(0, 8)),
            "blockiness": float(rng.uniform(0, 1.2)),
            "exposure_clipped": float(rng.uniform(0, 0.05)),
            "colorfulness": float(rng.uniform(20, 60)),
            "jitter": float(rng.uniform(0, 0.5)),
            "flicker": float(rng.uniform(0, 1.5)),
            "text_cer": float(rng.uniform(0, 0.5)),
        }
        m["visual_quality"] = composites.visual_quality(m)
        m["temporal_coherence"] = composites.temporal_coherence(m)
        m["factual_accuracy"] = composites.factual_accuracy(m["text_cer"])
        out[f"g{i}"] = m
    return out


def test_calibration_keeps_the_defaults_below_the_minimum_of_rated_generations() -> None:
    metrics = _generations(MIN_GENERATIONS - 1)
    ratings = {g: {"temporal_coherence": 3.0 + m["jitter"]} for g, m in metrics.items()}
    model = calibrate_composites(metrics, ratings)["temporal_coherence"]
    assert not model.use_learned
    assert model.n == MIN_GENERATIONS - 1
    assert "needed" in model.reason and model.held_out_rmse is None


def test_calibration_learns_what_raters_react_to_and_reports_held_out_error() -> None:
    # Raters here mind flicker only, which the default composite weighs at 0.4.
    rng = np.random.default_rng(1)
    metrics = _generations(120)
    ratings = {
        g: {"temporal_coherence": 5.0 - 2.5 * m["flicker"] + float(rng.normal(0, 0.2))}
        for g, m in metrics.items()
    }
    model = calibrate_composites(metrics, ratings)["temporal_coherence"]
    assert model.use_learned
    assert model.held_out_rmse < model.default_rmse
    assert model.held_out_rmse < model.mean_rmse
    # The flicker score (higher = less flicker) carries the weight; jitter's is near zero.
    assert model.weights["flicker"] > 5 * abs(model.weights["jitter"])
    one = metrics["g0"]
    assert model.predict(one) == pytest.approx(ratings["g0"]["temporal_coherence"], abs=0.8)
    assert model.predict({"jitter": 0.1}) is None  # a metric is missing


def test_calibration_keeps_the_default_when_it_already_predicts_the_ratings() -> None:
    metrics = _generations(80, seed=2)
    ratings = {g: {"visual_quality": 1.0 + 4.0 * m["visual_quality"]} for g, m in metrics.items()}
    model = calibrate_composites(metrics, ratings)["visual_quality"]
    assert model.default_rmse is not None and model.default_rmse < 1e-6
    assert not model.use_learned


def test_factual_accuracy_is_calibrated_on_text_cer_alone() -> None:
    metrics = _generations(60, seed=3)
    ratings = {g: {"factual_accuracy": 5.0 - 6.0 * m["text_cer"]} for g, m in metrics.items()}
    model = calibrate_composites(metrics, ratings)["factual_accuracy"]
    assert model.features == ("text_cer",)
    assert model.held_out_rmse is not None and model.held_out_rmse < 0.2


def test_a_metric_the_codec_does_not_export_is_left_out_not_the_generations() -> None:
    # These generations have no `quantizer` (a codec without H.264 QP), the rest is there.
    metrics = _generations(80, seed=4)
    assert all("quantizer" not in m for m in metrics.values())
    ratings = {g: {"visual_quality": 1.0 + 4.0 * m["visual_quality"]} for g, m in metrics.items()}
    model = calibrate_composites(metrics, ratings)["visual_quality"]
    assert "quantizer" not in model.features and "sharpness" in model.features
    assert model.n == 80
