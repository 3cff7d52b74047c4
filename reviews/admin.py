"""Human feedback in the admin: read-only, because reviews are evidence.

Nobody edits a reviewer's ratings, issues or verdicts here (not even a superuser); a review
that should not count is handled by excluding its reviewer on the Reviewers page, which is
recorded and reversible. Every review links to the generation's staff page, where the video
plays with every reviewer's issue markers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from reviews.models import (
    Comparison,
    ComparisonDimensionWinner,
    FeedbackSubmission,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
    ReviewDraft,
    ReviewerExclusion,
)


def watch_link(generation_id: Any, text: str = "Watch") -> str:
    url = reverse("improvements:generation", args=[generation_id])
    return format_html('<a href="{}">{}</a>', url, text)


class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: no add, change or delete for anyone."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RatingDimension)
class RatingDimensionAdmin(admin.ModelAdmin):
    list_display = ("slug", "label", "active", "order")
    list_editable = ("active", "order")


class RatingInline(ReadOnlyInline):
    model = Rating
    fields = ("dimension", "value")
    readonly_fields = fields


class IssueInline(ReadOnlyInline):
    model = IssueReport
    fk_name = "review"
    fields = ("category", "severity", "start_s", "end_s", "note")
    readonly_fields = fields


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "reviewer", "created_at", "seconds_spent", "watch")
    list_select_related = ("generation", "reviewer")
    list_filter = ("created_at",)
    search_fields = ("comments", "reviewer__username", "generation__prompt")
    fields = ("reviewer", "generation_page", "comments", "seconds_spent", "created_at")
    readonly_fields = fields
    inlines = [RatingInline, IssueInline]

    @admin.display(description="video")
    def watch(self, obj: Review) -> str:
        return watch_link(obj.generation_id)

    @admin.display(description="generation")
    def generation_page(self, obj: Review) -> str:
        return watch_link(obj.generation_id, obj.generation.prompt[:120])


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ("review", "dimension", "value")
    list_filter = ("dimension", "value")
    list_select_related = ("review__generation", "review__reviewer", "dimension")


@admin.register(IssueReport)
class IssueReportAdmin(ReadOnlyAdmin):
    list_display = ("category", "severity", "start_s", "end_s", "review", "watch")
    list_filter = ("category", "severity")
    list_select_related = ("review__generation", "review__reviewer")

    @admin.display(description="video")
    def watch(self, obj: IssueReport) -> str:
        return watch_link(obj.generation_id)


class DimensionWinnerInline(ReadOnlyInline):
    model = ComparisonDimensionWinner
    fields = ("dimension", "winner")
    readonly_fields = fields


@admin.register(Comparison)
class ComparisonAdmin(ReadOnlyAdmin):
    list_display = ("left", "right", "winner", "reviewer", "created_at")
    list_filter = ("winner",)
    list_select_related = ("left", "right", "reviewer")
    inlines = [DimensionWinnerInline]


@admin.register(ReviewDraft)
class ReviewDraftAdmin(admin.ModelAdmin):
    """Drafts are the browser's autosave; staff may look (or delete one), nobody edits them."""

    list_display = ("generation", "reviewer", "updated_at")
    list_select_related = ("generation", "reviewer")
    readonly_fields = ("reviewer", "generation", "data", "created_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ComparisonDimensionWinner)
class ComparisonDimensionWinnerAdmin(ReadOnlyAdmin):
    list_display = ("comparison", "dimension", "winner")
    list_filter = ("dimension", "winner")


@admin.register(ReviewerExclusion)
class ReviewerExclusionAdmin(ReadOnlyAdmin):
    """The record of exclusions; they are made and revoked on the Reviewers page."""

    list_display = ("reviewer", "created_at", "created_by", "reason", "revoked_at", "revoked_by")
    list_filter = ("revoked_at",)
    list_select_related = ("reviewer", "created_by", "revoked_by")
    search_fields = ("reviewer__username", "reason", "revoke_reason")


@admin.register(FeedbackSubmission)
class FeedbackSubmissionAdmin(ReadOnlyAdmin):
    """Feedback accepted for asynchronous recording, and how each ended."""

    list_display = ("id", "kind", "status", "result_id", "created_at", "updated_at")
    list_filter = ("kind", "status")
    readonly_fields = ("id", "kind", "payload", "status", "error", "result_id", "created_at")
