"""What the fault tests do in the test process: set up a pipeline, queue renders, watch rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.models import Generation
from pipelines.models import Pipeline
from tests.faults.stack import Stack, iter_media

G = Generation.Status


def builtin_pipeline_rendering(params: dict[str, Any]) -> Pipeline:
    """The built-in pipeline, registered as `make run` does, its revision 1 using ``params``."""
    from feedbackloop.config import BUILTIN_ENTRY
    from pipelines.builtin.declaration import DECLARATION
    from pipelines.services.registration import pipeline_register

    entry = {k: v for k, v in BUILTIN_ENTRY.items() if k != "declaration"}
    return pipeline_register(
        parameters=DECLARATION, registered_by="fault test", initial_params=params, **entry
    ).pipeline


def queue_render(stack: Stack, pipeline: Pipeline, prompt: str) -> Generation:
    """A queued server render, its task sent to the stack's namespaced generation queue."""
    from feedbackloop.celery import app
    from generation.services.rendering import mark_dispatched
    from generation.services.requests import generation_request

    generation, _ = generation_request(
        pipeline=pipeline, prompt=prompt, backend="builtin", enqueue=False
    )
    app.send_task(
        "generation.tasks.generation_run_task",
        args=[str(generation.pk)],
        queue=stack.queue("generation"),
    )
    mark_dispatched(generation.pk)
    return generation


def mid_render(generation: Generation, media_root: Path) -> bool:
    """Rendering, a heartbeat written since it started, its partial file on disk."""
    generation.refresh_from_db()
    part = any(p.name.endswith(".part") for p in iter_media(media_root, generation.pk))
    return generation.status == G.RUNNING and 0.1 <= generation.progress < 0.9 and part


def finished(generation: Generation) -> Generation | None:
    generation.refresh_from_db()
    return generation if generation.status in (G.SUCCEEDED, G.FAILED) else None


def media_names(media_root: Path, generation: Generation) -> set[str]:
    return {p.name for p in iter_media(media_root, generation.pk)}


def partial_files(media_root: Path) -> list[str]:
    folder = media_root / "generations"
    return [p.name for p in folder.glob(".*.part")] if folder.is_dir() else []
