"""What the improver saw and what it concluded."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AnalysisRun(models.Model):
    """A snapshot of one analysis: the feedback it saw, the statistics, and what it proposed."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "schedule"
        LIBRARY = "library", "library"
        MANUAL = "manual", "manual"

    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    ratings_seen = models.PositiveIntegerField(default=0)
    new_ratings = models.PositiveIntegerField(
        default=0, help_text="ratings recorded since the previous run"
    )
    last_rating_id = models.BigIntegerField(
        default=0, help_text="the newest rating this run saw; the next threshold counts from it"
    )
    snapshot = models.JSONField(default=dict, blank=True)
    proposed = models.ManyToManyField(
        "generation.ConfigRevision", blank=True, related_name="analysis_runs"
    )
    skipped_reason = models.CharField(max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"analysis #{self.pk} ({self.ratings_seen} ratings)"
