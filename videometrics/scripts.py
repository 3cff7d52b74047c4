"""Parse the on-screen text a video is supposed to show (its "script") into timed scenes.

Accepted shapes:
* {"scenes": [{"text": ..., "start_s": ..., "end_s": ...}, ...], "title": ...} — the renderer's
  Script.to_dict(); extra keys are ignored, `duration_s` may stand in for `end_s`;
* a list of such scene dicts;
* a list of strings (no timing: the video is split into equal segments, one per string);
* a .txt file with one on-screen text per non-empty line (same as a list of strings).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import VideoMetricsError


@dataclass(frozen=True)
class Scene:
    text: str
    start_s: float | None = None  # None: untimed, placed by position once the duration is known
    end_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start_s": self.start_s, "end_s": self.end_s}


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VideoMetricsError(f"script: {what} must be a number, got {value!r}")
    return float(value)


def parse_script(obj: Any) -> list[Scene]:
    """Normalise any accepted script shape to a list of Scenes (times may be None)."""
    if obj is None:
        return []
    if isinstance(obj, dict):
        if "scenes" not in obj:
            raise VideoMetricsError('script: a JSON object needs a "scenes" list')
        obj = obj["scenes"]
    if isinstance(obj, str) or not isinstance(obj, (list, tuple)):
        raise VideoMetricsError("script: expected a list of scenes or of strings")
    scenes: list[Scene] = []
    for i, item in enumerate(obj):
        if isinstance(item, Scene):
            scenes.append(item)
        elif isinstance(item, str):
            scenes.append(Scene(text=item))
        elif isinstance(item, dict):
            text = item.get("text", "")
            if not isinstance(text, str):
                raise VideoMetricsError(f"script: scene {i} text must be a string")
            start = _number(item.get("start_s"), f"scene {i} start_s")
            end = _number(item.get("end_s"), f"scene {i} end_s")
            duration = _number(item.get("duration_s"), f"scene {i} duration_s")
            if end is None and start is not None and duration is not None:
                end = start + duration
            if (start is None) != (end is None):
                raise VideoMetricsError(f"script: scene {i} needs both start_s and end_s")
            if start is not None and end is not None and end < start:
                raise VideoMetricsError(f"script: scene {i} ends before it starts")
            scenes.append(Scene(text=text, start_s=start, end_s=end))
        else:
            raise VideoMetricsError(f"script: scene {i} is neither a string nor an object")
    timed = [s.start_s is not None for s in scenes]
    if any(timed) and not all(timed):
        raise VideoMetricsError("script: either every scene has times or none has")
    return scenes


def load_script(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a script file (.json in any accepted shape, or .txt one text per line).

    Returns a list of {"text", "start_s", "end_s"} dicts (times None when the file has none),
    which `analyze_video(script=...)` accepts as is.
    """
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise VideoMetricsError(f"no such script file: {p}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise VideoMetricsError(f"cannot read script file {p}: {exc}") from exc
    if p.suffix.lower() == ".txt":
        scenes = [Scene(text=line.strip()) for line in raw.splitlines() if line.strip()]
    else:
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise VideoMetricsError(f"script file {p.name} is not valid JSON: {exc.msg}") from exc
        scenes = parse_script(obj)
    return [s.as_dict() for s in scenes]


def place_scenes(scenes: list[Scene], duration_s: float) -> list[Scene]:
    """Give untimed scenes equal consecutive segments of `duration_s`."""
    if not scenes or scenes[0].start_s is not None:
        return scenes
    step = duration_s / len(scenes)
    return [Scene(s.text, i * step, (i + 1) * step) for i, s in enumerate(scenes)]
