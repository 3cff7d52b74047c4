"""The server's measurements of a finished video, and a worker's own metrics beside them."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from feedbackloop.errors import Conflict, NotFound
from generation.media import local_path
from generation.models import Generation, MetricsRun, MetricValue

logger = logging.getLogger(__name__)


def metrics_compute(*, generation_id: str) -> MetricsRun | None:
    """Measure a finished generation's video and store one row per metric; idempotent.

    A run at the current metric version that already succeeded makes this a no-op, and so does
    one running elsewhere with a fresh heartbeat (the generation's row lock orders two
    deliveries that start at once). While measuring, a thread writes the run's heartbeat every
    GENERATION_HEARTBEAT_SECONDS, so a measurement that takes long is not mistaken for a dead
    one, and one whose process died stops heartbeating (the reconciler sends it again). Rows of
    an older version are replaced in the same transaction as the new rows are written, so
    readers never see a half set. A video that cannot be decoded marks the run failed with the
    reason and writes no rows; it is not retried, since decoding the same bytes again fails
    again.
    """
    import videometrics

    version = videometrics.METRICS_VERSION
    with transaction.atomic():
        generation = Generation.objects.select_for_update().filter(pk=generation_id).first()
        if generation is None:
            raise NotFound(f"no generation with id {generation_id}")
        if generation.status != Generation.Status.SUCCEEDED or not generation.video:
            return None
        runs = generation.metrics_runs.filter(version=version)
        done = runs.filter(status=MetricsRun.Status.SUCCEEDED).first()
        if done is not None:
            return done
        live = runs.filter(
            status=MetricsRun.Status.RUNNING, heartbeat_at__gte=stale_before()
        ).first()
        if live is not None:
            return live  # another worker is measuring it right now
        run = MetricsRun.objects.create(
            generation=generation, version=version, heartbeat_at=timezone.now()
        )
    script = (generation.script or {}).get("scenes") or None
    try:
        with RunHeartbeat(run.pk), local_path(generation.video) as path:
            result = videometrics.analyze_video(
                path, script=script, ocr=settings.METRICS_OCR_ENABLED
            )
    except videometrics.VideoMetricsError as exc:
        MetricsRun.objects.filter(pk=run.pk).update(
            status=MetricsRun.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    metric_store(
        generation=generation, values=result, version=version, source=MetricValue.Source.SERVER
    )
    MetricsRun.objects.filter(pk=run.pk).update(
        status=MetricsRun.Status.SUCCEEDED,
        decode_seconds=result.get("decode_seconds"),
        compute_seconds=result.get("compute_seconds"),
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


# The error of a measurement whose worker stopped heartbeating (set by the reconciler): it counts
# as an attempt, and unlike a video that cannot be decoded it is tried again.
STALE_REASON = "the metrics worker stopped heartbeating (it died or was killed)"


def stale_before() -> Any:
    """A running measurement whose last heartbeat is older than this has lost its worker."""
    return timezone.now() - timedelta(seconds=settings.GENERATION_LEASE_SECONDS)


class RunHeartbeat:
    """Writes a running measurement's heartbeat from a thread while the block runs.

    The metrics library reports no progress, so the heartbeat cannot ride on a callback as the
    renderer's does; a thread of the measuring process stops exactly when that process dies. A
    measurement shorter than one interval never writes.
    """

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._beat, name=f"metrics-heartbeat-{run_id}", daemon=True
        )

    def __enter__(self) -> RunHeartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _beat(self) -> None:
        try:
            while not self.stop.wait(settings.GENERATION_HEARTBEAT_SECONDS):
                try:
                    MetricsRun.objects.filter(
                        pk=self.run_id, status=MetricsRun.Status.RUNNING
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError:
                    logger.warning("metrics run %s: heartbeat not written", self.run_id)
        finally:
            connection.close()  # this thread's own connection


@transaction.atomic
def metric_store(
    *, generation: Generation, values: dict[str, Any], version: int, source: str
) -> list[MetricValue]:
    """Replace this source's metric rows for a generation with ``values`` (numbers only).

    Server rows and worker rows are separate: a worker's post never touches the server's rows.
    """
    rows = [
        MetricValue(
            generation=generation, name=name, value=float(value), version=version, source=source
        )
        for name, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    MetricValue.objects.filter(generation=generation, source=source).delete()
    return MetricValue.objects.bulk_create(rows)


def worker_metrics_store(
    *, generation: Generation, metrics: dict[str, Any], version: int = 1
) -> list[MetricValue]:
    """Store a worker's own metrics for a finished generation, beside (never over) the server's."""
    if generation.status != Generation.Status.SUCCEEDED:
        raise Conflict("metrics can only be posted for a succeeded generation", code="not_finished")
    return metric_store(
        generation=generation, values=metrics, version=version, source=MetricValue.Source.WORKER
    )
