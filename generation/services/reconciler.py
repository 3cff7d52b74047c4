"""The reconciler: recovery that waits for no human (a beat task every RECONCILE_EVERY_SECONDS).

Each pass, idempotent and safe beside the workers:

- **dispatch** server generations still queued whose task never reached the broker (no
  ``dispatched_at``: the broker was down when they were created) or was lost (sent long ago and
  never started: Redis restarted without persistence);
- **take back** server renders whose heartbeat stopped (the lease ran out: a killed pool
  process, a dead worker host): queued again and dispatched, or failed with the reason once
  GENERATION_MAX_ATTEMPTS runs are spent; remote jobs whose leases ran out on their last
  attempt fail likewise (the others are simply claimable again);
- **measure** finished videos whose metrics worker died (a running measurement with a stale
  heartbeat: failed with the stale reason and sent again at once while attempts remain) or
  whose metrics task never reached the broker or was lost (the succeeded row's
  ``dispatched_at``, which records when the measurement was sent, is empty or old);
- **sweep** litter: partial renders (``.part``) of generations no live run holds, uploads a
  killed web worker left in FILE_UPLOAD_TEMP_DIR, and media files of generations that failed or
  no longer exist — each only once older than LITTER_MAX_AGE_SECONDS.

Duplicate deliveries are harmless: every task takes its row with a conditional UPDATE.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from feedbackloop.dispatch import send
from generation.media import FOLDER, remove_files
from generation.models import Generation, MetricsRun
from generation.services.claims import server_generations
from generation.services.leases import jobs_fail_exhausted
from generation.services.metrics import STALE_REASON, stale_before
from generation.services.rendering import mark_dispatched, stalled_render_fail

logger = logging.getLogger(__name__)
G = Generation.Status
BATCH = 500
# A row this young may still be committing its own dispatch: leave it to its request.
DISPATCH_GRACE = timedelta(seconds=5)


def reconcile() -> dict[str, int]:
    now = timezone.now()
    counts = {
        "dispatched": _dispatch_waiting(now),
        "taken_back": 0,
        "failed": 0,
        "jobs_failed": jobs_fail_exhausted(now),
        "measured": 0,
        "swept": 0,
    }
    counts["taken_back"], counts["failed"] = _take_back_stalled(now)
    counts["measured"] = _measure_unmeasured(now)
    counts["swept"] = _sweep_litter()
    if any(counts.values()):
        logger.info("reconciled: %s", counts)
    return counts


def _send_render(generation_id: str) -> bool:
    from generation.tasks import generation_run_task

    return send(generation_run_task, generation_id, on_sent=lambda: mark_dispatched(generation_id))


def _send_measure(generation_id: str) -> bool:
    from generation.tasks import metrics_compute_task

    def sent() -> None:
        Generation.objects.filter(pk=generation_id, status=G.SUCCEEDED).update(
            dispatched_at=timezone.now()
        )

    return send(metrics_compute_task, generation_id, on_sent=sent)


def _dispatch_waiting(now: Any) -> int:
    resend_before = now - timedelta(seconds=settings.GENERATION_REDISPATCH_SECONDS)
    waiting = server_generations().filter(
        Q(dispatched_at__isnull=True, created_at__lt=now - DISPATCH_GRACE)
        | Q(dispatched_at__lt=resend_before),
        status=G.QUEUED,
    )
    sent = 0
    for generation_id in waiting.order_by("queued_at").values_list("pk", flat=True)[:BATCH]:
        if not _send_render(str(generation_id)):
            break  # the broker is still down: try again next pass
        sent += 1
    return sent


def _take_back_stalled(now: Any) -> tuple[int, int]:
    stalled = server_generations().filter(status=G.RUNNING, lease_expires_at__lt=now)
    taken, failed = 0, 0
    for generation in stalled.order_by("lease_expires_at")[:BATCH]:
        if generation.attempts >= settings.GENERATION_MAX_ATTEMPTS:
            failed += int(stalled_render_fail(generation=generation))
            continue
        # Conditional: a holder that renewed its lease a moment ago keeps it.
        if not Generation.objects.filter(
            pk=generation.pk,
            status=G.RUNNING,
            lease_id=generation.lease_id,
            lease_expires_at__lt=now,
        ).update(
            status=G.QUEUED,
            lease_id=None,
            lease_expires_at=None,
            progress=0.0,
            dispatched_at=None,
            error=f"taken back after attempt {generation.attempts}: the render stopped "
            "heartbeating",
        ):
            continue
        remove_files(generation.pk)
        _send_render(str(generation.pk))
        taken += 1
    return taken, failed


def _measure_unmeasured(now: Any) -> int:
    import videometrics

    version = videometrics.METRICS_VERSION
    sent = 0
    # A measurement whose worker died is failed with the stale reason (it counts as an attempt)
    # and sent again at once while attempts remain; one conditional UPDATE per run, so two
    # reconcilers never both resend it.
    stale = MetricsRun.objects.filter(
        status=MetricsRun.Status.RUNNING, version=version, heartbeat_at__lt=stale_before()
    )
    for run in stale.order_by("heartbeat_at")[:BATCH]:
        if not MetricsRun.objects.filter(
            pk=run.pk, status=MetricsRun.Status.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(status=MetricsRun.Status.FAILED, error=STALE_REASON, finished_at=now):
            continue
        spent = MetricsRun.objects.filter(generation_id=run.generation_id, version=version)
        if spent.count() < settings.GENERATION_MAX_ATTEMPTS:
            if not _send_measure(str(run.generation_id)):
                break  # the broker is down: the rule below sends it once it is back
            sent += 1
    # Finished videos never measured: the task never reached the broker, or it was lost. A
    # video that could not be decoded is never measured again.
    runs = MetricsRun.objects.filter(generation=OuterRef("pk"), version=version)
    unmeasured = (
        Generation.objects.filter(
            Q(dispatched_at__isnull=True, finished_at__lt=now - DISPATCH_GRACE)
            | Q(dispatched_at__lt=now - timedelta(seconds=settings.GENERATION_REDISPATCH_SECONDS)),
            status=G.SUCCEEDED,
        )
        .exclude(video="")
        .annotate(runs=Count("metrics_runs", filter=Q(metrics_runs__version=version)))
        .filter(
            ~Exists(runs.filter(status=MetricsRun.Status.SUCCEEDED)),
            ~Exists(runs.filter(status=MetricsRun.Status.RUNNING)),
            ~Exists(runs.filter(status=MetricsRun.Status.FAILED).exclude(error=STALE_REASON)),
            runs__lt=settings.GENERATION_MAX_ATTEMPTS,
        )
    )
    for generation_id in unmeasured.order_by("finished_at").values_list("pk", flat=True)[:BATCH]:
        if not _send_measure(str(generation_id)):
            break
        sent += 1
    return sent


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def _generation_id_of(name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(name.split(".")[0])
    except ValueError:
        return None


def _sweep_litter() -> int:
    age = settings.LITTER_MAX_AGE_SECONDS
    swept = 0
    uploads = Path(settings.FILE_UPLOAD_TEMP_DIR)
    if uploads.is_dir():
        for path in uploads.iterdir():
            if path.is_file() and _older_than(path, age):
                path.unlink(missing_ok=True)
                swept += 1
    storage = default_storage
    if not isinstance(storage, FileSystemStorage):
        return swept
    folder = Path(storage.path(FOLDER))
    if not folder.is_dir():
        return swept
    # A partial render named .<id>.<ext>.<hex>.part: left by a render that died, unless a live
    # run of that generation still writes it (a long render's poster waits for the end).
    parts: dict[uuid.UUID | None, list[Path]] = {}
    for part in folder.glob(".*.part"):
        parts.setdefault(_generation_id_of(part.name[1:]), []).append(part)
    rendering = set(
        Generation.objects.filter(
            pk__in=[i for i in parts if i is not None],
            status=G.RUNNING,
            lease_expires_at__gte=timezone.now(),
        ).values_list("pk", flat=True)
    )
    for generation_id, paths in parts.items():
        if generation_id in rendering:
            continue
        for part in paths:
            if _older_than(part, age):
                part.unlink(missing_ok=True)
                swept += 1
    # Media of generations that failed (or were deleted) since the files were written.
    by_id: dict[uuid.UUID, list[Path]] = {}
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        generation_id = _generation_id_of(path.name)
        if generation_id is not None:  # else not a generation's file: not ours to remove
            by_id.setdefault(generation_id, []).append(path)
    ids = list(by_id)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        keep = set(
            Generation.objects.filter(pk__in=chunk)
            .exclude(status=G.FAILED)
            .values_list("pk", flat=True)
        )
        for generation_id in chunk:
            if generation_id in keep:
                continue
            for path in by_id[generation_id]:
                if _older_than(path, age):
                    path.unlink(missing_ok=True)
                    swept += 1
    return swept
