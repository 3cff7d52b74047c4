"""Temporal measures between consecutive frames, and the log that pools them.

Two tiers, so that the pass stays fast yet a single bad frame is still seen:

* every consecutive pair: mean absolute luma difference (MAD), the same with the global
  brightness change removed (`motion_mad`) and the mean luma, on temporal-level luma (tens of
  microseconds each). These feed the cadence analysis (cuts, held and skipped frames →
  `jitter`), `flicker` and `temporal_flickering`.
* every PAIR_EVERY-th pair: SSIM and forward/backward DIS optical flow (warp error, motion),
  reported for information only.
"""

from __future__ import annotations

import math
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


# Where in the frame a pair's difference lies: the temporal-level |difference| averaged over a
# 4×4 grid of regions.
REGION_GRID = (4, 4)
# A change is local (a caption or a graphic replaced, not the whole picture moving on) when
# regions whose difference jumped to over LOCAL_JUMP × their previous one + LOCAL_SLACK code
# values carry at least LOCAL_SHARE of the pair's total increase.
LOCAL_JUMP = 3.0
LOCAL_SLACK = 2.0
LOCAL_SHARE = 0.7
_REGION_COUNT = REGION_GRID[0] * REGION_GRID[1]


def local_changes(regions: np.ndarray) -> np.ndarray:
    """Per pair (rows of `regions`, each the pair's region differences), True when the rise of
    the difference since the previous pair is concentrated in regions that changed abruptly:
    new content in part of the frame (a caption swap), not a skipped frame — a skip raises the
    difference wherever something moves. The first pair, with nothing before it, is False."""
    r = regions.astype(np.float32)
    out = np.zeros(len(r), bool)
    if len(r) < 2:
        return out
    prev, cur = r[:-1], r[1:]
    rise = np.maximum(cur - prev, 0.0)
    jumped = cur > LOCAL_JUMP * prev + LOCAL_SLACK
    total = rise.sum(axis=1)
    out[1:] = (total > 0) & ((rise * jumped).sum(axis=1) >= LOCAL_SHARE * total)
    return out


def motion_mad(prev: np.ndarray, cur: np.ndarray, mean_delta: float) -> float:
    """Mean absolute difference after removing the global brightness change `mean_delta`
    (mean(cur) − mean(prev)), rounded to whole code values: what moved, not what got brighter.

    Rounding keeps the arithmetic in uint8 (a saturating add, then the same L1 norm as MAD);
    the ≤ 0.5 code value left over is below anything the cadence analysis keys on.
    """
    shift = round(mean_delta)
    if shift > 0:
        prev = cv2.add(prev, shift)
    elif shift < 0:
        prev = cv2.subtract(prev, -shift)
    return cv2.norm(prev, cur, cv2.NORM_L1) / cur.size


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


class PairLog:
    """Per-frame mean luma and per-pair measures of one pass, pooled at the end.

    Scalars only (a few per frame): the cadence analysis needs to look at both sides of every
    still stretch, whatever its length, so the series is kept rather than a fixed window.
    """

    def __init__(self) -> None:
        self.mean_luma: list[float] = []
        self.mad: list[float] = []
        self.motion: list[float] = []
        self.skip: list[float] = []  # motion_mad(frame t − 2, frame t), NaN where none
        # Region differences per pair (REGION_GRID, uint8): 16 bytes a pair, zeros on breaks.
        self.regions = bytearray()
        self.sampled: list[tuple[int, float, FlowResult]] = []  # (pair index, ssim, flow)

    def add_frame(self, mean_luma: float) -> None:
        self.mean_luma.append(mean_luma)

    def add_pair(
        self,
        *,
        mad: float,
        motion: float,
        skip: float | None,
        regions: np.ndarray | None = None,
        ssim: float | None,
        flow: FlowResult | None,
    ) -> None:
        if ssim is not None and flow is not None:
            self.sampled.append((len(self.mad), ssim, flow))
        self.mad.append(mad)
        self.motion.append(motion)
        self.skip.append(math.nan if skip is None else skip)
        self.regions += regions.tobytes() if regions is not None else bytes(_REGION_COUNT)

    def add_break(self) -> None:
        """No pair across this point (the resolution changed): analysed as a cut."""
        self.mad.append(math.nan)
        self.motion.append(math.nan)
        self.skip.append(math.nan)
        self.regions += bytes(_REGION_COUNT)

    def results(self, fps: float | None, flow_scale: float) -> dict[str, float | int | None]:
        """Pooled metrics; `flow_scale` converts flow pixels to the 360-px reference scale."""
        from .cadence import analyse_cadence
        from .flicker import visible_flicker

        motion = np.asarray(self.motion)
        cadence = analyse_cadence(
            motion,
            fps,
            skip=np.asarray(self.skip),
            local=local_changes(
                np.frombuffer(bytes(self.regions), np.uint8).reshape(-1, _REGION_COUNT)
            ),
        )
        keep = ~cadence.cut
        mad = np.asarray(self.mad)[keep]
        mad = mad[~np.isnan(mad)]
        sampled = [(s, f) for i, s, f in self.sampled if keep[i]]
        n_flow = len(sampled)
        mean_mad = float(mad.mean()) if mad.size else None
        return {
            "flicker": visible_flicker(np.asarray(self.mean_luma), cadence.cut),
            "temporal_flickering": (255.0 - mean_mad) / 255.0 if mean_mad is not None else None,
            "mean_abs_frame_diff": mean_mad,
            "temporal_ssim": sum(s for s, _ in sampled) / n_flow if n_flow else None,
            "warp_error": sum(f.warp_error for _, f in sampled) / n_flow if n_flow else None,
            "motion": (sum(f.motion for _, f in sampled) / n_flow * flow_scale if n_flow else None),
            "jitter": cadence.jitter,
            "repeated_frames": round(cadence.held, 2),
            "freezes": cadence.freezes,
            "skipped_frames": cadence.glitches,
            "scene_cuts": cadence.cuts,
            "flow_pairs": n_flow,
        }


def finite_or_none(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return x
