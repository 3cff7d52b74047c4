"""Generations (videos made with a pipeline's revision), their metrics, and worker tokens."""

from __future__ import annotations

import hashlib
import uuid
from fnmatch import fnmatchcase

from django.conf import settings
from django.db import models
from django.db.models import Q

from generation.media import poster_name, video_name

# The backend name of generations rendered by the site's own Celery workers with the pipeline's
# in-process renderer; any other backend name is a remote worker's job served through the API.
SERVER_BACKEND = "builtin"


def generation_video_path(instance: Generation, filename: str) -> str:
    return video_name(instance.id)


def generation_poster_path(instance: Generation, filename: str) -> str:
    return poster_name(instance.id)


class Generation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prompt = models.TextField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    revision = models.ForeignKey(
        "pipelines.ConfigRevision", on_delete=models.PROTECT, related_name="generations"
    )
    params = models.JSONField(help_text="the resolved parameters this generation used")
    experiment_arm = models.CharField(max_length=16, blank=True)
    backend = models.CharField(max_length=64, default=SERVER_BACKEND)
    idempotency_key = models.CharField(max_length=128, unique=True, null=True, blank=True)
    # An imported video's SHA-256: importing the same bytes again finds this generation.
    content_sha256 = models.CharField(
        max_length=64, unique=True, null=True, blank=True, editable=False
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    video = models.FileField(upload_to=generation_video_path, blank=True, max_length=255)
    poster = models.FileField(upload_to=generation_poster_path, blank=True, max_length=255)
    script = models.JSONField(null=True, blank=True, help_text="the on-screen text intended")
    duration_s = models.FloatField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    codec = models.CharField(max_length=32, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)

    progress = models.FloatField(default=0.0)
    attempts = models.PositiveIntegerField(default=0)
    # The row is its own outbox: when its current task (the render while queued, the
    # measurement once it has succeeded) was handed to the broker. Work not dispatched (the
    # broker was down) or dispatched long ago (the message was lost) is sent again by the
    # reconciler.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    generation_seconds = models.FloatField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    peak_rss_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    # A remote job's lease: the worker token holding it and until when. lease_id changes on
    # every claim, so a worker whose lease expired and was claimed again cannot complete it.
    lease_id = models.UUIDField(null=True, blank=True, editable=False)
    claimed_by = models.ForeignKey(
        "WorkerToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_generations",
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["revision", "status"]),
            models.Index(fields=["status", "lease_expires_at"], name="generation_job_lease_idx"),
            models.Index(fields=["status", "dispatched_at"], name="generation_dispatch_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="succeeded") | ~Q(video=""), name="succeeded_has_video"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="progress_0_to_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt[:40]} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status == self.Status.SUCCEEDED


class MetricsRun(models.Model):
    """One computation of the server's metrics for a generation: its outcome and reason."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    generation = models.ForeignKey(
        Generation, on_delete=models.CASCADE, related_name="metrics_runs"
    )
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    decode_seconds = models.FloatField(null=True, blank=True)
    compute_seconds = models.FloatField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="written while measuring; stale means the worker died"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"metrics v{self.version} of {self.generation_id}: {self.status}"


class MetricValue(models.Model):
    """One automated metric of one generation: one row per (generation, name, version, source)."""

    class Source(models.TextChoices):
        SERVER = "server", "server"
        WORKER = "worker", "worker"

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=64)
    value = models.FloatField(null=True)
    version = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SERVER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation_id", "name", "source"]
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "name", "version", "source"], name="one_metric_row"
            )
        ]
        indexes = [models.Index(fields=["name", "source", "version"])]

    def __str__(self) -> str:
        return f"{self.name}={self.value} (v{self.version}, {self.source})"


class WorkerToken(models.Model):
    """An API credential of one remote generator worker.

    Only a SHA-256 hash of the key is stored; the key itself is shown once, when it is made.
    """

    KEY_PREFIX = "flw_"

    name = models.CharField(max_length=64)
    prefix = models.CharField(max_length=16, editable=False, help_text="the key's first characters")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    pipelines = models.JSONField(
        default=list,
        blank=True,
        help_text="the pipelines this worker may serve and register: slugs or patterns such as "
        '"diffusers-*" ("*" for all)',
    )
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=Q(revoked=False), name="one_live_token_per_worker_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…{', revoked' if self.revoked else ''})"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def may_serve(self, slug: str) -> bool:
        return any(fnmatchcase(slug, pattern) for pattern in self.pipelines or [])
