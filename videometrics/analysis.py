"""The single streaming pass: decode once, compute every metric, keep O(1) frames in memory."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import cv2

from . import composites
from .decoding import VideoReader
from .errors import VideoMetricsError
from .ocr import TextChecker, normalize_text
from .quantizer import frame_qp
from .scaling import ANALYSIS_SHORT_SIDE, Ladder
from .scripts import Scene, parse_script
from .spatial import blockiness, clipped_fraction, colorfulness, noise_sigma, sharpness
from .temporal import REGION_GRID, FlowMeter, PairLog, motion_mad, ssim

METRICS_VERSION = 3

# Sampling (see docs/metrics.md): spatial metrics on every SPATIAL_EVERY-th frame, the
# diagnostic SSIM and optical flow on every PAIR_EVERY-th consecutive pair (at half the
# temporal level), everything else on every frame.
SPATIAL_EVERY = 24
# … but at least MIN_SPATIAL_SAMPLES samples when the stream says how many frames it has, so
# that short clips (a few seconds) still average over enough frames.
MIN_SPATIAL_SAMPLES = 8
PAIR_EVERY = 48
# A file whose stream decodes to fewer frames than this share of what it declares is truncated.
MIN_DECODED_SHARE = 0.9


def _sig(x: float | None, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


class _Mean:
    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        self.total += x

    @property
    def value(self) -> float | None:
        return self.total / self.n if self.n else None


def analyze_video(
    path: str | os.PathLike[str],
    *,
    script: Any = None,
    ocr: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Decode `path` once and return every metric as a flat JSON-serialisable dict.

    `script`: None, a list of {"text", "start_s", "end_s"} dicts, a list of strings, or the
    renderer's {"scenes": [...]} dict; without it (or with ocr=False) text_cer and
    factual_accuracy are None. `threads`: None = FFmpeg/ONNX defaults, 1 = one core for
    decoding and OCR (OpenCV's own pool is the caller's business: cv2.setNumThreads).
    Raises VideoMetricsError (one-line message) for anything that is not a decodable video.
    """
    started = time.perf_counter()
    scenes: list[Scene] = parse_script(script) if script is not None else []
    decode_s = 0.0
    with VideoReader(path, threads=threads) as reader:
        info = reader.info
        spatial_every = SPATIAL_EVERY
        if info.frames:
            spatial_every = max(1, min(SPATIAL_EVERY, info.frames // MIN_SPATIAL_SAMPLES))
        has_text = any(normalize_text(s.text) for s in scenes)
        checker = TextChecker(scenes, info.duration_s, threads) if ocr and has_text else None
        pairs = PairLog()
        flow = FlowMeter()
        sharp, noise, block, colour, clipped, luma, qp = (_Mean() for _ in range(7))
        ladder: Ladder | None = None
        prev_t = prev2_t = None
        prev_small = None
        prev_mean = prev2_mean = 0.0
        n_frames = 0
        first_time = last_time = 0.0
        width = height = 0
        frames = reader.frames()
        while True:
            t0 = time.perf_counter()
            f = next(frames, None)
            decode_s += time.perf_counter() - t0
            if f is None:
                break
            h, w = f.y.shape
            if ladder is None or ladder.native != (w, h):
                if ladder is not None and prev_t is not None:
                    prev_t = prev2_t = None  # resolution change mid-stream: no pair across it
                    pairs.add_break()
                ladder = Ladder.for_size(w, h)
                width, height = w, h
            a, t = ladder.down(f.y)
            if t is f.y:
                t = t.copy()  # kept as the previous frame after the decoder reuses the buffer
            mean = cv2.mean(t)[0]
            luma.add(mean)
            frame_q = frame_qp(f.frame)
            if frame_q is not None:
                qp.add(frame_q)
            pairs.add_frame(mean)

            # The diagnostic pair (k, k + 1), k ≡ 0 mod PAIR_EVERY, at half the temporal level.
            small = None
            if n_frames % PAIR_EVERY in (0, 1):
                small = cv2.resize(t, ladder.diagnostic_size, interpolation=cv2.INTER_AREA)
            if prev_t is not None:
                sampled = small is not None and prev_small is not None
                diff = cv2.absdiff(prev_t, t)
                mad = cv2.mean(diff)[0]
                regions = cv2.resize(diff, REGION_GRID, interpolation=cv2.INTER_AREA)
                pairs.add_pair(
                    mad=mad,
                    regions=regions,
                    # The same as the MAD unless the brightness moved by half a level or more.
                    motion=mad
                    if abs(mean - prev_mean) < 0.5
                    else motion_mad(prev_t, t, mean - prev_mean),
                    skip=motion_mad(prev2_t, t, mean - prev2_mean) if prev2_t is not None else None,
                    ssim=ssim(prev_small, small) if sampled else None,
                    flow=flow.measure(prev_small, small) if sampled else None,
                )
            prev_small = small

            if f.index % spatial_every == 0:
                sigma = noise_sigma(a)
                noise.add(sigma)
                sharp.add(sharpness(a, sigma))
                clipped.add(clipped_fraction(t, f.full_range))
                block.add(blockiness(f.y))
                chroma = f.chroma()
                if chroma is not None:
                    colour.add(
                        colorfulness(
                            *chroma,
                            full_range=f.full_range,
                            bt709=f.bt709,
                            size=ladder.temporal_size,
                        )
                    )
                else:
                    colour.add(0.0)

            if checker is not None and checker.wants(f.time_s):
                checker.capture(f.time_s, f.frame, t, ladder.analysis_size)

            if n_frames == 0:
                first_time = f.time_s
            last_time = f.time_s
            prev2_t, prev2_mean = prev_t, prev_mean
            prev_t, prev_mean = t, mean
            n_frames += 1

        name = reader.path.name
        if n_frames == 0:
            raise VideoMetricsError(f"no decodable video frames in {name}")
        if info.declared_frames and n_frames < MIN_DECODED_SHARE * info.declared_frames:
            raise VideoMetricsError(
                f"truncated video {name}: decoded {n_frames} of {info.declared_frames} frames"
            )
        fps = info.fps
        if fps is None:
            fps = (n_frames - 1) / (last_time - first_time) if last_time > first_time else None
        duration = (last_time - first_time) + (1.0 / fps if fps else 0.0)
        if (
            not info.declared_frames
            and info.declared_duration_s
            and duration < MIN_DECODED_SHARE * info.declared_duration_s
        ):
            raise VideoMetricsError(
                f"truncated video {name}: decoded {duration:.2f} s of "
                f"{info.declared_duration_s:.2f} s"
            )

    assert ladder is not None
    flow_scale = ANALYSIS_SHORT_SIDE / min(ladder.diagnostic_size)
    temporal = pairs.results(fps, flow_scale)
    text = checker.score(duration) if checker is not None else {}

    result: dict[str, Any] = {
        "metrics_version": METRICS_VERSION,
        "frames": n_frames,
        "fps": _sig(fps),
        "duration_s": _sig(duration),
        "width": width,
        "height": height,
        "sharpness": _sig(sharp.value),
        "noise_sigma": _sig(noise.value),
        "blockiness": _sig(block.value),
        "quantizer": _sig(qp.value),
        "colorfulness": _sig(colour.value),
        "exposure_clipped": _sig(clipped.value),
        "mean_luma": _sig(luma.value),
        "flicker": _sig(temporal["flicker"]),
        "temporal_flickering": _sig(temporal["temporal_flickering"]),
        "mean_abs_frame_diff": _sig(temporal["mean_abs_frame_diff"]),
        "temporal_ssim": _sig(temporal["temporal_ssim"]),
        "warp_error": _sig(temporal["warp_error"]),
        "motion": _sig(temporal["motion"]),
        "jitter": _sig(temporal["jitter"]),
        "repeated_frames": temporal["repeated_frames"],
        "freezes": temporal["freezes"],
        "skipped_frames": temporal["skipped_frames"],
        "scene_cuts": temporal["scene_cuts"],
        "spatial_frames": sharp.n,
        "flow_pairs": temporal["flow_pairs"],
        "text_cer": _sig(text.get("text_cer")),
        "ocr_frames": text.get("ocr_frames"),
        "ocr_seconds": _sig(text.get("ocr_seconds")),
    }
    result["visual_quality"] = _sig(composites.visual_quality(result))
    result["temporal_coherence"] = _sig(composites.temporal_coherence(result))
    result["factual_accuracy"] = _sig(composites.factual_accuracy(result["text_cer"]))
    result["decode_seconds"] = _sig(decode_s)
    result["compute_seconds"] = _sig(time.perf_counter() - started - decode_s)
    return result
