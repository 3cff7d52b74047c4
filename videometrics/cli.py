"""Command-line front end: `python -m videometrics PATH [--script-file F] [--json] [--no-ocr]`.

The Django command `manage.py compute_metrics` is a thin wrapper around `compute` and
`format_table`, so both print the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .analysis import analyze_video
from .errors import VideoMetricsError
from .scripts import load_script

# (section, key, unit, direction) — direction: "+" higher is better, "-" lower is better.
_ROWS: list[tuple[str, str, str, str]] = [
    ("video", "frames", "", ""),
    ("video", "fps", "frames/s", ""),
    ("video", "duration_s", "s", ""),
    ("video", "width", "px", ""),
    ("video", "height", "px", ""),
    ("spatial", "sharpness", "Laplacian variance less noise @360p", "+"),
    ("spatial", "noise_sigma", "code values @360p, flat regions", "-"),
    ("spatial", "blockiness", "code values, 0 = none", "-"),
    ("spatial", "colorfulness", "Hasler–Süsstrunk M", "+"),
    ("spatial", "exposure_clipped", "fraction of pixels", "-"),
    ("temporal", "jitter", "share of frames off the cadence", "-"),
    ("temporal", "repeated_frames", "held frames, motion-weighted", "-"),
    ("temporal", "freezes", "held runs of 3+ frames", "-"),
    ("temporal", "skipped_frames", "skipped / out-of-order frames", "-"),
    ("temporal", "flicker", "code values above visibility", "-"),
    ("temporal", "scene_cuts", "count", ""),
    ("diagnostic", "temporal_flickering", "VBench, 0..1", ""),
    ("diagnostic", "temporal_ssim", "0..1", ""),
    ("diagnostic", "warp_error", "MSE, luma 0..1", ""),
    ("diagnostic", "motion", "px/frame @360p", ""),
    ("text", "text_cer", "share of intended text not found", "-"),
    ("composite", "visual_quality", "0..1", "+"),
    ("composite", "temporal_coherence", "0..1", "+"),
    ("composite", "factual_accuracy", "0..1", "+"),
    ("timing", "decode_seconds", "s", ""),
    ("timing", "compute_seconds", "s", ""),
    ("timing", "ocr_seconds", "s", ""),
]


def compute(
    path: str | os.PathLike[str],
    *,
    script_file: str | os.PathLike[str] | None = None,
    ocr: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Load the optional script file and analyse the video (raises VideoMetricsError)."""
    script = load_script(script_file) if script_file else None
    return analyze_video(path, script=script, ocr=ocr, threads=threads)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(result: dict[str, Any]) -> str:
    """A human-readable, sectioned table of the metrics."""
    lines = []
    section = None
    width = max(len(key) for _, key, _, _ in _ROWS)
    for sec, key, unit, direction in _ROWS:
        if key not in result:
            continue
        if sec != section:
            lines.append(f"[{sec}]")
            section = sec
        arrow = {"+": "↑ better", "-": "↓ better"}.get(direction, "")
        note = ", ".join(x for x in (unit, arrow) if x)
        lines.append(f"  {key:<{width}}  {_fmt(result[key]):>10}  {note}".rstrip())
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m videometrics", description="Print the quality metrics of a video file."
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared options (also used by the Django management command)."""
    parser.add_argument("path", help="video file to measure")
    parser.add_argument(
        "--script-file",
        help="on-screen text to check: JSON ({'scenes': [...]} or a list) or .txt (one per line)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-ocr", action="store_true", help="skip OCR (text_cer stays null)")
    parser.add_argument(
        "--threads", type=int, default=None, help="decode/OCR threads (default: all cores)"
    )


def render(result: dict[str, Any], as_json: bool) -> str:
    return json.dumps(result) if as_json else format_table(result)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = compute(
            args.path, script_file=args.script_file, ocr=not args.no_ocr, threads=args.threads
        )
    except VideoMetricsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render(result, args.json))
    return 0
