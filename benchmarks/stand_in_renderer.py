"""A stand-in renderer for search-only benchmark runs: a tiny real video in milliseconds.

It honours the in-process renderer contract (pipelines/renderers.py) and writes a valid H.264
MP4 (4 frames of 32×32) and a poster, atomically, so the whole product path runs — generation
rows, leases, storage, reviews — while the simulated reviewers, not the pixels, decide quality.
A benchmark may set ``SIMULATOR`` to decide which generations fail (a renderer error) and what
luck each video has; the luck is kept in ``LUCK`` by generation id for the reviewers, and the
simulated generation time (the taste model's cost model) in ``SECONDS``: the product measures the
stand-in's few milliseconds of wall time, whose jitter would otherwise drive the improver's time
model and generation-time guardrail.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

SIMULATOR: Any = None  # benchmarks.simulated_reviewers.Simulator, set by the benchmark
LUCK: dict[str, Any] = {}
SECONDS: dict[str, float] = {}


@dataclass(frozen=True)
class StandInVideo:
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    size_bytes: int
    script: dict | None = None


def render(
    *, prompt: str, params: dict, output_path: Path, poster_path: Path, progress: Any = None
) -> StandInVideo:
    output_path, poster_path = Path(output_path), Path(poster_path)
    generation_id = output_path.stem
    if SIMULATOR is not None:
        failed, seconds, luck = SIMULATOR.generate(params)
        if failed:
            raise RuntimeError("the simulated generator failed")
        LUCK[generation_id] = luck
        SECONDS[generation_id] = seconds
    output_path.parent.mkdir(parents=True, exist_ok=True)
    part = output_path.with_name(f".{output_path.name}.standin.part")
    with av.open(str(part), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    Image.new("RGB", (32, 32)).save(poster_path, "JPEG")
    os.replace(part, output_path)
    if progress is not None:
        progress(1.0)
    return StandInVideo(0.5, 8.0, 32, 32, "h264", output_path.stat().st_size)
