"""Synthetic test clips: textured, moving content with per-scene captions, encoded with PyAV.

Used by the metric tests (clean clip vs controlled degradations) and by the benchmarks, so that
neither depends on the project's renderer. Frames are RGB uint8 arrays; degrade them with any
function before handing them to `encode_frames`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import av
import cv2
import numpy as np


def script_for(texts: Sequence[str], seconds: float) -> dict:
    """The renderer-shaped script for `texts` shown in equal consecutive scenes."""
    n = max(len(texts), 1)
    step = seconds / n
    return {
        "title": texts[0] if texts else "",
        "scenes": [
            {"text": t, "start_s": round(i * step, 6), "end_s": round((i + 1) * step, 6)}
            for i, t in enumerate(texts)
        ],
    }


def _texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An RGB background with detail at several scales (so sharpness and blur are measurable)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            70 + 90 * xx / width,
            90 + 60 * yy / height,
            150 - 70 * xx / width,
        ],
        axis=-1,
    )
    # Detail from blurred white noise at two scales: no periodic structure that could line up
    # with the codec's 8×8 grid (an upsampled noise grid would, and would fake blockiness).
    noise = rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 0.8)
    fine *= 1.0 / max(float(fine.std()), 1e-6)
    coarse = cv2.GaussianBlur(noise, (0, 0), 6.0)
    coarse *= 1.0 / max(float(coarse.std()), 1e-6)
    detail = 12.0 * fine + 18.0 * coarse
    return np.clip(base + detail[..., None], 0, 255).astype(np.uint8)


def draw_caption(frame: np.ndarray, text: str) -> None:
    """Draw `text` centred in a dark box in the lower part of an RGB frame (in place); a "\n"
    in `text` stacks lines, the last one at the usual caption height."""
    if not text:
        return
    height, width = frame.shape[:2]
    scale = height / 360.0
    font_scale = 0.9 * scale
    thickness = max(1, round(2 * scale))
    pad = max(2, int(8 * scale))
    lines = text.split("\n")
    sizes = [
        cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)[0] for line in lines
    ]
    line_h = max(h for _, h in sizes) + 2 * pad
    for k, (line, (tw, th)) in enumerate(zip(lines, sizes, strict=True)):
        org = ((width - tw) // 2, int(height * 0.85) - (len(lines) - 1 - k) * line_h)
        cv2.rectangle(
            frame,
            (org[0] - pad, org[1] - th - pad),
            (org[0] + tw + pad, org[1] + pad),
            (20, 20, 30),
            -1,
        )
        cv2.putText(
            frame,
            line,
            org,
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (250, 250, 250),
            thickness,
            cv2.LINE_AA,
        )


def synthetic_frames(
    width: int,
    height: int,
    fps: float,
    seconds: float,
    texts: Sequence[str] = (),
    *,
    seed: int = 0,
    pan_px_per_frame: int = 1,
    grain: float = 0.0,
) -> Iterator[np.ndarray]:
    """Yield RGB frames: a slowly panning texture, two moving shapes and scene captions.

    Motion is kept smooth on purpose (whole-pixel pan steps, sub-pixel shape positions): uneven
    steps would be real judder, which the temporal metrics rightly flag. `grain` adds temporal
    noise of that standard deviation (code values), cycling through a few precomputed fields,
    to give the encoder the fine, changing detail of real footage.
    """
    rng = np.random.default_rng(seed)
    n_frames = max(1, round(seconds * fps))
    pan_total = pan_px_per_frame * n_frames + 2
    texture = _texture(width + pan_total, height, rng)
    grain_fields: list[tuple[np.ndarray, np.ndarray]] = []
    if grain > 0:
        for _ in range(7):
            field = rng.normal(0.0, grain, (height, width, 1)).round()
            field = np.repeat(field, 3, axis=2)
            grain_fields.append(
                (
                    np.clip(field, 0, 255).astype(np.uint8),
                    np.clip(-field, 0, 255).astype(np.uint8),
                )
            )
    for i in range(n_frames):
        t = i / fps
        x0 = pan_px_per_frame * i
        frame = np.ascontiguousarray(texture[:, x0 : x0 + width])
        cx = width * (0.2 + 0.6 * (0.5 + 0.5 * math.sin(2 * math.pi * t / 4.0)))
        cy = height * (0.35 + 0.1 * math.cos(2 * math.pi * t / 3.0))
        r = 0.14 * height
        sub = 16  # cv2 fixed-point coordinates (shift=4) for sub-pixel positions
        cv2.circle(
            frame,
            (int(cx * sub), int(cy * sub)),
            int(r * sub),
            (225, 70, 50),
            -1,
            cv2.LINE_AA,
            4,
        )
        rx = width * (0.75 - 0.3 * t / max(seconds, 1e-6))
        ry = height * 0.15
        side = 0.18 * height
        cv2.rectangle(
            frame,
            (int(rx * sub), int(ry * sub)),
            (int((rx + side) * sub), int((ry + side) * sub)),
            (40, 190, 90),
            -1,
            cv2.LINE_AA,
            4,
        )
        if texts:
            draw_caption(frame, texts[min(int(t / seconds * len(texts)), len(texts) - 1)])
        if grain_fields:
            plus, minus = grain_fields[i % len(grain_fields)]
            # Two saturating uint8 ops instead of a widening add: ~10× cheaper at 720p.
            cv2.add(frame, plus, dst=frame)
            cv2.subtract(frame, minus, dst=frame)
        yield frame


def encode_frames(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike[str],
    fps: float,
    *,
    crf: int = 20,
    preset: str = "veryfast",
    size: tuple[int, int] | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode RGB frames to an H.264 MP4 (optionally rescaled to `size` = (w, h))."""
    out = Path(path)
    rate = int(round(fps)) if abs(fps - round(fps)) < 1e-6 else fps
    with av.open(str(out), mode="w") as container:
        stream = None
        for rgb in frames:
            if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = pix_fmt
                if codec.startswith("libx264"):
                    stream.options = {"crf": str(crf), "preset": preset}
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return out


