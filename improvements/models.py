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

    pipeline = models.ForeignKey(
        "pipelines.Pipeline", on_delete=models.CASCADE, related_name="analysis_runs"
    )
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
        "pipelines.ConfigRevision", blank=True, related_name="analysis_runs"
    )
    skipped_reason = models.CharField(max_length=255, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pipeline", "-id"], name="analysis_run_pipeline")]

    def __str__(self) -> str:
        return f"analysis #{self.pk} of {self.pipeline_id} ({self.ratings_seen} ratings)"


class ImproverSettings(models.Model):
    """Admin overrides of the config file's improvement criteria (one row; blank = use the file)."""

    min_feedback_for_analysis = models.PositiveIntegerField(null=True, blank=True)
    target_rating = models.FloatField(null=True, blank=True)
    min_effect = models.FloatField(null=True, blank=True)
    alpha = models.FloatField(null=True, blank=True)
    min_ratings_per_arm = models.PositiveIntegerField(null=True, blank=True)
    canary_share = models.FloatField(null=True, blank=True)
    control_history = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="generations of the control from before an arm opened that count in its test "
        "(0: concurrent only, for a panel whose ratings drift)",
    )
    max_failure_rate = models.FloatField(null=True, blank=True)
    max_generation_seconds_ratio = models.FloatField(null=True, blank=True)
    max_issue_rate_increase = models.FloatField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "improver settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(alpha__isnull=True)
                | (models.Q(alpha__gt=0) & models.Q(alpha__lt=0.5)),
                name="improver_alpha_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(canary_share__isnull=True)
                | (models.Q(canary_share__gt=0) & models.Q(canary_share__lt=1)),
                name="improver_canary_share_in_range",
            ),
        ]

    def __str__(self) -> str:
        return "improver settings"


class Experiment(models.Model):
    """Candidate revisions (arms) of one pipeline, each run on a share of new generations
    against the pipeline's active revision (the control), until each arm is decided.

    Arms may join while it runs. It finishes when its control stops being active (an arm was
    promoted, or an admin rolled back): arms still undecided then carry on in the next
    experiment against the new control, their earlier ratings kept out of its comparisons.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        FINISHED = "finished", "finished"

    pipeline = models.ForeignKey(
        "pipelines.Pipeline", on_delete=models.PROTECT, related_name="experiments"
    )
    control = models.ForeignKey(
        "pipelines.ConfigRevision", on_delete=models.PROTECT, related_name="experiments_as_control"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    alpha = models.FloatField()
    min_effect = models.FloatField()
    min_ratings_per_arm = models.PositiveIntegerField()
    result = models.JSONField(default=dict, blank=True, help_text="the latest numbers")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline"],
                condition=models.Q(status="running"),
                name="one_running_experiment_per_pipeline",
            ),
            models.CheckConstraint(
                condition=models.Q(alpha__gt=0) & models.Q(alpha__lt=0.5),
                name="experiment_alpha_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"experiment #{self.pk} vs r{self.control.number} ({self.status})"


class ExperimentArm(models.Model):
    """One candidate revision in an experiment: its share of traffic and how it ended."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        PROMOTED = "promoted", "promoted"
        DROPPED = "dropped", "dropped"
        ROLLED_BACK = "rolled_back", "rolled back"
        CARRIED_OVER = "carried_over", "carried over"
        ABORTED = "aborted", "aborted"

    class Role(models.TextChoices):
        CHALLENGER = "challenger", "challenger"  # tested against the control for promotion
        EXPLORER = "explorer", "explorer"  # rated to learn from, never promoted as such

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    revision = models.ForeignKey(
        "pipelines.ConfigRevision", on_delete=models.PROTECT, related_name="arms"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CHALLENGER)
    alpha = models.FloatField(
        default=0.05, help_text="the level of this arm's always-valid promotion test"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    share = models.FloatField(help_text="the fraction of new generations it gets while running")
    reason = models.TextField(blank=True, help_text="why it ended")
    result = models.JSONField(default=dict, blank=True, help_text="the latest numbers")
    started_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "revision"], name="arm_once_per_experiment"
            ),
            models.UniqueConstraint(
                fields=["revision"],
                condition=models.Q(status="running"),
                name="revision_runs_in_one_arm",
            ),
            models.CheckConstraint(
                condition=models.Q(share__gt=0) & models.Q(share__lt=1), name="arm_share_in_range"
            ),
        ]

    def __str__(self) -> str:
        return f"arm r{self.revision.number} ({self.status})"


class ExperimentDecision(models.Model):
    """One look at an arm: the numbers and what was decided."""

    class Kind(models.TextChoices):
        CONTINUE = "continue", "continue"
        PROMOTE = "promote", "promote"
        DROP = "drop", "drop"
        ROLLBACK = "rollback", "roll back"
        ABORT = "abort", "abort"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="decisions")
    arm = models.ForeignKey(
        ExperimentArm, null=True, blank=True, on_delete=models.CASCADE, related_name="decisions"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.TextField(blank=True)
    estimate = models.FloatField(null=True, blank=True)
    lower = models.FloatField(null=True, blank=True)
    upper = models.FloatField(null=True, blank=True)
    n_candidate = models.PositiveIntegerField(default=0)
    n_control = models.PositiveIntegerField(default=0)
    numbers = models.JSONField(default=dict, blank=True, help_text="guardrails and other figures")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} ({self.n_candidate}/{self.n_control})"


class ActionReceipt(models.Model):
    """The first answer to an admin action (approve, reject, roll back) sent with an
    Idempotency-Key: a repeat with the same key gets this answer again and changes nothing.

    Only successful answers are kept; the key is claimed (the row inserted) in the action's own
    transaction, so two requests with one key never both act.
    """

    key = models.CharField(max_length=128, unique=True)
    action = models.CharField(max_length=64, help_text="e.g. revision.rollback")
    target = models.CharField(max_length=200, help_text="e.g. builtin/r9")
    request_digest = models.CharField(
        max_length=64, help_text="SHA-256 of the request body: the same key must come with it"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.target} ({self.key})"
