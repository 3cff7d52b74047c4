"""Human feedback: ratings on dimensions, timestamped issue reports, blind comparisons."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from generation.models import Generation

# The dimension that asks for an overall judgement: the improver's objective by default.
OVERALL_DIMENSION = "overall_satisfaction"


class RatingDimension(models.Model):
    """What reviewers rate 1-5. Global dimensions apply to every pipeline; a pipeline may add
    its own (e.g. "motion realism" for a video model), shown only for its videos."""

    slug = models.SlugField(max_length=64, unique=True)
    pipeline = models.ForeignKey(
        "pipelines.Pipeline",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rating_dimensions",
        help_text="blank: rated for every pipeline",
    )
    label = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "slug"]

    def __str__(self) -> str:
        return self.slug


class Review(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="reviews")
    comments = models.TextField(blank=True)
    seconds_spent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reviewer", "generation"], name="one_review_per_reviewer_and_generation"
            )
        ]

    def __str__(self) -> str:
        # Names, not ids: this is the title of the review's admin page.
        prompt = self.generation.prompt if self.generation_id else ""
        who = self.reviewer.get_username() if self.reviewer_id else "?"
        short = prompt[:50] + ("…" if len(prompt) > 50 else "")
        return f"{who}'s review of “{short}”"


class Rating(models.Model):
    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="ratings")
    dimension = models.ForeignKey(RatingDimension, on_delete=models.PROTECT, related_name="ratings")
    value = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["review_id", "dimension_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(value__gte=1) & Q(value__lte=5), name="rating_between_1_and_5"
            ),
            models.UniqueConstraint(
                fields=["review", "dimension"], name="one_rating_per_review_and_dimension"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dimension_id}={self.value}"


class IssueReport(models.Model):
    class Category(models.TextChoices):
        VISUAL_ARTIFACT = "visual_artifact", "visual artifact"
        BLUR = "blur", "blur"
        FLICKER = "flicker", "flicker"
        TEXT_ERROR = "text_error", "text error"
        FACTUAL_ERROR = "factual_error", "factual error"
        CONTENT_MISMATCH = "content_mismatch", "content mismatch"
        OTHER = "other", "other"

    class Severity(models.IntegerChoices):
        MINOR = 1, "minor"
        MAJOR = 2, "major"
        CRITICAL = 3, "critical"

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="issues")
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="issues")
    category = models.CharField(max_length=32, choices=Category.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.MINOR)
    start_s = models.FloatField()
    end_s = models.FloatField()
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation_id", "start_s", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(start_s__gte=0) & Q(end_s__gte=F("start_s")),
                name="issue_range_is_ordered",
            ),
            models.CheckConstraint(
                condition=Q(severity__gte=1) & Q(severity__lte=3), name="issue_severity_1_to_3"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} {self.start_s:.2f}-{self.end_s:.2f}s"


class Comparison(models.Model):
    """A blind side-by-side judgement of two generations of the same prompt."""

    class Winner(models.TextChoices):
        LEFT = "left", "left"
        RIGHT = "right", "right"
        TIE = "tie", "tie"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="comparisons"
    )
    left = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="+")
    right = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="+")
    winner = models.CharField(max_length=8, choices=Winner.choices)
    seconds_spent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(left=F("right")), name="compare_two_generations"),
        ]

    def __str__(self) -> str:
        return f"{self.left_id} vs {self.right_id}: {self.winner}"

    @property
    def winning_generation_id(self) -> uuid.UUID | None:
        if self.winner == self.Winner.TIE:
            return None
        return self.left_id if self.winner == self.Winner.LEFT else self.right_id


class ComparisonDimensionWinner(models.Model):
    """An optional per-dimension verdict of a comparison."""

    comparison = models.ForeignKey(
        Comparison, on_delete=models.CASCADE, related_name="dimension_winners"
    )
    dimension = models.ForeignKey(RatingDimension, on_delete=models.PROTECT, related_name="+")
    winner = models.CharField(max_length=8, choices=Comparison.Winner.choices)

    class Meta:
        ordering = ["comparison_id", "dimension_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "dimension"], name="one_verdict_per_dimension"
            )
        ]

    def __str__(self) -> str:
        return f"{self.dimension_id}: {self.winner}"


class ReviewDraft(models.Model):
    """A review in progress, autosaved by the browser so that no work is lost."""

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_drafts"
    )
    generation = models.ForeignKey(
        Generation, on_delete=models.CASCADE, related_name="review_drafts"
    )
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reviewer", "generation"], name="one_draft_per_reviewer_and_generation"
            )
        ]

    def __str__(self) -> str:
        return f"draft of {self.generation_id} by {self.reviewer_id}"


class ReviewerExclusion(models.Model):
    """A reviewer left out of the analysis: who decided, when and why, and its reversal.

    Rows are never deleted: revoking sets revoked_at/revoked_by/revoke_reason, so the history
    of every exclusion stays readable. At most one exclusion per reviewer is in force.
    """

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exclusions"
    )
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoke_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reviewer"],
                condition=Q(revoked_at__isnull=True),
                name="one_exclusion_in_force_per_reviewer",
            ),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | Q(revoked_at__gte=F("created_at")),
                name="exclusion_revoked_after_created",
            ),
        ]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "in force"
        return f"exclusion of reviewer {self.reviewer_id} ({state})"

    @property
    def in_force(self) -> bool:
        return self.revoked_at is None


class FeedbackSubmission(models.Model):
    """Feedback recorded asynchronously: accepted at once, written by a worker, its outcome
    kept here so the caller can look it up (FeedbackIntegration.feedback_status)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RECORDED = "recorded", "recorded"
        FAILED = "failed", "failed"

    class Kind(models.TextChoices):
        REVIEW = "review", "review"
        COMPARISON = "comparison", "comparison"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REVIEW)
    payload = models.JSONField(help_text="the feedback as given, already checked")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    result_id = models.CharField(max_length=64, blank=True, help_text="the review or comparison")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["status", "created_at"], name="submission_status")]

    def __str__(self) -> str:
        return f"{self.kind} submission {self.id} ({self.status})"
