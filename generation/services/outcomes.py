"""How a generation ends — succeeded with its video, or failed with a reason — and what follows.

Both the server's renderer and a remote worker's upload finish through ``generation_succeed``:
one list of columns, written by one conditional UPDATE on the caller's lease, so a runner that
lost its lease cannot finish a generation someone else holds.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from feedbackloop.dispatch import send_on_commit
from generation.media import remove_files
from generation.models import Generation
from generation.signals import generation_failed
from pipelines.renderers import RenderedVideo

G = Generation.Status


def generation_succeed(
    *,
    generation_id: Any,
    held: QuerySet[Generation],
    video_name: str,
    poster_name: str,
    video: RenderedVideo,
    generation_seconds: float | None = None,
    cpu_seconds: float | None = None,
    peak_rss_bytes: int | None = None,
) -> bool:
    """Mark the generation succeeded if ``held`` (its id on the caller's lease) still matches;
    False if the lease was lost.

    Must run in the caller's transaction: the hooks (metrics) are enqueued on its commit.
    """
    done = held.update(
        status=G.SUCCEEDED,
        video=video_name,
        poster=poster_name,
        script=video.script,
        duration_s=video.duration_s,
        fps=video.fps,
        width=video.width,
        height=video.height,
        codec=video.codec,
        size_bytes=video.size_bytes,
        progress=1.0,
        finished_at=timezone.now(),
        lease_expires_at=None,
        dispatched_at=None,  # from now on: when the measurement was sent (see the hooks)
        generation_seconds=generation_seconds,
        cpu_seconds=cpu_seconds,
        peak_rss_bytes=peak_rss_bytes,
    )
    if done:
        generation_succeeded_hooks(generation_id=str(generation_id))
    return bool(done)


def generation_succeeded_hooks(*, generation_id: str) -> None:
    """What follows a finished video, whoever made it: the server measures it.

    Once the render is over, ``dispatched_at`` records when the measurement went to the broker
    (generation_succeed clears it): a succeeded generation with none, or one sent long ago and
    never started, is measured by the reconciler's dispatch.
    """
    from generation.tasks import metrics_compute_task

    def sent() -> None:
        Generation.objects.filter(pk=generation_id, status=G.SUCCEEDED).update(
            dispatched_at=timezone.now()
        )

    send_on_commit(metrics_compute_task, generation_id, on_sent=sent)


def generation_fail(
    *, generation_id: Any, error: str, held: QuerySet[Generation] | None = None
) -> Generation:
    """Fail a generation that has not finished yet, with the reason (kept to 5,000 chars).

    With ``held`` (the generation on the caller's lease) only while the caller still holds it:
    a runner whose lease was taken over must not fail the new holder's run. Whatever files an
    attempt left for it (a partial render, a stored upload whose lease was lost) are removed:
    a failed generation keeps no media.
    """
    rows = held if held is not None else Generation.objects.filter(pk=generation_id)
    failed = rows.filter(status__in=[G.QUEUED, G.RUNNING]).update(
        status=G.FAILED,
        error=error[:5000],
        finished_at=timezone.now(),
        lease_expires_at=None,
    )
    if failed:
        remove_files(generation_id)
        generation_failed.send(sender=Generation, generation_id=generation_id, error=error[:5000])
    return Generation.objects.get(pk=generation_id)
