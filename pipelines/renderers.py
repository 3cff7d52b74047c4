"""In-process renderers: how a pipeline that runs on the server's own workers makes a video.

A pipeline whose ``renderer`` names a callable (``package.module:function``) is rendered by the
site's Celery workers; a pipeline without one is served by remote workers through the API. The
callable takes keyword arguments and returns an object with the video's facts:

    render(*, prompt: str, params: dict, output_path: Path, poster_path: Path,
           progress: Callable[[float], None] | None) -> result

``result`` has ``duration_s``, ``fps``, ``width``, ``height``, ``codec``, ``size_bytes`` and
``script`` (the on-screen text intended: a dict, an object with ``to_dict()``, or None). It must
write both files atomically (nothing at the paths unless the render succeeded).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from feedbackloop.errors import InvalidInput

Renderer = Callable[..., Any]


@dataclass(frozen=True)
class RenderedVideo:
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    size_bytes: int
    script: dict[str, Any] | None


@lru_cache(maxsize=32)
def renderer_load(dotted: str) -> Renderer:
    """The callable a ``module:function`` path names; InvalidInput if there is none."""
    module_name, _, attribute = dotted.partition(":")
    if not module_name or not attribute:
        raise InvalidInput(
            f"renderer {dotted!r} must look like 'package.module:function'", code="invalid_renderer"
        )
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(
            f"renderer {dotted!r} cannot be imported: {exc}", code="invalid_renderer"
        ) from exc
    if not callable(target):
        raise InvalidInput(f"renderer {dotted!r} is not callable", code="invalid_renderer")
    return target


def rendered_video(result: Any) -> RenderedVideo:
    """The facts a renderer reported, in one shape whatever the renderer's own result type."""
    script = getattr(result, "script", None)
    if script is not None and hasattr(script, "to_dict"):
        script = script.to_dict()
    return RenderedVideo(
        duration_s=float(result.duration_s),
        fps=float(result.fps),
        width=int(result.width),
        height=int(result.height),
        codec=str(result.codec)[:32],
        size_bytes=int(result.size_bytes),
        script=script,
    )
