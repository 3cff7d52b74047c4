"""Open a video with PyAV, validate it, and stream its frames as YUV plane views.

Luma is read straight from the decoder's Y plane (no colour conversion, no copy); chroma planes
are exposed the same way for the colourfulness metric. Frames in any other pixel format are
converted to yuv420p once, which costs a swscale pass but keeps every metric on one code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from .errors import VideoMetricsError
from .quantizer import DECODER_OPTIONS

# 8-bit planar YUV layouts whose planes can be read as is. Semi-planar (nv12) and high-bit-depth
# formats are converted to yuv420p instead.
_PLANAR_YUV8 = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuvj411p",
        "yuv410p",
    }
)
_AVCOL_RANGE_JPEG = 2  # FFmpeg's enum value for full-range ("JPEG") YUV
_AVCOL_SPC_BT709 = 1


def _first_line(exc: BaseException) -> str:
    # FFmpeg errors carry "[Errno N] message: 'file'"; the bare message reads better.
    text = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return str(text).splitlines()[0]


@dataclass(frozen=True)
class StreamInfo:
    """What the container says about the video stream (before or without decoding)."""

    width: int
    height: int
    fps: float | None
    duration_s: float | None
    frames: int | None
    codec: str
    # What the video stream itself declares (not the container, whose duration may be the
    # audio's): used to detect truncated files that still decode.
    declared_frames: int | None = None
    declared_duration_s: float | None = None


@dataclass
class YUVFrame:
    """One decoded frame as zero-copy plane views; valid only until the next frame is decoded."""

    index: int
    time_s: float
    y: np.ndarray  # (h, w) uint8 view with the decoder's row stride
    full_range: bool
    bt709: bool
    frame: av.VideoFrame  # the PyAV frame, kept for the few frames converted to BGR for OCR

    def chroma(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(U, V) plane views at their native subsampled size; None for gray video. Made on
        demand: only the sampled frames need chroma."""
        if self.frame.format.name == "gray":
            return None
        cu, cv = self.frame.planes[1], self.frame.planes[2]
        return plane_view(cu, cu.width, cu.height), plane_view(cv, cv.width, cv.height)


def plane_view(plane: Any, width: int, height: int) -> np.ndarray:
    """A (height, width) uint8 view of a PyAV plane honouring its line_size (stride)."""
    stride = plane.line_size
    buf = np.frombuffer(plane, dtype=np.uint8)
    if buf.size >= stride * height:
        return buf[: stride * height].reshape(height, stride)[:, :width]
    # Some decoders allocate the last row without its padding.
    return np.lib.stride_tricks.as_strided(buf, shape=(height, width), strides=(stride, 1))


def _stream_info(container: av.container.InputContainer, stream: Any) -> StreamInfo:
    fps: float | None = None
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            fps = float(rate)
            break
    stream_duration: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        stream_duration = float(stream.duration * stream.time_base)
    duration = stream_duration
    if duration is None and container.duration is not None:
        duration = container.duration / av.time_base
    frames = int(stream.frames) if stream.frames else None
    declared_frames = frames
    declared_duration = stream_duration
    if declared_duration is None and len(container.streams) == 1 and duration is not None:
        declared_duration = duration  # Matroska/WebM: only the container knows; no other track
    if duration is None and frames and fps:
        duration = frames / fps
    if frames is None and duration and fps:
        frames = round(duration * fps)
    codec_ctx = stream.codec_context
    return StreamInfo(
        width=int(codec_ctx.width or 0),
        height=int(codec_ctx.height or 0),
        fps=fps,
        duration_s=duration if duration and duration > 0 else None,
        frames=frames,
        codec=str(codec_ctx.name),
        declared_frames=declared_frames,
        declared_duration_s=declared_duration
        if declared_duration and declared_duration > 0
        else None,
    )


class VideoReader:
    """A validated, open video; iterate `frames()` once to decode it.

    `threads`: None lets FFmpeg pick (frame threading on all cores); 1 forces single-threaded
    decoding, which the throughput benchmark uses to measure one core.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise VideoMetricsError(f"no such file: {self.path}")
        if not self.path.is_file():
            raise VideoMetricsError(f"not a regular file: {self.path}")
        if self.path.stat().st_size == 0:
            raise VideoMetricsError(f"empty file: {self.path}")
        try:
            self.container = av.open(str(self.path), mode="r", metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
            raise VideoMetricsError(
                f"not a readable media file: {self.path.name} ({_first_line(exc)})"
            ) from exc
        try:
            if not self.container.streams.video:
                kinds = sorted({s.type for s in self.container.streams}) or ["no streams"]
                raise VideoMetricsError(
                    f"no video stream in {self.path.name} (has {', '.join(kinds)})"
                )
            self.stream = self.container.streams.video[0]
            if threads is not None and threads <= 1:
                self.stream.thread_type = "NONE"
                self.stream.codec_context.thread_count = 1
            else:
                self.stream.thread_type = "AUTO"
                self.stream.codec_context.thread_count = threads or 0
            # Every frame carries its quantiser parameters (videometrics.quantizer).
            self.stream.codec_context.options = dict(DECODER_OPTIONS)
            self.info = _stream_info(self.container, self.stream)
        except BaseException:
            self.container.close()
            raise

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self) -> Iterator[YUVFrame]:
        """Decode every frame once, yielding plane views. Raises VideoMetricsError on bad data."""
        stream = self.stream
        time_base = float(stream.time_base or Fraction(1, 1))  # float: Fraction math per frame
        # costs more than the metrics' own per-frame work
        fps = self.info.fps or 25.0
        start_pts = stream.start_time
        index = 0
        decoder = self.container.decode(stream)
        while True:
            try:
                frame = next(decoder)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                raise VideoMetricsError(
                    f"decoding failed at frame {index} of {self.path.name}: {_first_line(exc)}"
                ) from exc
            fmt = frame.format.name
            converted = False
            if fmt not in _PLANAR_YUV8 and fmt != "gray":
                frame = frame.reformat(format="yuv420p")
                fmt = "yuv420p"
                # swscale writes limited-range BT.601 here, whatever range the source frame
                # was tagged with (the tag is copied over and would mislead).
                converted = True
            width, height = frame.width, frame.height
            y = plane_view(frame.planes[0], width, height)
            if frame.pts is not None:
                time_s = (frame.pts - (start_pts or 0)) * time_base
            else:
                time_s = index / fps
            yield YUVFrame(
                index=index,
                time_s=time_s,
                y=y,
                full_range=not converted
                and (fmt.startswith("yuvj") or frame.color_range == _AVCOL_RANGE_JPEG),
                bt709=not converted and frame.colorspace == _AVCOL_SPC_BT709,
                frame=frame,
            )
            index += 1


def probe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Cheaply check that `path` is a decodable video and describe it.

    Opens the file, decodes only the first video frame, and returns
    {frames, fps, duration_s, width, height, codec}; `frames` and `duration_s` come from the
    container and may be None when it does not say. Raises VideoMetricsError with a one-line
    reason when the file is missing, not media, has no video stream or no decodable frame.
    """
    with VideoReader(path, threads=1) as reader:
        first = next(iter(reader.frames()), None)
        if first is None:
            raise VideoMetricsError(f"no decodable video frame in {reader.path.name}")
        info = reader.info
        return {
            "frames": info.frames,
            "fps": info.fps,
            "duration_s": info.duration_s,
            "width": first.frame.width,
            "height": first.frame.height,
            "codec": info.codec,
        }
