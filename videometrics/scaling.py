"""The resolution ladder every metric works on: native → analysis → temporal.

Most metrics run on a downscaled luma so that (a) they cost the same whatever the input size and
(b) numbers are comparable between a 720p and a 1080p render. Downscaling is done by successive
2× INTER_AREA halvings, which OpenCV runs on a fast path (~0.03 ms for 720p → 360p), followed by
at most one arbitrary-ratio resize when the halvings do not land exactly on the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ANALYSIS_SHORT_SIDE = 360  # spatial metrics (sharpness, exposure) and OCR sampling
TEMPORAL_SHORT_SIDE = 180  # per-frame temporal metrics, SSIM and optical flow


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def _steps_to(width: int, height: int, short_target: int) -> list[tuple[int, int]]:
    """Resize steps (dsize tuples) that bring (width, height) down to a short side of
    `short_target`, or an empty list when it is already at or below it (no upscaling)."""
    steps: list[tuple[int, int]] = []
    w, h = width, height
    while min(w, h) // 2 >= short_target:
        w, h = w // 2, h // 2
        steps.append((w, h))
    if min(w, h) > short_target:
        scale = short_target / min(w, h)
        w, h = _even(w * scale), _even(h * scale)
        steps.append((w, h))
    return steps


@dataclass(frozen=True)
class Ladder:
    """Resize plan for one input size; build once per video with `Ladder.for_size`."""

    native: tuple[int, int]
    analysis_steps: tuple[tuple[int, int], ...]
    temporal_steps: tuple[tuple[int, int], ...]

    @classmethod
    def for_size(cls, width: int, height: int) -> Ladder:
        analysis = _steps_to(width, height, ANALYSIS_SHORT_SIDE)
        aw, ah = analysis[-1] if analysis else (width, height)
        temporal = _steps_to(aw, ah, TEMPORAL_SHORT_SIDE)
        return cls((width, height), tuple(analysis), tuple(temporal))

    @property
    def analysis_size(self) -> tuple[int, int]:
        return self.analysis_steps[-1] if self.analysis_steps else self.native

    @property
    def temporal_size(self) -> tuple[int, int]:
        return self.temporal_steps[-1] if self.temporal_steps else self.analysis_size

    @property
    def diagnostic_size(self) -> tuple[int, int]:
        """Half the temporal level (never below 16 px): the diagnostic SSIM and flow."""
        w, h = self.temporal_size
        return max(16, w // 2), max(16, h // 2)

    def down(self, luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(analysis, temporal) luma for one frame. Either may be a view of `luma` when no
        resize is needed: copy before keeping it past the frame's lifetime."""
        a = luma
        for size in self.analysis_steps:
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        t = a
        for size in self.temporal_steps:
            t = cv2.resize(t, size, interpolation=cv2.INTER_AREA)
        return a, t
