"""Admin: feedback exports as download actions, webhook endpoints, the delivery log."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from feedbackloop.errors import InvalidInput, NotFound
from integrations.exports import FORMATS, KINDS, export_filters
from integrations.exports.http import export_response
from integrations.models import Event, FeedbackExport, WebhookDelivery, WebhookEndpoint
from integrations.webhooks import endpoint_ping


class ExportActionForm(ActionForm):
    """The action bar of the export page: besides the action, the filters of the export."""

    revision = forms.IntegerField(
        required=False, min_value=1, help_text="with one pipeline selected"
    )
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="inclusive",
    )


def _export_action(kind: str, fmt: str):
    def action(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> Any:
        pipelines = tuple(queryset.order_by("slug"))
        given = {key: request.POST.get(key, "").strip() for key in ("revision", "since", "until")}
        if given["revision"] and len(pipelines) != 1:
            modeladmin.message_user(
                request,
                "A revision filter needs exactly one pipeline: revision numbers are per pipeline.",
                messages.ERROR,
            )
            return None
        try:
            filters = export_filters(
                pipeline=pipelines[0].slug if given["revision"] else None, **given
            )
        except (InvalidInput, NotFound) as exc:
            modeladmin.message_user(request, f"Not exported: {exc}", messages.ERROR)
            return None
        label = pipelines[0].slug if len(pipelines) == 1 else "feedback"
        return export_response(
            kind=kind, fmt=fmt, filters=replace(filters, pipelines=pipelines), label=label
        )

    action.__name__ = f"export_{kind}_{fmt}"
    return admin.action(description=f"Download {kind} ({fmt.upper()})", permissions=["view"])(
        action
    )


@admin.register(FeedbackExport)
class FeedbackExportAdmin(admin.ModelAdmin):
    """Select pipelines, optionally a revision and a date range, pick an action: the file
    downloads as it is written (the same filters as `manage.py export_feedback` and
    GET /api/v1/exports/<kind>/)."""

    action_form = ExportActionForm
    list_display = ("slug", "name", "generation_count", "review_count", "comparison_count")
    actions = [_export_action(kind, fmt) for kind in KINDS for fmt in FORMATS]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                generations_n=Count("revisions__generations", distinct=True),
                reviews_n=Count("revisions__generations__reviews", distinct=True),
            )
        )

    @admin.display(description="generations", ordering="generations_n")
    def generation_count(self, obj: Any) -> int:
        return obj.generations_n

    @admin.display(description="reviews", ordering="reviews_n")
    def review_count(self, obj: Any) -> int:
        return obj.reviews_n

    @admin.display(description="comparisons")
    def comparison_count(self, obj: Any) -> int:
        from reviews.models import Comparison

        return Comparison.objects.filter(
            Q(left__revision__pipeline=obj) | Q(right__revision__pipeline=obj)
        ).count()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=Event.choices, widget=forms.CheckboxSelectMultiple, required=True
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("name", "url", "events", "slack", "active", "secret")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("name", "url", "event_list", "slack", "active", "failed_deliveries")
    list_filter = ("active", "slack")
    search_fields = ("name", "url")
    actions = ["send_test_delivery"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(failed_n=Count("deliveries", filter=Q(deliveries__status="failed")))
        )

    @admin.display(description="events")
    def event_list(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.events or [])

    @admin.display(description="failed deliveries", ordering="failed_n")
    def failed_deliveries(self, obj: WebhookEndpoint) -> int:
        return obj.failed_n

    @admin.action(description="Send a test delivery (event “ping”)", permissions=["change"])
    def send_test_delivery(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset:
            endpoint_ping(endpoint=endpoint)
        messages.info(
            request,
            f"{queryset.count()} test deliveries queued; their outcome is in the delivery log.",
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log, read-only: what was sent where, every attempt and its answer."""

    list_display = (
        "created_at",
        "event",
        "endpoint",
        "status",
        "attempts",
        "response_status",
        "short_error",
        "delivered_at",
    )
    list_filter = ("status", "event", "endpoint")
    search_fields = ("id", "event_id", "last_error")
    date_hierarchy = "created_at"
    list_select_related = ("endpoint",)
    fields = (
        "id",
        "event",
        "event_id",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "dispatched_at",
        "delivered_at",
        "response_status",
        "last_error",
        "history_pretty",
        "payload_pretty",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="last error")
    def short_error(self, obj: WebhookDelivery) -> str:
        return obj.last_error[:80]

    @admin.display(description="attempts")
    def history_pretty(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.history, indent=2))

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
