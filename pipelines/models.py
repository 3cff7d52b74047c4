"""Pipelines (declared generators), their schema versions, and their configuration revisions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from pipelines.declarations import params_diff

# Who may approve, reject and roll back revisions (a model permission, granted to admins).
APPROVE_PERMISSION = "pipelines.approve_configrevision"

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
slug_validator = RegexValidator(
    SLUG_PATTERN,
    "a slug is 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit",
)


class Pipeline(models.Model):
    """A video generator with a declared parameter space: the built-in renderer, a diffusers
    model on GPU hosts, a hosted API. Each has its own revisions, experiments and queue."""

    slug = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    renderer = models.CharField(
        max_length=200,
        blank=True,
        help_text="dotted path of an in-process renderer (module:function); blank when remote "
        "workers generate this pipeline's videos through the API",
    )
    registered_by = models.CharField(
        max_length=100,
        blank=True,
        help_text="who registered it: config, user:<name>, worker:<name>",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class SchemaVersion(models.Model):
    """One version of a pipeline's declared parameter space. A changed declaration makes a new
    version; revisions keep the version they were made under."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    parameters = models.JSONField(help_text="the JSON Schema of the parameters")
    digest = models.CharField(max_length=64, help_text="sha256 of the canonical JSON")
    created_by = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pipeline_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "number"], name="schema_version_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="schema_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.slug} schema v{self.number}"


class ImmutableRevisionError(Exception):
    """A revision's params were changed after creation; make a new revision instead."""


class RevisionQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        if {"params", "parent", "number", "pipeline", "schema_version"} & set(kwargs):
            raise ImmutableRevisionError("a revision's params, parent and number never change")
        return super().update(**kwargs)


class ConfigRevision(models.Model):
    """One configuration of one pipeline, immutable once saved; its lifecycle is a state machine
    (pipelines.services.revisions) whose every step is a RevisionTransition."""

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

    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="revisions")
    schema_version = models.ForeignKey(
        SchemaVersion, on_delete=models.PROTECT, related_name="revisions"
    )
    number = models.PositiveIntegerField(editable=False)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    params = models.JSONField()
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
        ordering = ["pipeline_id", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "number"], name="revision_number_per_pipeline"
            ),
            models.UniqueConstraint(
                fields=["pipeline"],
                condition=Q(status="active"),
                name="one_active_revision_per_pipeline",
            ),
            models.CheckConstraint(
                condition=Q(rollout_share__isnull=True)
                | (Q(rollout_share__gt=0) & Q(rollout_share__lt=1)),
                name="rollout_share_between_0_and_1",
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="revision_number_positive"),
        ]
        indexes = [models.Index(fields=["pipeline", "status"], name="revision_pipeline_status")]
        permissions = [("approve_configrevision", "Can approve, reject and roll back revisions")]

    def __str__(self) -> str:
        return f"r{self.number} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = (
                ConfigRevision.objects.filter(pk=self.pk)
                .values_list("params", "parent_id", "number", "pipeline_id", "schema_version_id")
                .first()
            )
            if stored is not None and stored != (
                self.params,
                self.parent_id,
                self.number,
                self.pipeline_id,
                self.schema_version_id,
            ):
                raise ImmutableRevisionError(
                    f"revision r{self.number}: params are immutable; create a new revision"
                )
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        """How people name a revision across pipelines: builtin r7."""
        return f"{self.pipeline.slug} r{self.number}"

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
