"""Map raw metrics to [0, 1] scores and combine them into the three composites.

Every raw metric goes through a documented monotone map with one anchor, the value that scores
0.5, a steepness exponent and an optional dead zone (`offset`, subtracted first):
`falling(x) = 1 / (1 + (max(x − offset, 0) / x50)^k)` for "lower is better",
`rising(x) = 1 - falling(x)` for "higher is better". Composites are weighted geometric means of
the scores, so one severe defect pulls the composite down and cannot be averaged away by a
perfect score elsewhere. A missing metric (None) is left out and the weights renormalised.
visual_quality is then multiplied by its factors (the quantiser score to a power), which are
left out (factor 1) when missing.
These defaults are the ones benchmarks/metric_validity.py validated against SSIM/PSNR (table in
docs/metrics.md); videometrics.calibration refits them per pipeline on human ratings. Change
METRICS_VERSION when they change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

_FLOOR = 1e-3  # keeps log() finite; a score of 0 would otherwise zero any composite


@dataclass(frozen=True)
class ScoreMap:
    metric: str
    anchor: float  # raw value that scores 0.5
    steepness: float
    higher_is_better: bool
    offset: float = 0.0  # subtracted before mapping (e.g. blockiness 1.0 = no blocking)

    def __call__(self, value: float) -> float:
        x = max(value - self.offset, 0.0)
        falling = 1.0 if x == 0.0 else 1.0 / (1.0 + (x / self.anchor) ** self.steepness)
        return 1.0 - falling if self.higher_is_better else falling


# name: (map, weight)
VISUAL_QUALITY: dict[str, tuple[ScoreMap, float]] = {
    "sharpness": (ScoreMap("sharpness", 100.0, 1.0, True), 0.35),
    "noise_sigma": (ScoreMap("noise_sigma", 5.0, 2.0, False, offset=1.0), 0.25),
    "blockiness": (ScoreMap("blockiness", 0.4, 2.0, False, offset=0.15), 0.25),
    "exposure_clipped": (ScoreMap("exposure_clipped", 0.15, 2.0, False), 0.08),
    "colorfulness": (ScoreMap("colorfulness", 15.0, 2.0, True), 0.07),
}
# Factors scale the picture's composite instead of joining its mean: the encoder's quantiser
# (videometrics.quantizer) says how much of the picture was thrown away whatever the picture now
# looks like — grain wiped out by compression looks *cleaner* to noise_sigma — and averaging it
# in would dilute every other term's effect. name: (map, exponent).
VISUAL_QUALITY_FACTORS: dict[str, tuple[ScoreMap, float]] = {
    "quantizer": (ScoreMap("quantizer", 14.0, 3.0, False, offset=20.0), 0.7),
}
TEMPORAL_COHERENCE: dict[str, tuple[ScoreMap, float]] = {
    "jitter": (ScoreMap("jitter", 0.12, 2.0, False), 0.6),
    "flicker": (ScoreMap("flicker", 0.5, 1.5, False), 0.4),
}
_COMPLEMENTED = frozenset({"temporal_ssim", "temporal_flickering"})


def _raw(metrics: Mapping[str, object], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    if not math.isfinite(x):
        return None
    return 1.0 - x if name in _COMPLEMENTED else x


def scores(
    metrics: Mapping[str, object], table: Mapping[str, tuple[ScoreMap, float]]
) -> dict[str, float]:
    """Per-metric scores in [0, 1] for the metrics present in `metrics`."""
    out = {}
    for name, (score_map, _) in table.items():
        raw = _raw(metrics, name)
        if raw is not None:
            out[name] = score_map(raw)
    return out


def weighted_geometric_mean(
    parts: Mapping[str, float], table: Mapping[str, tuple[ScoreMap, float]]
) -> float | None:
    total_w = sum(table[name][1] for name in parts)
    if total_w <= 0:
        return None
    log_sum = sum(table[name][1] * math.log(max(score, _FLOOR)) for name, score in parts.items())
    return math.exp(log_sum / total_w)


def visual_quality(metrics: Mapping[str, object]) -> float | None:
    picture = weighted_geometric_mean(scores(metrics, VISUAL_QUALITY), VISUAL_QUALITY)
    if picture is None:
        return None
    for name, score in scores(metrics, VISUAL_QUALITY_FACTORS).items():
        picture *= max(score, _FLOOR) ** VISUAL_QUALITY_FACTORS[name][1]
    return picture


def temporal_coherence(metrics: Mapping[str, object]) -> float | None:
    return weighted_geometric_mean(scores(metrics, TEMPORAL_COHERENCE), TEMPORAL_COHERENCE)


def factual_accuracy(text_cer: float | None) -> float | None:
    """1 − min(CER, 1); None when there is no script to check against."""
    if text_cer is None:
        return None
    return 1.0 - min(max(text_cer, 0.0), 1.0)
