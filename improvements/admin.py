from django.contrib import admin

from improvements.models import AnalysisRun


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "trigger", "ratings_seen", "new_ratings", "skipped_reason")
    list_filter = ("trigger",)
    readonly_fields = ("trigger", "ratings_seen", "new_ratings", "last_rating_id", "snapshot",
                       "skipped_reason", "actor", "created_at", "proposed")
