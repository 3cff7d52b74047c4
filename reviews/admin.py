from django.contrib import admin

from reviews.models import (
    Comparison,
    ComparisonDimensionWinner,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
    ReviewDraft,
)


@admin.register(RatingDimension)
class RatingDimensionAdmin(admin.ModelAdmin):
    list_display = ("slug", "label", "active", "order")
    list_editable = ("active", "order")


class RatingInline(admin.TabularInline):
    model = Rating
    extra = 0


class IssueInline(admin.TabularInline):
    model = IssueReport
    extra = 0
    fk_name = "review"


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("generation", "reviewer", "created_at")
    list_select_related = ("generation", "reviewer")
    search_fields = ("comments",)
    inlines = [RatingInline, IssueInline]


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("review", "dimension", "value")
    list_filter = ("dimension", "value")


@admin.register(IssueReport)
class IssueReportAdmin(admin.ModelAdmin):
    list_display = ("generation", "category", "severity", "start_s", "end_s")
    list_filter = ("category", "severity")


class DimensionWinnerInline(admin.TabularInline):
    model = ComparisonDimensionWinner
    extra = 0


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ("left", "right", "winner", "reviewer", "created_at")
    list_filter = ("winner",)
    inlines = [DimensionWinnerInline]


@admin.register(ReviewDraft)
class ReviewDraftAdmin(admin.ModelAdmin):
    """Drafts are the browser's autosave; staff may look, nobody edits them here."""

    list_display = ("generation", "reviewer", "updated_at")
    list_select_related = ("generation", "reviewer")
    readonly_fields = ("reviewer", "generation", "data", "created_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ComparisonDimensionWinner)
class ComparisonDimensionWinnerAdmin(admin.ModelAdmin):
    list_display = ("comparison", "dimension", "winner")
    list_filter = ("dimension", "winner")
