"""LeaseKeeper: keeps a job's lease alive from a thread while the worker generates.

    with LeaseKeeper(client, job, lease_seconds=300) as lease:
        for step in range(steps):
            ...
            lease.report((step + 1) / steps)     # raises LeaseLost once the lease is gone

A heartbeat goes out every third of the lease whatever happens, and as soon as the work has
moved on by ``progress_step`` (at most one per ``min_gap_seconds``), so the site shows the job
moving instead of jumping from 0 % to 100 %. Leaving the block normally sends the last progress
if the thread had not sent it yet. The generating thread never waits for the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from feedbackloop_client.client import FeedbackLoopClient, Job
from feedbackloop_client.errors import ApiError, LeaseLost

logger = logging.getLogger("feedbackloop_client")


class LeaseKeeper:
    def __init__(
        self,
        client: FeedbackLoopClient,
        job: Job,
        lease_seconds: int,
        *,
        progress_step: float = 0.1,
        min_gap_seconds: float = 1.0,
        on_beat: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.client = client
        self.job = job
        self.lease_seconds = lease_seconds
        self.interval = max(2.0, lease_seconds / 3)
        self.progress_step = progress_step
        self.min_gap_seconds = min_gap_seconds
        self.on_beat = on_beat
        self.progress = 0.0
        self.lost = threading.Event()
        self.lost_reason = ""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sent_progress: float | None = None
        self._sent_at = float("-inf")
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        if exc_type is None and not self.lost.is_set() and self.progress != self._sent_progress:
            self._beat()

    def report(self, fraction: float) -> None:
        """Record progress (0 to 1); raises LeaseLost if the lease is gone."""
        if self.lost.is_set():
            raise LeaseLost(self.job.id, self.lost_reason)
        self.progress = max(0.0, min(1.0, float(fraction)))
        sent = self._sent_progress or 0.0
        moved = self.progress - sent >= self.progress_step or self.progress >= 1.0 > sent
        if moved and time.monotonic() - self._sent_at >= self.min_gap_seconds:
            self._wake.set()

    def check(self) -> None:
        """Raise LeaseLost if the lease is gone (for work between progress reports)."""
        if self.lost.is_set():
            raise LeaseLost(self.job.id, self.lost_reason)

    def _run(self) -> None:
        while not self.lost.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._beat()

    def _beat(self) -> None:
        progress = self.progress
        try:
            body = self.client.heartbeat(
                self.job.id,
                self.job.lease_id,
                progress=progress,
                lease_seconds=self.lease_seconds,
            )
        except ApiError as exc:
            if exc.status in (404, 409):
                logger.warning("job %s: lease lost (%s)", self.job.id, exc.message)
                self.lost_reason = exc.message
                self.lost.set()
            else:
                logger.warning("job %s: heartbeat failed: %s", self.job.id, exc)
            return
        self._sent_progress, self._sent_at = progress, time.monotonic()
        self.job.lease_expires_at = (body.get("lease") or {}).get("lease_expires_at", "")
        if self.on_beat is not None:
            self.on_beat(body)
