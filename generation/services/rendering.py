"""Rendering a generation on the site's own workers with its pipeline's in-process renderer.

The task takes the generation with a lease (claims.generation_take) and keeps it alive with
heartbeats written from the renderer's progress callback, at most every few seconds. A renderer
that dies with its process (kill -9, OOM) stops heartbeating; once its lease runs out the
generation is waiting again and the next delivery or the reconciler runs it anew.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import transaction
from django.utils import timezone

from feedbackloop.dispatch import send_on_commit
from feedbackloop.errors import NotFound
from generation.media import poster_name, remove_files, video_name
from generation.models import Generation
from generation.resources import ResourceMeter
from generation.services.claims import generation_take, server_generations
from generation.services.outcomes import generation_fail, generation_succeed
from pipelines.renderers import rendered_video, renderer_load

logger = logging.getLogger(__name__)
G = Generation.Status


class LeaseLost(Exception):
    """Another runner holds this generation now (our lease expired): stop rendering."""


def generation_enqueue(*, generation: Generation) -> None:
    """Dispatch the render once the row is committed, so the worker always finds it; the
    row records when it went to the broker (the reconciler resends what never did)."""
    from generation.tasks import generation_run_task

    generation_id = str(generation.id)

    send_on_commit(
        generation_run_task, generation_id, on_sent=lambda: mark_dispatched(generation_id)
    )


def mark_dispatched(generation_id: Any) -> None:
    """Record that the render task of a queued generation went to the broker (a row that a
    worker took meanwhile keeps its own state)."""
    Generation.objects.filter(pk=generation_id, status=G.QUEUED).update(
        dispatched_at=timezone.now()
    )


def lease_remaining_seconds(generation: Generation) -> float:
    """How long the current holder's lease still runs (0 when it has expired)."""
    if generation.lease_expires_at is None:
        return 0.0
    return max((generation.lease_expires_at - timezone.now()).total_seconds(), 0.0)


def lease_seconds() -> timedelta:
    return timedelta(seconds=settings.GENERATION_LEASE_SECONDS)


class Heartbeat:
    """The renderer's progress callback: writes progress, heartbeat and a renewed lease on the
    caller's lease only, at most every HEARTBEAT_SECONDS (and at the end)."""

    def __init__(self, generation: Generation) -> None:
        self.held = Generation.objects.filter(
            pk=generation.pk, status=G.RUNNING, lease_id=generation.lease_id
        )
        self.last = time.monotonic()

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < settings.GENERATION_HEARTBEAT_SECONDS and fraction < 1.0:
            return
        self.last = now
        moment = timezone.now()
        if not self.held.update(
            progress=min(max(float(fraction), 0.0), 1.0),
            heartbeat_at=moment,
            lease_expires_at=moment + lease_seconds(),
        ):
            raise LeaseLost("the generation was taken over after its lease expired")


def stalled_render_fail(*, generation: Generation) -> bool:
    """Fail a server render whose lease ran out on its last allowed attempt, with the reason;
    False if it changed meanwhile (its holder renewed the lease, or someone else decided)."""
    failed = generation_fail(
        generation_id=generation.pk,
        error=f"the render stopped heartbeating on all {generation.attempts} attempts "
        "(its worker died or was killed)",
        held=Generation.objects.filter(
            pk=generation.pk,
            status=G.RUNNING,
            lease_id=generation.lease_id,
            lease_expires_at__lt=timezone.now(),
        ),
    )
    return failed.status == G.FAILED


def generation_run(*, generation_id: str) -> Generation:
    """Render a waiting generation; idempotent.

    A generation that is finished, or running under a live lease elsewhere, is returned
    untouched; one whose lease ran out on its last allowed attempt is failed with the reason.
    A render error fails it with the error text; the video is attached only once complete.
    Files an earlier attempt left (a partial render of a killed process) are removed first.
    """
    if not Generation.objects.filter(pk=generation_id).exists():
        raise NotFound(f"no generation with id {generation_id}")
    generation = generation_take(
        queryset=server_generations(),
        generation_id=generation_id,
        lease=lease_seconds(),
        max_attempts=settings.GENERATION_MAX_ATTEMPTS,
    )
    if generation is None:
        current = Generation.objects.get(pk=generation_id)
        if (
            current.status == G.RUNNING
            and lease_remaining_seconds(current) == 0
            and current.attempts >= settings.GENERATION_MAX_ATTEMPTS
        ):
            stalled_render_fail(generation=current)
            current.refresh_from_db()
        return current
    if generation.attempts > 1:
        remove_files(generation.id)
    heartbeat = Heartbeat(generation)
    video, poster = video_name(generation.id), poster_name(generation.id)
    try:
        pipeline = generation.revision.pipeline
        if not pipeline.renderer:
            raise RuntimeError(f"pipeline {pipeline.slug} has no in-process renderer")
        render = renderer_load(pipeline.renderer)
        with ResourceMeter() as meter:
            result, video, poster = _render(generation, render, heartbeat, video, poster)
    except LeaseLost:
        logger.warning(
            "generation %s: lease lost mid-render; the new holder renders it", generation_id
        )
        return Generation.objects.get(pk=generation_id)
    except Exception as exc:  # noqa: BLE001 - any render error is recorded on the row
        logger.exception("generation %s failed", generation.id)
        return generation_fail(
            generation_id=generation.id,
            error=f"{type(exc).__name__}: {exc}",
            held=heartbeat.held,
        )
    usage = meter.usage
    with transaction.atomic():
        done = generation_succeed(
            generation_id=generation.id,
            held=heartbeat.held,
            video_name=video,
            poster_name=poster,
            video=rendered_video(result),
            generation_seconds=usage.wall_seconds,
            cpu_seconds=usage.cpu_seconds,
            peak_rss_bytes=usage.peak_rss_bytes,
        )
    if done:
        logger.info("generation %s succeeded on attempt %d", generation.id, generation.attempts)
    else:
        logger.warning("generation %s: lease lost before it was recorded", generation_id)
    return Generation.objects.get(pk=generation.pk)


def _render(
    generation: Generation, render: Any, heartbeat: Heartbeat, video: str, poster: str
) -> tuple[Any, str, str]:
    storage = default_storage
    arguments = {"prompt": generation.prompt, "params": generation.params, "progress": heartbeat}
    if isinstance(storage, FileSystemStorage):
        # Straight into place: renderers write a temporary file and rename it when complete.
        result = render(
            output_path=Path(storage.path(video)),
            poster_path=Path(storage.path(poster)),
            **arguments,
        )
        return result, video, poster
    with tempfile.TemporaryDirectory() as tmp:
        result = render(
            output_path=Path(tmp) / "video.mp4", poster_path=Path(tmp) / "poster.jpg", **arguments
        )
        with open(Path(tmp) / "video.mp4", "rb") as fh:
            video = storage.save(video, File(fh))
        with open(Path(tmp) / "poster.jpg", "rb") as fh:
            poster = storage.save(poster, File(fh))
    return result, video, poster
