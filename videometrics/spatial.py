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
LAPLACIAN_NOISE_GAIN = 20.0  # Var(∇²N) / σ² for white noise N and the 4-neighbour Laplacian
NOISE_BLOCK = 8  # noise is averaged per block of this many pixels square …
NOISE_FLAT_SHARE = 0.2  # … and taken from this share of the flattest blocks
BLOCK_CROP = (640, 360)  # blockiness is measured on at most this many native pixels, centred

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


def sharpness(luma: np.ndarray, noise_sigma: float) -> float:
    """Laplacian variance with the part white noise of `noise_sigma` adds taken out.

    The 4-neighbour Laplacian of white noise of variance σ² has variance (4·1² + 4²)σ² = 20σ²,
    which adds to the image's own; subtracting it keeps added noise from reading as detail.
    """
    return max(laplacian_variance(luma) - LAPLACIAN_NOISE_GAIN * noise_sigma**2, 0.0)


def immerkaer_sigma(luma: np.ndarray) -> float:
    """Immerkær's fast noise standard deviation estimate over the whole image, in code values.

    Texture and edges also contribute; `noise_sigma` restricts it to the flat parts.
    """
    h, w = luma.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    resp = cv2.filter2D(luma, cv2.CV_16S, _IMMERKAER_KERNEL)[1:-1, 1:-1]
    total = cv2.norm(resp, cv2.NORM_L1)
    return math.sqrt(math.pi / 2.0) * total / (6.0 * (w - 2) * (h - 2))


def noise_sigma(luma: np.ndarray) -> float:
    """Noise standard deviation (code values) measured where the picture is flat.

    Immerkær's estimator averaged per NOISE_BLOCK×NOISE_BLOCK block, then the median over the
    NOISE_FLAT_SHARE of blocks with the least structure, structure being the block's variance
    at half resolution (where noise weighs four times less). Texture and edges, which
    Immerkær's filter cannot tell from noise, are thereby left out — the approach
    of S.-C. Tai and S.-M. Yang, "A fast method for image noise estimation using Laplacian
    operator and adaptive edge detection", ISCCSP 2008, with blocks instead of an edge mask.
    """
    bs = NOISE_BLOCK
    h, w = luma.shape[:2]
    bh, bw = h // bs, w // bs
    if bh < 3 or bw < 3:
        return immerkaer_sigma(luma)
    y = luma[: bh * bs, : bw * bs]
    resp = cv2.filter2D(y, cv2.CV_16S, _IMMERKAER_KERNEL)
    resp = cv2.convertScaleAbs(resp)  # |response|, saturating at 255 (far above any noise)
    # Block means of |response|: an INTER_AREA resize by an integer factor is a box average.
    per_block = cv2.resize(resp, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32)
    # Structure per block: the variance of the block in the half-resolution picture, where
    # the 2× area average has already cut white noise's variance by four while edges, texture
    # and gradients remain.
    half = cv2.resize(y, (bw * bs // 2, bh * bs // 2), interpolation=cv2.INTER_AREA)
    half = half.astype(np.float32)
    mean = cv2.resize(half, (bw, bh), interpolation=cv2.INTER_AREA)
    mean_sq = cv2.resize(half * half, (bw, bh), interpolation=cv2.INTER_AREA)
    structure = mean_sq - mean * mean
    # Border blocks hold the filter's edge response: leave them out.
    per_block = per_block[1:-1, 1:-1].ravel()
    structure = structure[1:-1, 1:-1].ravel()
    k = max(1, int(NOISE_FLAT_SHARE * structure.size))
    flattest = np.argpartition(structure, k - 1)[:k]
    return math.sqrt(math.pi / 2.0) * float(np.median(per_block[flattest])) / 6.0


def blockiness(luma: np.ndarray) -> float:
    """Visible 8×8 block edges: code values by which steps across the 8-pixel grid stand out
    from their own neighbourhood, beyond what steps on the 4-pixel grid do.

    For every step d_j = |Y[j+1] − Y[j]| across a column (and likewise a row) the *excess*
    max(0, d_j − (d_{j−1} + d_{j+1})/2) is what the step adds over the content's local gradient
    there. Content edges, texture and noise give the same excess wherever the grid falls, so
    subtracting the excess at offset 3 (the 4×4 transform edges inside an 8×8 block, where an
    upscaled or periodic picture shows the same pattern) from the excess at offset 7 (the 8×8
    transform and 16×16 macroblock edges) leaves the codec's blocking. Each offset's excess is
    the median over grid lines of the line's mean, so a straight content edge that happens to
    lie on the grid does not count; every fourth row is used. ≈ 0 (±0.15) for clean video,
    ≈ 0.7–1.5 code values at CRF 51. Strong noise masks block edges here as it does to the
    eye: the value falls when noise of a few code values is added on top of blocking. Measured
    on a centred native crop of at most BLOCK_CROP pixels (the grid is in native pixels),
    aligned to the 16-pixel grid.
    """
    h, w = luma.shape[:2]
    cw, ch = BLOCK_CROP
    x0 = max(0, (w - cw) // 2) // 16 * 16
    y0 = max(0, (h - ch) // 2) // 16 * 16
    crop = luma[y0 : y0 + ch, x0 : x0 + cw]
    if crop.shape[0] < 16 or crop.shape[1] < 16:
        return 0.0
    total = 0.0
    for img in (crop, crop.T):
        total += _grid_excess(img, 7) - _grid_excess(img, 3)
    return total / 2.0


def _grid_excess(img: np.ndarray, offset: int) -> float:
    """Median over grid lines j ≡ offset (mod 8) of the mean step excess (see `blockiness`)."""
    w = img.shape[1]
    count = (w - offset - 3) // 8 + 1  # columns j with j − 1 ≥ 0 and j + 2 < w
    if count <= 0:
        return 0.0
    # Every fourth row: blocking runs the whole height of a grid line, so a quarter of the
    # rows see it as well at a quarter of the cost.
    cols = [
        img[::4, offset - 1 + i :: 8][:, :count].astype(np.int16)  # Y[j−1] … Y[j+2]
        for i in range(4)
    ]
    before = np.abs(cols[1] - cols[0])
    step = np.abs(cols[2] - cols[1])
    after = np.abs(cols[3] - cols[2])
    excess = np.maximum(2 * step - before - after, 0)
    # Median over grid lines of each line's mean: codec blocking runs along every grid line,
    # whereas a content edge that happens to lie on one (a panel border, a horizon) is a single
    # line, which the median ignores.
    return float(np.median(excess.mean(axis=0))) / 2.0


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
