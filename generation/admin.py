from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from feedbackloop.errors import DomainError
from generation import services
from generation.models import (
    ConfigRevision,
    Generation,
    MetricsRun,
    MetricValue,
    RevisionTransition,
)


def render_diff(diff: dict[str, tuple[Any, Any]]) -> str:
    if not diff:
        return "—"
    return format_html_join(
        "", "<div><code>{}</code>: {} → <b>{}</b></div>", ((k, a, b) for k, (a, b) in diff.items())
    )


class TransitionInline(admin.TabularInline):
    model = RevisionTransition
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "actor", "note")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RevisionAddForm(forms.ModelForm):
    params = forms.JSONField(
        help_text="JSON object; keys left out take the parent's value (or the renderer default)."
    )

    class Meta:
        model = ConfigRevision
        fields = ("parent", "params", "rationale")


@admin.register(ConfigRevision)
class ConfigRevisionAdmin(admin.ModelAdmin):
    list_display = ("number", "status", "source", "created_at", "created_by", "param_diff", "short_rationale")
    list_filter = ("status", "source", "model_variant")
    search_fields = ("rationale",)
    inlines = [TransitionInline]
    actions = ["approve_and_activate", "reject"]
    readonly_fields = (
        "number", "status", "source", "parent", "params_pretty", "param_diff", "model_variant",
        "rationale", "evidence_pretty", "predicted_impact", "created_by", "created_at",
    )

    @admin.display(description="changes vs parent")
    def param_diff(self, obj: ConfigRevision) -> str:
        return render_diff(obj.diff_from_parent()) if obj.parent_id else "initial"

    @admin.display(description="rationale")
    def short_rationale(self, obj: ConfigRevision) -> str:
        return (obj.rationale[:120] + "…") if len(obj.rationale) > 120 else obj.rationale

    @admin.display(description="params")
    def params_pretty(self, obj: ConfigRevision) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.params, indent=2, sort_keys=True))

    @admin.display(description="evidence")
    def evidence_pretty(self, obj: ConfigRevision) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.evidence, indent=2, sort_keys=True))

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        if obj is None:
            kwargs["form"] = RevisionAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None):
        if obj is None:
            return ("parent", "params", "rationale")
        return self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Any = None):
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: ConfigRevision, form: Any, change: bool) -> None:
        if change:
            return  # revisions are immutable; the form shows them read-only
        parent = form.cleaned_data.get("parent")
        base = dict(parent.params) if parent else {}
        created = services.revision_create(
            params={**base, **form.cleaned_data["params"]},
            parent=parent,
            rationale=form.cleaned_data.get("rationale", ""),
            created_by=request.user,
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _may_approve(self, request: HttpRequest) -> bool:
        return request.user.has_perm("generation.approve_configrevision")

    @admin.action(description="Approve and activate the selected proposals")
    def approve_and_activate(self, request: HttpRequest, queryset: Any) -> None:
        if not self._may_approve(request):
            self.message_user(request, "You may not approve revisions.", messages.ERROR)
            return
        for revision in queryset.order_by("number"):
            try:
                services.revision_approve_and_activate(
                    revision=revision, actor=request.user, note="approved in the admin"
                )
                self.message_user(request, f"r{revision.number} is now active.")
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    @admin.action(description="Reject the selected proposals")
    def reject(self, request: HttpRequest, queryset: Any) -> None:
        if not self._may_approve(request):
            self.message_user(request, "You may not reject revisions.", messages.ERROR)
            return
        for revision in queryset:
            try:
                services.revision_transition(
                    revision=revision, to_status=ConfigRevision.Status.REJECTED,
                    actor=request.user, note="rejected in the admin",
                )
                self.message_user(request, f"r{revision.number} rejected.")
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)


class MetricInline(admin.TabularInline):
    model = MetricValue
    extra = 0
    can_delete = False
    fields = ("name", "value", "version", "source")
    readonly_fields = fields


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("id", "short_prompt", "status", "revision", "backend", "duration_s",
                    "generation_seconds", "created_at")
    list_filter = ("status", "backend", "revision")
    search_fields = ("prompt", "id")
    list_select_related = ("revision",)
    inlines = [MetricInline]
    readonly_fields = [f.name for f in Generation._meta.fields] + ["resources"]

    @admin.display(description="prompt")
    def short_prompt(self, obj: Generation) -> str:
        return obj.prompt[:60]

    @admin.display(description="resources")
    def resources(self, obj: Generation) -> str:
        if obj.generation_seconds is None:
            return "—"
        rss = (obj.peak_rss_bytes or 0) / 2**20
        return f"{obj.generation_seconds:.2f} s wall, {obj.cpu_seconds or 0:.2f} s CPU, {rss:.0f} MiB peak RSS"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(MetricsRun)
class MetricsRunAdmin(admin.ModelAdmin):
    list_display = ("generation", "version", "status", "error", "compute_seconds", "created_at")
    list_filter = ("status", "version")
    readonly_fields = [f.name for f in MetricsRun._meta.fields]


@admin.register(MetricValue)
class MetricValueAdmin(admin.ModelAdmin):
    list_display = ("generation", "name", "value", "version", "source")
    list_filter = ("name", "source", "version")
    readonly_fields = [f.name for f in MetricValue._meta.fields]
