from django.contrib import admin

from reviews.models import (
    Comparison,
    ComparisonDimensionWinner,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
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
