"""Configuration revisions and the generations made with them."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from generation.params import params_diff, validate_params


class ImmutableRevisionError(Exception):
    """A revision's params were changed after creation; make a new revision instead."""


class RevisionQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        if "params" in kwargs or "parent" in kwargs or "number" in kwargs:
            raise ImmutableRevisionError("a revision's params, parent and number never change")
        return super().update(**kwargs)


class ConfigRevision(models.Model):
    class Status(models.TextChoices):
        PROPOSED = "proposed", "proposed"
        APPROVED = "approved", "approved"
        CANARY = "canary", "canary"
        ACTIVE = "active", "active"
        RETIRED = "retired", "retired"
        REJECTED = "rejected", "rejected"
        ROLLED_BACK = "rolled_back", "rolled back"

    class Source(models.TextChoices):
        MANUAL = "manual", "manual"
        IMPROVER = "improver", "improver"
        ROLLBACK = "rollback", "rollback"

    number = models.PositiveIntegerField(unique=True, editable=False)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    params = models.JSONField()
    model_variant = models.CharField(max_length=32, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED)
    rationale = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    predicted_impact = models.JSONField(default=dict, blank=True)
    rollout_share = models.FloatField(
        null=True, blank=True, help_text="while a canary: the fraction of new generations it gets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RevisionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_revision"
            ),
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="canary"), name="one_canary_revision"
            ),
            models.CheckConstraint(
                condition=Q(rollout_share__isnull=True)
                | (Q(rollout_share__gt=0) & Q(rollout_share__lt=1)),
                name="rollout_share_between_0_and_1",
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="revision_number_positive"),
        ]
        permissions = [("approve_configrevision", "Can approve, reject and roll back revisions")]

    def __str__(self) -> str:
        return f"r{self.number} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = (
                ConfigRevision.objects.filter(pk=self.pk)
                .values_list("params", "parent_id", "number")
                .first()
            )
            if stored is not None and stored != (self.params, self.parent_id, self.number):
                raise ImmutableRevisionError(
                    f"revision r{self.number}: params are immutable; create a new revision"
                )
        self.model_variant = (self.params or {}).get("model_variant", "")
        super().save(*args, **kwargs)

    def clean(self) -> None:
        try:
            self.params = validate_params(self.params)
        except ValidationError as exc:
            # Forms show model errors per form field; every message already names its key.
            raise ValidationError(
                {"params": [m for messages in exc.message_dict.values() for m in messages]}
            ) from exc

    def diff_from_parent(self) -> dict[str, tuple[Any, Any]]:
        return params_diff(self.parent.params if self.parent else None, self.params)


class RevisionTransition(models.Model):
    """One step of a revision's lifecycle: who moved it, when, from what, to what, and why."""

    revision = models.ForeignKey(
        ConfigRevision, on_delete=models.CASCADE, related_name="transitions"
    )
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, choices=ConfigRevision.Status.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"r{self.revision.number}: {self.from_status or '∅'} → {self.to_status}"


def generation_video_path(instance: Generation, filename: str) -> str:
    return f"generations/{instance.id}.mp4"


def generation_poster_path(instance: Generation, filename: str) -> str:
    return f"generations/{instance.id}.jpg"


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
        ConfigRevision, on_delete=models.PROTECT, related_name="generations"
    )
    params = models.JSONField(help_text="the resolved parameters this generation used")
    experiment_arm = models.CharField(max_length=16, blank=True)
    backend = models.CharField(max_length=64, default="builtin")
    idempotency_key = models.CharField(max_length=128, unique=True, null=True, blank=True)
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
