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
    scale = height / 360.0
    font_scale = 0.9 * scale
    thickness = max(1, round(2 * scale))
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
            text = texts[min(int(t / seconds * len(texts)), len(texts) - 1)]
            if text:
                (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
                org = ((width - tw) // 2, int(height * 0.85))
                pad = max(2, int(8 * scale))
                cv2.rectangle(
                    frame,
                    (org[0] - pad, org[1] - th - pad),
                    (org[0] + tw + pad, org[1] + pad),
                    (20, 20, 30),
                    -1,
                )
                cv2.putText(
                    frame,
                    text,
                    org,
                    cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale,
                    (250, 250, 250),
                    thickness,
                    cv2.LINE_AA,
                )
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
