"""Remote workers' jobs: claim, heartbeat, fail and complete, each on the caller's lease.

A job is a generation with a remote backend. A worker claims it and gets a lease: a lease_id
(new on every claim) valid until lease_expires_at; heartbeats extend it. Heartbeat, fail and
complete succeed only for the worker holding the current, unexpired lease — each is one
conditional UPDATE on (id, running, lease_id, worker, unexpired) — so a worker whose lease ran
out cannot finish a job someone else now holds, and no job succeeds twice. A worker only sees
jobs of the pipelines its token may serve.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from feedbackloop.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from generation.media import poster_name, video_name
from generation.models import Generation, WorkerToken
from generation.services.claims import generation_take, remote_jobs, waiting
from generation.services.outcomes import generation_succeed
from generation.services.uploads import poster_extension, probe_upload
from generation.signals import generation_failed
from pipelines.models import Pipeline
from pipelines.renderers import RenderedVideo

G = Generation.Status


def lease_duration(lease_seconds: int | None) -> timedelta:
    if lease_seconds is None:
        return timedelta(seconds=settings.API_JOB_LEASE_SECONDS)
    limit = settings.API_JOB_LEASE_MAX_SECONDS
    if (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, int)
        or not (10 <= lease_seconds <= limit)
    ):
        raise InvalidInput(
            f"lease_seconds must be an integer from 10 to {limit}", code="invalid_lease_seconds"
        )
    return timedelta(seconds=lease_seconds)


def _held(*, generation_id: Any, worker: WorkerToken, lease_id: Any, now: Any) -> QuerySet:
    return Generation.objects.filter(
        pk=generation_id,
        status=G.RUNNING,
        lease_id=lease_id,
        claimed_by=worker,
        lease_expires_at__gt=now,
    )


def _lease_problem(*, generation_id: Any, worker: WorkerToken, lease_id: Any) -> DomainError:
    """Why a lease operation matched no row, as the error to raise."""
    generation = remote_jobs().filter(pk=generation_id).first()
    if generation is None:
        return NotFound(f"no job with id {generation_id}", code="unknown_job")
    if generation.status in (G.SUCCEEDED, G.FAILED):
        return Conflict(f"job {generation_id} is already {generation.status}", code="job_finished")
    if str(generation.lease_id) != str(lease_id) or generation.claimed_by_id != worker.pk:
        return Conflict(
            f"job {generation_id} is no longer leased to you; it was claimed again",
            code="lease_lost",
        )
    return Conflict(f"your lease on job {generation_id} has expired", code="lease_expired")


def served_pipelines(*, worker: WorkerToken, slugs: list[str] | None) -> list[int]:
    """The ids of the pipelines a claim may draw from: those asked for (each must be one the
    token may serve: Forbidden otherwise), or all the token may serve."""
    known = dict(Pipeline.objects.values_list("slug", "pk"))
    if slugs is None:
        return [pk for slug, pk in known.items() if worker.may_serve(slug)]
    unknown = [s for s in slugs if s not in known]
    if unknown:
        raise NotFound(f"no pipeline {', '.join(map(repr, unknown))}", code="unknown_pipeline")
    refused = [s for s in slugs if not worker.may_serve(s)]
    if refused:
        raise Forbidden(
            f"worker {worker.name!r} may not serve {', '.join(map(repr, refused))}; it may serve "
            f"{', '.join(worker.pipelines) or 'no pipeline'}",
            code="pipeline_not_allowed",
        )
    return [known[s] for s in slugs]


def jobs_fail_exhausted(now: Any) -> int:
    """Fail jobs whose lease expired after their last allowed attempt, so none loops forever."""
    exhausted = remote_jobs().filter(
        status=G.RUNNING, lease_expires_at__lt=now, attempts__gte=settings.API_JOB_MAX_ATTEMPTS
    )
    # Read first: workers poll often, and an UPDATE takes SQLite's write lock even when it
    # matches nothing.
    ids = list(exhausted.values_list("pk", flat=True))
    if not ids:
        return 0
    error = f"the lease expired on all {settings.API_JOB_MAX_ATTEMPTS} attempts"
    failed = 0
    for generation_id in ids:
        # One conditional UPDATE each: only the caller that failed a job announces it.
        if exhausted.filter(pk=generation_id).update(
            status=G.FAILED, error=error, finished_at=now, lease_expires_at=None
        ):
            failed += 1
            generation_failed.send(sender=Generation, generation_id=generation_id, error=error)
    return failed


def job_claim(
    *, worker: WorkerToken, pipelines: list[str] | None = None, lease_seconds: int | None = None
) -> Generation | None:
    """Lease the oldest waiting job of the pipelines the worker serves; None when none waits."""
    lease = lease_duration(lease_seconds)
    pipeline_ids = served_pipelines(worker=worker, slugs=pipelines)
    if not pipeline_ids:
        return None
    jobs = remote_jobs().filter(revision__pipeline_id__in=pipeline_ids)
    for _round in range(5):
        now = timezone.now()
        jobs_fail_exhausted(now)
        candidates = list(
            waiting(jobs, now).order_by("queued_at", "id").values_list("pk", flat=True)[:8]
        )
        if not candidates:
            return None
        for pk in candidates:
            # The conditional UPDATE must not join (revision__pipeline): PostgreSQL then
            # writes it as "pk IN (subquery)" and, when two claims race for a row, re-checks
            # only that, so both would win. The pipeline was checked in choosing candidates.
            job = generation_take(
                queryset=remote_jobs(), generation_id=pk, lease=lease, worker=worker
            )
            if job is not None:
                return job
    return None


def job_heartbeat(
    *,
    generation_id: Any,
    worker: WorkerToken,
    lease_id: Any,
    lease_seconds: int | None = None,
    progress: float | None = None,
) -> Generation:
    """Extend the caller's lease (and record progress); Conflict when it no longer holds it."""
    lease = lease_duration(lease_seconds)
    now = timezone.now()
    updates: dict[str, Any] = {"lease_expires_at": now + lease, "heartbeat_at": now}
    if progress is not None:
        if (
            isinstance(progress, bool)
            or not isinstance(progress, (int, float))
            or not (0.0 <= progress <= 1.0)
        ):
            raise InvalidInput("progress must be a number from 0 to 1", code="invalid_progress")
        updates["progress"] = float(progress)
    if not _held(generation_id=generation_id, worker=worker, lease_id=lease_id, now=now).update(
        **updates
    ):
        raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    return Generation.objects.select_related("revision__pipeline").get(pk=generation_id)