# ---------------------------------------------------------------------------------------------
# Natural-looking content for validating the metrics (benchmarks/metric_validity.py): images with
# the 1/f amplitude spectrum of natural scenes, a fractal zoom, a camera pan and moving textures.
# Every kind is a smooth function of time, so any uneven motion in a clip is a degradation.

NATURAL_KINDS = ("fractal_zoom", "moving_texture", "camera_pan")


def pink_noise(height: int, width: int, rng: np.random.Generator, exponent: float = 1.0):
    """Zero-mean, unit-variance noise with a 1/f^exponent amplitude spectrum (float32)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spectrum = rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)
    spectrum /= f**exponent
    spectrum[0, 0] = 0.0
    img = np.fft.irfft2(spectrum, s=(height, width)).astype(np.float32)
    return (img - img.mean()) / max(float(img.std()), 1e-6)


def _natural_rgb(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A colour image with natural-image statistics: 1/f luminance, smoother chroma, and the
    slight softness of a camera's optics (Gaussian MTF, σ 0.8 px) — without it a 1/f image
    holds more pixel-scale detail than any photograph, and reads as noise."""
    lum = 118.0 + 42.0 * pink_noise(height, width, rng)
    a = 22.0 * pink_noise(height, width, rng, 1.6)
    b = 22.0 * pink_noise(height, width, rng, 1.6)
    rgb = np.stack([lum + a, lum - 0.5 * a + 0.4 * b, lum - 0.8 * b], axis=-1)
    rgb = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 0.8)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _mandelbrot_rgb(width: int, height: int) -> np.ndarray:
    """Smooth-coloured Mandelbrot detail (seahorse valley), float32 RGB."""
    cx, cy, span = -0.74364, 0.13182, 0.012
    xs = np.linspace(cx - span / 2, cx + span / 2, width, dtype=np.float64)
    half_h = span * height / width / 2
    ys = np.linspace(cy - half_h, cy + half_h, height, dtype=np.float64)
    c = (xs[None, :] + 1j * ys[:, None]).ravel()
    z = np.zeros_like(c)
    nu = np.full(c.shape, -1.0)
    active = np.arange(c.size)
    for n in range(300):
        zc = z[active] * z[active] + c[active]
        z[active] = zc
        mag2 = zc.real * zc.real + zc.imag * zc.imag
        escaped = mag2 > 256.0
        if escaped.any():
            idx = active[escaped]
            nu[idx] = n + 1 - np.log2(np.log(np.sqrt(mag2[escaped])))
            active = active[~escaped]
        if active.size == 0:
            break
    nu = nu.reshape(height, width)
    inside = nu < 0
    phase = np.log1p(np.maximum(nu, 0.0)) * 2.2
    rgb = np.stack(
        [
            0.5 + 0.45 * np.cos(phase),
            0.5 + 0.45 * np.cos(phase + 1.9),
            0.5 + 0.45 * np.cos(phase + 3.8),
        ],
        axis=-1,
    )
    rgb[inside] = (0.12, 0.1, 0.25)
    return (30 + 200 * rgb).astype(np.float32)


