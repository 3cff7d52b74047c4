"""Webhook endpoints and their delivery log; the admin's export entry (a view of pipelines)."""

from __future__ import annotations

import secrets
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from pipelines.models import Pipeline


class Event(models.TextChoices):
    PROPOSAL_CREATED = "proposal.created", "proposal created"
    EXPERIMENT_DECIDED = "experiment.decided", "experiment decided"
    GENERATION_FAILED = "generation.failed", "generation failed"


def all_events() -> list[str]:
    return list(Event.values)


def secret_new() -> str:
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A URL that is POSTed the events it subscribes to, signed with its secret."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500, help_text="http(s) URL that receives the POSTs")
    secret = models.CharField(
        max_length=128,
        default=secret_new,
        help_text="signs every delivery (X-Feedbackloop-Signature); see docs/webhooks.md",
    )
    events = models.JSONField(
        default=all_events,
        help_text=f"the events to send: any of {', '.join(Event.values)}",
    )
    slack = models.BooleanField(
        default=False, help_text="send a Slack-compatible body ({text, blocks}) instead of JSON"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"

    def clean(self) -> None:
        events = self.events
        if not isinstance(events, list) or not events:
            raise ValidationError({"events": f"a list of one or more of {', '.join(Event.values)}"})
        unknown = sorted(set(map(str, events)) - set(Event.values))
        if unknown:
            raise ValidationError(
                {"events": f"unknown {', '.join(unknown)}; valid: {', '.join(Event.values)}"}
            )

    def wants(self, event: str) -> bool:
        return self.active and event in (self.events or [])


class WebhookDelivery(models.Model):
    """One event for one endpoint: written in the transaction that made the event, before the
    first attempt, and updated by every attempt until it succeeds or the attempts run out."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=32, choices=Event.choices)
    event_id = models.UUIDField(help_text="the same for every endpoint that got this event")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="when the next attempt is due (pending only)"
    )
    locked_until = models.DateTimeField(
        null=True, blank=True, help_text="an attempt in progress holds the delivery until then"
    )
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="when its task last went to the broker"
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    history = models.JSONField(
        default=list, blank=True, help_text="every attempt: when, HTTP status or error, ms"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="succeeded") | Q(delivered_at__isnull=False),
                name="webhook_delivered_has_time",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint.name} ({self.status})"


class FeedbackExport(Pipeline):
    """The admin's export page: pipelines, with actions that download their feedback."""

    class Meta:
        proxy = True
        verbose_name = "feedback export"
        verbose_name_plural = "feedback exports"
