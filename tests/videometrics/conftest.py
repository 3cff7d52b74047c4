"""Clip-building fixtures: one clean synthetic clip and controlled degradations of it.

Clips are small (320×192, 24 fps, 2.5 s) so the whole suite stays fast; every clip is built
once per session and its metrics cached. Degradations are applied to the raw RGB frames before
encoding (videometrics.degradations: blur, noise, held / repeated / frozen frames, judder,
brightness flicker and pumping, frame shuffles; captions removed, garbled or laid out
differently) or at encoding (heavy compression), so each one differs from the clean clip in one
respect only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from videometrics import analyze_video
from videometrics import degradations as deg
from videometrics.synthetic import encode_frames, script_for, synthetic_frames

WIDTH, HEIGHT, FPS, SECONDS = 320, 192, 24, 2.5
TEXTS = ("Solar power saves money", "Panels last decades", "Install today")
GARBLED = ("Sloar pwoer svaes mnoey", "Pnaels lsat dcedaes", "Isntall tdoay")

Frames = list[np.ndarray]


def _blur(frames: Frames) -> Frames:
    return [cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames]


def _noise(frames: Frames) -> Frames:
    rng = np.random.default_rng(7)
    return [np.clip(f + rng.normal(0, 10, f.shape), 0, 255).astype(np.uint8) for f in frames]


def _retimed(source: Callable[[int], list[int]]) -> Callable[[Frames], Frames]:
    return lambda frames: deg.retime(frames, source(len(frames)))


def _pump(frames: Frames) -> Frames:
    # Exposure oscillating ±15 code values at 2 Hz: the "breathing" of an unstable generator.
    out = []
    for i, f in enumerate(frames):
        offset = 15.0 * np.sin(2 * np.pi * i / (FPS / 2.0))
        out.append(np.clip(f.astype(np.float32) + offset, 0, 255).astype(np.uint8))
    return out


def _shuffle(frames: Frames) -> Frames:
    rng = np.random.default_rng(3)
    out: Frames = []
    for k in range(0, len(frames), 4):
        block = frames[k : k + 4]
        out.extend(block[j] for j in rng.permutation(len(block)))
    return out


def _swap_one(frames: Frames) -> Frames:
    out = list(frames)
    m = len(out) // 2 + 3
    out[m], out[m + 1] = out[m + 1], out[m]
    return out


@dataclass(frozen=True)
class Variant:
    texts: tuple[str, ...] = TEXTS
    transform: Callable[[Frames], Frames] | None = None
    encode: dict[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {
    "clean": Variant(),
    "blur": Variant(transform=_blur),
    "noise": Variant(transform=_noise),
    "pump": Variant(transform=_pump),
    "shuffle": Variant(transform=_shuffle),
    "swap_one": Variant(transform=_swap_one),
    "compressed": Variant(encode={"crf": 51}),
    "no_text": Variant(texts=("", "", "")),
    "garbled": Variant(texts=GARBLED),
    # The first two captions shown together as two lines (second above first) during both of
    # their scenes: every intended word is on screen in its time window, in another layout.
    "two_lines": Variant(texts=(f"{TEXTS[1]}\n{TEXTS[0]}", f"{TEXTS[1]}\n{TEXTS[0]}", TEXTS[2])),
    "drop_3": Variant(transform=_retimed(lambda n: deg.hold_every(n, 3))),
    "slideshow": Variant(transform=_retimed(lambda n: deg.hold_every(n, 12))),
    "duplicates": Variant(transform=_retimed(lambda n: deg.duplicates(n, 0.1, seed=1))),
    "freeze": Variant(transform=_retimed(lambda n: deg.freeze(n, 12))),
    "judder": Variant(transform=_retimed(lambda n: deg.judder(n, 0.8))),
    "flicker_1": Variant(transform=lambda f: deg.flicker(f, 1, seed=2)),
    "flicker_6": Variant(transform=lambda f: deg.flicker(f, 6, seed=2)),
    "crf_33": Variant(encode={"crf": 33}),
}


class ClipBank:
    """Builds each variant's clip on first use and caches its metrics."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._paths: dict[str, Path] = {}
        self._metrics: dict[tuple[str, bool], dict[str, Any]] = {}

    @property
    def script(self) -> dict:
        """What the clips are supposed to show (the clean captions), renderer-shaped."""
        return script_for(list(TEXTS), SECONDS)

    def path(self, name: str) -> Path:
        if name not in self._paths:
            variant = VARIANTS[name]
            frames = list(synthetic_frames(WIDTH, HEIGHT, FPS, SECONDS, variant.texts))
            if variant.transform is not None:
                frames = variant.transform(frames)
            self._paths[name] = encode_frames(
                frames, self.folder / f"{name}.mp4", FPS, **variant.encode
            )
        return self._paths[name]

    def metrics(self, name: str, *, ocr: bool = False) -> dict[str, Any]:
        key = (name, ocr)
        if key not in self._metrics:
            self._metrics[key] = analyze_video(
                self.path(name), script=self.script if ocr else None, ocr=ocr
            )
        return self._metrics[key]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> ClipBank:
    return ClipBank(tmp_path_factory.mktemp("videometrics_clips"))


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory, clips: ClipBank) -> dict[str, Path]:
    """Inputs that are not measurable videos, each with a different failure."""
    folder = tmp_path_factory.mktemp("videometrics_bad")
    files: dict[str, Path] = {"missing": folder / "does_not_exist.mp4", "directory": folder}

    text = folder / "notes.mp4"
    text.write_text("these are meeting notes, not a video\n" * 40)
    files["text_as_mp4"] = text

    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    files["empty"] = empty

    good = clips.path("clean").read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])  # moov atom is at the end: it is cut off
    files["truncated"] = truncated

    # A video stream with no frames: a Matroska file cut just inside its first Cluster (after
    # the Cluster ID) keeps the header and the declared video track but holds no frame.
    mkv = encode_frames(synthetic_frames(64, 64, FPS, 0.5), folder / "source.mkv", FPS).read_bytes()
    zero = folder / "zero_frames.mkv"
    zero.write_bytes(mkv[: mkv.index(b"\x1f\x43\xb6\x75") + 8])
    files["zero_frames"] = zero

    # Matroska cut mid-way: it opens and decodes, but only part of what its header declares.
    long_mkv = encode_frames(
        synthetic_frames(WIDTH, HEIGHT, FPS, 2.0), folder / "long.mkv", FPS
    ).read_bytes()
    cut = folder / "truncated.mkv"
    cut.write_bytes(long_mkv[: len(long_mkv) * 6 // 10])
    files["truncated_mkv"] = cut

    audio = folder / "tone.m4a"
    with av.open(str(audio), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        t = np.arange(16000) / 16000.0
        samples = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    files["audio_only"] = audio
    return files