def natural_frames(
    kind: str,
    width: int,
    height: int,
    fps: float,
    seconds: float,
    texts: Sequence[str] = (),
    *,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Yield RGB frames of a natural-looking clip of `kind` (one of NATURAL_KINDS).

    * fractal_zoom — a continuous zoom (×1.6 over the clip) into Mandelbrot detail, drawn from a
      3× supersampled image so that fine detail is anti-aliased;
    * moving_texture — a drifting 1/f background with two textured discs moving across it;
    * camera_pan — a horizontal pan (2 px per frame) over a wide 1/f landscape with one moving
      textured object.
    Captions (one per equal segment of `texts`) are drawn on top, as in `synthetic_frames`.
    """
    rng = np.random.default_rng(seed)
    n_frames = max(1, round(seconds * fps))
    if kind == "fractal_zoom":
        factor = 3
        big = _mandelbrot_rgb(width * factor, height * factor)
        # Anti-alias once for the strongest downscale the zoom uses.
        big = cv2.GaussianBlur(big, (0, 0), 0.45 * factor)
        bcx, bcy = (width * factor - 1) / 2.0, (height * factor - 1) / 2.0

        def frame_at(i: int) -> np.ndarray:
            zoom = 1.6 ** (i / max(n_frames - 1, 1))
            s = zoom / factor  # output pixels per big-image pixel
            m = np.array(
                [[s, 0.0, (width - 1) / 2.0 - s * bcx], [0.0, s, (height - 1) / 2.0 - s * bcy]],
                dtype=np.float64,
            )
            out = cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_LINEAR)
            return np.clip(out, 0, 255).astype(np.uint8)

    elif kind == "moving_texture":
        step = 1
        pad = step * n_frames + 2
        background = _natural_rgb(height + pad, width + pad, rng)
        objects = []
        for k in range(2):
            r = int(0.2 * height) + 6 * k
            patch = _natural_rgb(2 * r, 2 * r, rng)
            mask = np.zeros((2 * r, 2 * r), np.float32)
            cv2.circle(mask, (r, r), r - 2, 1.0, -1, cv2.LINE_AA)
            mask = cv2.GaussianBlur(mask, (0, 0), 1.0)[..., None]
            objects.append((patch.astype(np.float32), mask, r, k))

        def frame_at(i: int) -> np.ndarray:
            x0 = y0 = step * i
            out = background[y0 : y0 + height, x0 : x0 + width].astype(np.float32)
            t = i / fps
            for patch, mask, r, k in objects:
                cx = width * (0.25 + 0.5 * (0.5 + 0.5 * math.sin(2 * math.pi * t / (3.5 + k))))
                cy = height * (0.3 + 0.15 * k + 0.1 * math.cos(2 * math.pi * t / 2.7))
                m = np.array([[1.0, 0.0, cx - r], [0.0, 1.0, cy - r]])
                p = cv2.warpAffine(patch, m, (width, height), flags=cv2.INTER_LINEAR)
                a = cv2.warpAffine(mask, m, (width, height), flags=cv2.INTER_LINEAR)[..., None]
                out = out * (1.0 - a) + p * a
            return np.clip(out, 0, 255).astype(np.uint8)

    elif kind == "camera_pan":
        step = 2
        world = _natural_rgb(height, width + step * n_frames + 2, rng)
        r = int(0.12 * height)
        patch = _natural_rgb(2 * r, 2 * r, rng).astype(np.float32) * 0.7 + 60.0
        mask = np.zeros((2 * r, 2 * r), np.float32)
        cv2.ellipse(mask, (r, r), (r - 2, r // 2), 0.0, 0.0, 360.0, 1.0, -1, cv2.LINE_AA)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.0)[..., None]

        def frame_at(i: int) -> np.ndarray:
            x0 = step * i
            out = world[:, x0 : x0 + width].astype(np.float32)
            t = i / fps
            cx = width * (0.9 - 0.6 * t / max(seconds, 1e-6))
            cy = height * (0.3 + 0.05 * math.sin(2 * math.pi * t))
            m = np.array([[1.0, 0.0, cx - r], [0.0, 1.0, cy - r]])
            p = cv2.warpAffine(patch, m, (width, height), flags=cv2.INTER_LINEAR)
            a = cv2.warpAffine(mask, m, (width, height), flags=cv2.INTER_LINEAR)[..., None]
            return np.clip(out * (1.0 - a) + p * a, 0, 255).astype(np.uint8)

    else:
        raise ValueError(f"unknown natural content kind {kind!r}; one of {NATURAL_KINDS}")

    for i in range(n_frames):
        frame = frame_at(i)
        if texts:
            t = i / fps
            draw_caption(frame, texts[min(int(t / seconds * len(texts)), len(texts) - 1)])
        yield frame
