"""Temporal measures between consecutive frames, and the streaming series that pools them.

Two tiers, so that the pass stays fast yet a single bad frame is still seen:

* every consecutive pair: mean absolute luma difference (MAD) and mean-luma change on the
  temporal-level luma (a handful of microseconds each). These feed `flicker`,
  `temporal_flickering`, scene-cut detection and the `jitter` glitch detector.
* every PAIR_EVERY-th pair: SSIM and forward/backward DIS optical flow (warp error, motion).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2
_SSIM_WINDOW = (11, 11)
_SSIM_SIGMA = 1.5

# Forward–backward consistency (Sundaram, Brox & Keutzer 2010): a pixel is occluded (or its
# flow unreliable) when |F + B(x+F)|² ≥ α(|F|² + |B(x+F)|²) + β.
_FB_ALPHA = 0.01
_FB_BETA = 0.5


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-size uint8 images, in code values."""
    return cv2.norm(a, b, cv2.NORM_L1) / a.size


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004; 11×11 Gaussian window, σ = 1.5, K1 = .01, K2 = .03)."""
    x = a.astype(np.float32)
    y = b.astype(np.float32)

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, _SSIM_WINDOW, _SSIM_SIGMA)

    mx, my = blur(x), blur(y)
    mxx, myy, mxy = mx * mx, my * my, mx * my
    sxx = blur(x * x) - mxx
    syy = blur(y * y) - myy
    sxy = blur(x * y) - mxy
    num = (2.0 * mxy + _SSIM_C1) * (2.0 * sxy + _SSIM_C2)
    den = (mxx + myy + _SSIM_C1) * (sxx + syy + _SSIM_C2)
    return float(cv2.mean(num / den)[0])


@dataclass(frozen=True)
class FlowResult:
    warp_error: float  # masked MSE of luma in [0, 1]
    motion: float  # mean forward flow magnitude, pixels per frame at the flow resolution
    valid_fraction: float  # share of pixels that passed the forward–backward check


class FlowMeter:
    """DIS optical flow (PRESET_ULTRAFAST) between two frames, with an occlusion mask."""

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def _grid_for(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        if self._grid is None or self._grid[0].shape != (h, w):
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (gx, gy)
        return self._grid

    def measure(self, prev: np.ndarray, cur: np.ndarray) -> FlowResult:
        """Warp `cur` back onto `prev` with the prev→cur flow and compare where it is reliable."""
        h, w = prev.shape
        fwd = self._dis.calc(prev, cur, None)
        bwd = self._dis.calc(cur, prev, None)
        gx, gy = self._grid_for(h, w)
        fx, fy = fwd[..., 0], fwd[..., 1]
        map_x = gx + fx
        map_y = gy + fy
        warped = cv2.remap(cur, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        bwd_at = cv2.remap(bwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        bx, by = bwd_at[..., 0], bwd_at[..., 1]
        f2 = fx * fx + fy * fy
        b2 = bx * bx + by * by
        sx, sy = fx + bx, fy + by
        consistent = (sx * sx + sy * sy) < _FB_ALPHA * (f2 + b2) + _FB_BETA
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        mask = (consistent & inside).view(np.uint8)
        n_valid = int(cv2.countNonZero(mask))
        motion = float(cv2.mean(np.sqrt(f2))[0])
        if n_valid == 0:
            # Nothing trustworthy to compare: treat as a total warp failure of the pair.
            diff = cv2.absdiff(prev, warped)
            sq = cv2.multiply(diff, diff, dtype=cv2.CV_32F)
            return FlowResult(float(cv2.mean(sq)[0]) / 65025.0, motion, 0.0)
        diff = cv2.absdiff(prev, warped)
        sq = cv2.multiply(diff, diff, dtype=cv2.CV_32F)
        mse = float(cv2.mean(sq, mask=mask)[0]) / 65025.0
        return FlowResult(mse, motion, n_valid / float(h * w))


@dataclass
class PairSample:
    """What is known about one consecutive frame pair (t − 1, t)."""

    mad: float
    mean_delta: float  # signed change of mean luma
    ssim: float | None = None
    flow: FlowResult | None = None


# A pair is a "spike" when its MAD exceeds GLITCH_RATIO × the local median (+ slack) and a
# "drop" when it is under median / GLITCH_RATIO (− slack): a shuffled, dropped, repeated or
# flashed frame. Judged only when the local median shows motion (≥ GLITCH_MIN_MEDIAN).
GLITCH_RATIO = 1.6
GLITCH_MIN_MEDIAN = 0.5
GLITCH_SLACK = 0.25
# A scene cut is the only spike within ±WINDOW pairs, at least CUT_MIN_MAD, and not explained by
# a global brightness change. That covers hard cuts and caption changes (the renderer's scene
# boundaries), which are content, not defects, and are left out of every temporal metric; a
# swapped frame makes two spikes two pairs apart and a flash frame two adjacent ones, so those
# stay glitches, and a brightness jump stays flicker.
CUT_MIN_MAD = 2.0
WINDOW = 3  # pairs either side used for the local median


class TemporalSeries:
    """Streams PairSamples and pools them, holding only 2·WINDOW + 1 pairs at any time.

    Each pair is judged once WINDOW later pairs have arrived (or at `finish`), so cut and glitch
    decisions see both sides; cut pairs are excluded from every temporal metric.
    """

    def __init__(self) -> None:
        self._buf: deque[PairSample] = deque(maxlen=2 * WINDOW + 1)
        self._pending = 0
        self.pairs = 0
        self.cuts = 0
        self.glitches = 0
        self.judged_for_glitch = 0
        self._sum_mad = 0.0
        self._sum_abs_delta = 0.0
        self._n_ssim = 0
        self._sum_ssim = 0.0
        self._n_flow = 0
        self._sum_warp = 0.0
        self._sum_motion = 0.0

    def add(self, sample: PairSample) -> None:
        self._buf.append(sample)
        self._pending += 1
        if self._pending > WINDOW:
            self._judge(len(self._buf) - self._pending)
            self._pending -= 1

    def finish(self) -> None:
        while self._pending:
            self._judge(len(self._buf) - self._pending)
            self._pending -= 1

    def _judge(self, i: int) -> None:
        buf = self._buf
        s = buf[i]
        lo, hi = max(0, i - WINDOW), min(len(buf), i + WINDOW + 1)
        neighbours = [buf[j].mad for j in range(lo, hi) if j != i]
        median = statistics.median(neighbours) if len(neighbours) >= 2 else None
        spike_level = GLITCH_RATIO * median + GLITCH_SLACK if median is not None else float("inf")
        is_spike = s.mad > spike_level
        is_cut = (
            is_spike
            and s.mad >= CUT_MIN_MAD
            and abs(s.mean_delta) < 0.5 * s.mad
            and not any(m > spike_level for m in neighbours)
        )
        if is_cut:
            self.cuts += 1
            return
        self.pairs += 1
        self._sum_mad += s.mad
        self._sum_abs_delta += abs(s.mean_delta)
        if median is not None and median >= GLITCH_MIN_MEDIAN:
            self.judged_for_glitch += 1
            if is_spike or s.mad < median / GLITCH_RATIO - GLITCH_SLACK:
                self.glitches += 1
        if s.ssim is not None:
            self._n_ssim += 1
            self._sum_ssim += s.ssim
        if s.flow is not None:
            self._n_flow += 1
            self._sum_warp += s.flow.warp_error
            self._sum_motion += s.flow.motion

    def results(self, flow_scale: float) -> dict[str, float | int | None]:
        """Pooled metrics; `flow_scale` converts flow pixels to the 360-px reference scale."""
        n = self.pairs
        return {
            "flicker": self._sum_abs_delta / n if n else None,
            "temporal_flickering": (255.0 - self._sum_mad / n) / 255.0 if n else None,
            "mean_abs_frame_diff": self._sum_mad / n if n else None,
            "temporal_ssim": self._sum_ssim / self._n_ssim if self._n_ssim else None,
            "warp_error": self._sum_warp / self._n_flow if self._n_flow else None,
            "motion": self._sum_motion / self._n_flow * flow_scale if self._n_flow else None,
            "jitter": (
                self.glitches / self.judged_for_glitch
                if self.judged_for_glitch
                else (0.0 if n else None)
            ),
            "scene_cuts": self.cuts,
            "flow_pairs": self._n_flow,
        }


def finite_or_none(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return x
