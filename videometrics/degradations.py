"""Graded degradations of raw RGB frames, for validating the metrics against references.

Each degradation keeps the clip's timeline: frame i of the degraded clip is shown at the same
time as frame i of the pristine one, so a full-reference comparison frame by frame (SSIM, PSNR)
measures what a viewer would see at that moment. Temporal defects are therefore expressed as
which pristine frame is shown in each display slot (`retime`): a held frame repeats an earlier
one, and the content catches up afterwards with a jump, as a player that drops or repeats frames
does. Levels are in natural units (σ in pixels or code values, hold length in frames, …).
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import cv2
import numpy as np

Frames = list[np.ndarray]


def blur(frames: Frames, sigma: float) -> Frames:
    """Gaussian blur of standard deviation `sigma` pixels (0 = unchanged)."""
    if sigma <= 0:
        return list(frames)
    return [cv2.GaussianBlur(f, (0, 0), sigma) for f in frames]


def add_noise(frames: Frames, sigma: float, *, seed: int = 0) -> Frames:
    """Independent Gaussian noise of `sigma` code values per pixel, channel and frame."""
    if sigma <= 0:
        return list(frames)
    rng = np.random.default_rng(seed)
    return [
        np.clip(f + rng.normal(0.0, sigma, f.shape).astype(np.float32), 0, 255).astype(np.uint8)
        for f in frames
    ]


def retime(frames: Frames, source: Sequence[int]) -> Frames:
    """Show pristine frame `source[i]` in display slot i (same length as `frames`)."""
    return [frames[s] for s in source]


def hold_every(n_frames: int, n: int) -> list[int]:
    """Frame-rate reduction: keep one frame in `n` and hold it for `n` slots (n = 1: none)."""
    return [i - i % max(n, 1) for i in range(n_frames)]


def duplicates(n_frames: int, rate: float, *, seed: int = 0) -> list[int]:
    """Isolated repeated frames: a share `rate` of slots show the previous frame again.

    The next slot is back on time, so each repeat is followed by a two-step jump (a player
    that repeats one frame and drops the next to catch up).
    """
    rng = np.random.default_rng(seed)
    count = int(round(rate * n_frames))
    source = list(range(n_frames))
    if count <= 0:
        return source
    # Candidates 2, 4, 6, …: never two repeats in a row, so each one stays isolated.
    slots = np.arange(2, n_frames - 1, 2)
    for i in rng.choice(slots, size=min(count, slots.size), replace=False):
        source[int(i)] = int(i) - 1
    return source


def freeze(n_frames: int, length: int) -> list[int]:
    """One freeze of `length` slots in the middle of the clip, then a jump back on time."""
    source = list(range(n_frames))
    if length <= 0:
        return source
    start = max(1, (n_frames - length) // 2)
    for i in range(start, min(n_frames, start + length)):
        source[i] = start - 1
    return source


def judder(n_frames: int, ratio: float) -> list[int]:
    """Uneven cadence: content made at `ratio` × the display rate, each slot showing the
    content frame nearest in time (as a frame-rate conversion without interpolation does).
    The timeline stays aligned — only the cadence breaks: ratio 1 = none; 0.9 repeats one
    frame in ten and skips one soon after; 0.42 mixes single and double repeats and skips of
    two or three frames, as 24 → 10 fps content shown at 24 fps does."""
    if ratio >= 1:
        return list(range(n_frames))
    source = []
    for i in range(n_frames):
        content = math.floor(i * ratio + 0.5)  # nearest content frame to display slot i
        source.append(min(n_frames - 1, math.floor(content / ratio + 0.5)))
    return source


def flicker(frames: Frames, amplitude: float, *, seed: int = 0) -> Frames:
    """Global brightness flicker: each frame is brightened by 0 or `amplitude` code values at
    random (a coin per frame), the frame-to-frame exposure jitter of unstable generators."""
    step = int(round(amplitude))
    if step <= 0:
        return list(frames)
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        if rng.random() < 0.5:
            out.append(f.copy())
        else:
            out.append(cv2.add(f, np.full(f.shape, step, np.uint8)))
    return out


def garble(text: str, fraction: float, *, seed: int = 0) -> str:
    """Replace a share `fraction` of the letters of `text` with other letters (1 = all)."""
    rng = np.random.default_rng(seed)
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    count = int(round(fraction * len(letters)))
    for i in rng.choice(letters, size=min(count, len(letters)), replace=False) if letters else []:
        pool = [c for c in string.ascii_lowercase if c != chars[i].lower()]
        chars[i] = str(rng.choice(pool))
    return "".join(chars)
