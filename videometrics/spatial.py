"""Per-frame spatial (single-image) quality measures on 8-bit luma and chroma planes.

Each function takes uint8 planes (possibly strided views) and returns a float; the definitions,
units and references are in docs/metrics.md.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Immerkær (1996), "Fast Noise Variance Estimation": the difference of two Laplacians, which
# cancels first- and second-order image structure and leaves mostly noise.
_IMMERKAER_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
NOISE_CROP = (640, 360)  # noise is measured on at most this many native pixels, centred

# BT.601 / BT.709 chroma → Hasler–Süsstrunk opponent axes. Luma cancels out of rg = R − G and
# yb = (R + G)/2 − B, so both are exact linear functions of (Cb − 128, Cr − 128).
_OPPONENT = {
    # (rg_cb, rg_cr, yb_cb, yb_cr)
    False: (0.344136, 2.116136, -1.944068, 0.343932),  # BT.601
    True: (0.187324, 2.042924, -1.949262, 0.553338),  # BT.709
}


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (kernel [0 1 0; 1 −4 1; 0 1 0]); higher = sharper."""
    lap = cv2.Laplacian(luma, cv2.CV_16S, ksize=1)
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def immerkaer_sigma(luma: np.ndarray) -> float:
    """Immerkær's fast noise standard deviation estimate, in 8-bit code values."""
    h, w = luma.shape[:2]
    cw, ch = NOISE_CROP
    if w > cw or h > ch:
        # Noise is a per-pixel property: a centred native-resolution crop estimates it without
        # the averaging a downscale would apply, at a bounded cost.
        x0, y0 = max(0, (w - cw) // 2), max(0, (h - ch) // 2)
        luma = luma[y0 : y0 + min(h, ch), x0 : x0 + min(w, cw)]
        h, w = luma.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    resp = cv2.filter2D(luma, cv2.CV_16S, _IMMERKAER_KERNEL)[1:-1, 1:-1]
    total = cv2.norm(resp, cv2.NORM_L1)
    return math.sqrt(math.pi / 2.0) * total / (6.0 * (w - 2) * (h - 2))


def blockiness(luma: np.ndarray, block: int = 8) -> float:
    """Mean absolute step across 8×8 block boundaries divided by the mean step inside blocks.

    1.0 means block edges are no more visible than any other pixel step; coding artefacts push
    it above 1. Needs native-resolution luma, where the codec's block grid is.
    """
    h, w = luma.shape[:2]
    if w <= block or h <= block:
        return 1.0
    # Column profile of horizontal steps: entry j is |Y[:, j+1] − Y[:, j]| summed over rows.
    dh = cv2.reduce(
        cv2.absdiff(luma[:, 1:], luma[:, :-1]), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S
    ).ravel()
    dv = cv2.reduce(
        cv2.absdiff(luma[1:, :], luma[:-1, :]), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S
    ).ravel()
    bh, bv = dh[block - 1 :: block], dv[block - 1 :: block]
    boundary_sum = float(bh.sum()) + float(bv.sum())
    boundary_n = bh.size * h + bv.size * w
    inner_sum = float(dh.sum()) + float(dv.sum()) - boundary_sum
    inner_n = dh.size * h + dv.size * w - boundary_n
    # The 0.5-level floor keeps flat frames (both means ≈ 0) at ≈ 1 instead of a noisy ratio.
    return (boundary_sum / boundary_n + 0.5) / (inner_sum / inner_n + 0.5)


def clipped_fraction(luma: np.ndarray, full_range: bool, tolerance: int = 2) -> float:
    """Fraction of luma samples within `tolerance` code values of nominal black or white."""
    black, white = (0, 255) if full_range else (16, 235)
    hist = cv2.calcHist([luma], [0], None, [256], [0, 256]).ravel()
    clipped = hist[: black + tolerance + 1].sum() + hist[white - tolerance :].sum()
    return float(clipped) / float(luma.size)


def colorfulness(
    u: np.ndarray,
    v: np.ndarray,
    *,
    full_range: bool,
    bt709: bool,
    size: tuple[int, int] | None = None,
) -> float:
    """Hasler–Süsstrunk colourfulness computed from the Cb/Cr planes (0–255 RGB scale).

    M = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²), with rg and yb derived linearly from chroma
    (no RGB conversion; RGB gamut clipping is ignored). `size` optionally downscales the planes.
    """
    if size is not None and (u.shape[1], u.shape[0]) != size:
        u = cv2.resize(u, size, interpolation=cv2.INTER_AREA)
        v = cv2.resize(v, size, interpolation=cv2.INTER_AREA)
    scale = 1.0 if full_range else 255.0 / 224.0
    rg_u, rg_v, yb_u, yb_v = (c * scale for c in _OPPONENT[bt709])
    rg = cv2.addWeighted(u, rg_u, v, rg_v, -128.0 * (rg_u + rg_v), dtype=cv2.CV_32F)
    yb = cv2.addWeighted(u, yb_u, v, yb_v, -128.0 * (yb_u + yb_v), dtype=cv2.CV_32F)
    mu_rg, sd_rg = cv2.meanStdDev(rg)
    mu_yb, sd_yb = cv2.meanStdDev(yb)
    spread = math.hypot(float(sd_rg[0, 0]), float(sd_yb[0, 0]))
    centre = math.hypot(float(mu_rg[0, 0]), float(mu_yb[0, 0]))
    return spread + 0.3 * centre


def colorfulness_rgb(rgb: np.ndarray) -> float:
    """Reference Hasler–Süsstrunk on an RGB image (used to validate the chroma-plane version)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    return math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