def job_fail(
    *, generation_id: Any, worker: WorkerToken, lease_id: Any, error: str, requeue: bool = False
) -> Generation:
    """Give a leased job up: failed with the worker's error, or back in the queue (requeue)."""
    if not isinstance(error, str) or not error.strip():
        raise InvalidInput("error must be a non-empty text", code="invalid_error")
    now = timezone.now()
    if requeue:
        updates: dict[str, Any] = {"status": G.QUEUED, "progress": 0.0}
    else:
        updates = {"status": G.FAILED, "finished_at": now}
    updates.update(error=error.strip()[:5000], lease_expires_at=None)
    if not _held(generation_id=generation_id, worker=worker, lease_id=lease_id, now=now).update(
        **updates
    ):
        raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    if not requeue:
        generation_failed.send(
            sender=Generation, generation_id=generation_id, error=updates["error"]
        )
    return Generation.objects.select_related("revision__pipeline").get(pk=generation_id)


def job_complete(
    *,
    generation_id: Any,
    worker: WorkerToken,
    lease_id: Any,
    video: Any,
    poster: Any = None,
    script: dict[str, Any] | None = None,
    generation_seconds: float | None = None,
    cpu_seconds: float | None = None,
    peak_rss_bytes: int | None = None,
) -> Generation:
    """Finish a leased job with the worker's video: check it, store it, mark it succeeded.

    The video is opened as a video (and checked against the upload limits) before anything is
    stored; the files are stored before the row changes and removed again if the lease turned
    out to be gone, so a refused upload leaves nothing behind. The server's own metrics are
    enqueued once the row is committed.
    """
    if not _held(
        generation_id=generation_id, worker=worker, lease_id=lease_id, now=timezone.now()
    ).exists():
        raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    if script is not None and not isinstance(script, dict):
        raise InvalidInput("script must be a JSON object", code="invalid_script")
    info = probe_upload(video)
    extension = poster_extension(poster) if poster is not None else None

    storage = default_storage
    stored: list[str] = []
    try:
        stored_video = storage.save(video_name(generation_id), video)
        stored.append(stored_video)
        stored_poster = ""
        if poster is not None:
            stored_poster = storage.save(poster_name(generation_id, extension), poster)
            stored.append(stored_poster)
        with transaction.atomic():
            done = generation_succeed(
                generation_id=generation_id,
                held=_held(
                    generation_id=generation_id,
                    worker=worker,
                    lease_id=lease_id,
                    now=timezone.now(),
                ),
                video_name=stored_video,
                poster_name=stored_poster,
                video=RenderedVideo(
                    duration_s=info["duration_s"],
                    fps=info.get("fps"),
                    width=info.get("width"),
                    height=info.get("height"),
                    codec=(info.get("codec") or "")[:32],
                    size_bytes=video.size,
                    script=script,
                ),
                generation_seconds=generation_seconds,
                cpu_seconds=cpu_seconds,
                peak_rss_bytes=peak_rss_bytes,
            )
            if not done:
                raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    except BaseException:
        for name in stored:
            storage.delete(name)
        raise
    return Generation.objects.select_related("revision__pipeline").get(pk=generation_id)
