"""On-screen text check: OCR a few sampled frames and score them against the script (CER).

OCR is rapidocr-onnxruntime (PP-OCRv4 detection + recognition), whose wheel ships its ONNX
models, so nothing is downloaded at run time. Frames come from the single decode pass: the
pass asks `TextChecker.wants(t)` for every frame (one float comparison) and hands over the
few frames it wants, which are converted to BGR at the analysis size (≤ 640 px long side for
16:9) — enough for caption-sized text and ~0.1 s per frame on one core.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .scripts import Scene, place_scenes
from .text_match import missing_characters, normalize_text

__all__ = ["TextChecker", "normalize_text", "ocr_engine", "read_text"]

# A scene of at least this length is sampled twice (at 35 % and 65 % of it), shorter ones once
# in the middle; the best-matching sample counts, so a caption that fades in is not penalised.
TWO_SAMPLES_MIN_SCENE_S = 1.0
SAMPLE_POSITIONS = (0.35, 0.65)
# Untimed script and a container that does not tell its duration: OCR one frame per second.
UNTIMED_INTERVAL_S = 1.0
# Two sampled frames closer than this (mean abs luma difference on the temporal-level
# thumbnail) show the same picture: the earlier OCR result is reused.
DEDUP_MAD = 1.0

_engines: dict[int | None, Any] = {}
_engines_lock = threading.Lock()

# glibc malloc tuning around OCR calls. ONNX Runtime allocates ~100 MB of activations per
# detection call; under glibc's default dynamic mmap threshold those land on the heap after the
# first call and stay resident, which adds ~70 MB to the process's peak. Forcing big blocks to
# mmap during OCR returns them to the OS on free; afterwards the threshold goes back to a large
# value (what the dynamic threshold grows to anyway) so the per-frame metric loop keeps reusing
# heap memory instead of faulting in fresh pages.
_M_MMAP_THRESHOLD = -3
# 4 MiB, not smaller: the largest activations still go back to the OS, while the many mid-sized
# ones reuse heap memory. At 64 KiB every call faulted in ~100 MB of fresh pages (2.9 s of
# system time for 8 OCR'd frames, against 0.6 s now), for 40 MB less peak RSS.
_OCR_MMAP_THRESHOLD = 4 * 1024 * 1024
_LOOP_MMAP_THRESHOLD = 32 * 1024 * 1024


def _load_libc() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


_libc = _load_libc()


@contextlib.contextmanager
def _ocr_memory_policy() -> Iterator[None]:
    if _libc is None:
        yield
        return
    _libc.mallopt(_M_MMAP_THRESHOLD, _OCR_MMAP_THRESHOLD)
    try:
        yield
    finally:
        _libc.mallopt(_M_MMAP_THRESHOLD, _LOOP_MMAP_THRESHOLD)


def ocr_engine(threads: int | None = None) -> Any:
    """A cached RapidOCR instance (model load ≈ 0.3 s, so it is made once per process)."""
    with _engines_lock, _ocr_memory_policy():
        engine = _engines.get(threads)
        if engine is None:
            from rapidocr_onnxruntime import RapidOCR  # heavy import: only when OCR is used

            kwargs: dict[str, Any] = {
                # Detect at ≥ 360 px short side: small inputs are upscaled, larger ones are
                # left as they are (the default 736 would quadruple detection time).
                "det_limit_type": "min",
                "det_limit_side_len": 360,
            }
            if threads:
                kwargs["intra_op_num_threads"] = threads
                kwargs["inter_op_num_threads"] = 1
            engine = RapidOCR(**kwargs)
            _engines[threads] = engine
        return engine


def read_text(bgr: np.ndarray, threads: int | None = None) -> str:
    """All text recognised in a BGR image, in reading order, joined by spaces."""
    engine = ocr_engine(threads)
    with _ocr_memory_policy():
        result, _ = engine(bgr, use_cls=False)
    if not result:
        return ""
    return " ".join(str(item[1]) for item in result)


@dataclass
class _Sample:
    time_s: float
    text: str


@dataclass
class TextChecker:
    """Plans which frames to OCR, OCRs them as they stream past, and scores the script."""

    scenes: list[Scene]
    duration_hint: float | None
    threads: int | None = None
    samples: list[_Sample] = field(default_factory=list)
    ocr_seconds: float = 0.0
    ocr_frames: int = 0

    def __post_init__(self) -> None:
        self._untimed = bool(self.scenes) and self.scenes[0].start_s is None
        if self._untimed and self.duration_hint:
            self.scenes = place_scenes(self.scenes, self.duration_hint)
            self._untimed = False
        self._targets: list[float] = []
        if self._untimed:
            self._next = 0.0
        else:
            for s in self.scenes:
                assert s.start_s is not None and s.end_s is not None
                length = s.end_s - s.start_s
                positions = SAMPLE_POSITIONS if length >= TWO_SAMPLES_MIN_SCENE_S else (0.5,)
                self._targets.extend(s.start_s + p * length for p in positions)
            self._targets.sort()
            self._next = self._targets[0] if self._targets else float("inf")
        self._target_i = 0
        self._last_thumb: np.ndarray | None = None
        self._last_text = ""

    def wants(self, time_s: float) -> bool:
        return time_s >= self._next

    def capture(
        self, time_s: float, bgr_source: Any, thumb: np.ndarray, size: tuple[int, int]
    ) -> None:
        """OCR this frame (a PyAV VideoFrame) unless it repeats the previous OCR'd picture."""
        started = time.perf_counter()
        if (
            self._last_thumb is not None
            and self._last_thumb.shape == thumb.shape
            and cv2.norm(self._last_thumb, thumb, cv2.NORM_L1) / thumb.size < DEDUP_MAD
        ):
            text = self._last_text
        else:
            bgr = bgr_source.reformat(width=size[0], height=size[1], format="bgr24").to_ndarray()
            text = read_text(bgr, self.threads)
            self.ocr_frames += 1
            self._last_thumb = thumb.copy()
            self._last_text = text
        self.samples.append(_Sample(time_s, text))
        if self._untimed:
            self._next = time_s + UNTIMED_INTERVAL_S
        else:
            while self._target_i < len(self._targets) and self._targets[self._target_i] <= time_s:
                self._target_i += 1
            self._next = (
                self._targets[self._target_i] if self._target_i < len(self._targets) else 1e300
            )
        self.ocr_seconds += time.perf_counter() - started

    def score(self, duration_s: float) -> dict[str, Any]:
        """text_cer: share of the script's characters not found on screen in their scene's
        time window (text_match.missing_characters: any order, any line grouping)."""
        scenes = place_scenes(self.scenes, duration_s) if self._untimed else self.scenes
        total_missing = 0
        total_len = 0
        for scene in scenes:
            assert scene.start_s is not None and scene.end_s is not None
            if not normalize_text(scene.text):
                continue
            inside = [s for s in self.samples if scene.start_s <= s.time_s < scene.end_s]
            if not inside and self.samples and scene.start_s < duration_s:
                # Scene shorter than a frame interval: use the nearest sampled frame.
                mid = 0.5 * (scene.start_s + scene.end_s)
                inside = [min(self.samples, key=lambda s: abs(s.time_s - mid))]
            # No sample at all (e.g. the scene lies past the end): the text was never shown.
            missing, length = missing_characters(scene.text, [s.text for s in inside])
            total_missing += missing if inside else length
            total_len += length
        return {
            "text_cer": total_missing / total_len if total_len else None,
            "ocr_seconds": self.ocr_seconds,
            "ocr_frames": self.ocr_frames,
        }
