from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from feedbackloop.errors import DomainError
from generation import selectors, services
from generation.models import (
    ConfigRevision,
    Generation,
    MetricsRun,
    MetricValue,
    RevisionTransition,
    WorkerToken,
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
    list_display = (
        "number",
        "status",
        "source",
        "created_at",
        "created_by",
        "param_diff",
        "short_rationale",
    )
    list_filter = ("status", "source", "model_variant")
    search_fields = ("rationale",)
    inlines = [TransitionInline]
    actions = ["approve_and_activate", "reject"]
    readonly_fields = (
        "number",
        "status",
        "source",
        "parent",
        "params_pretty",
        "param_diff",
        "model_variant",
        "rationale",
        "evidence_pretty",
        "predicted_impact",
        "created_by",
        "created_at",
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

    def save_model(
        self, request: HttpRequest, obj: ConfigRevision, form: Any, change: bool
    ) -> None:
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
                    revision=revision,
                    to_status=ConfigRevision.Status.REJECTED,
                    actor=request.user,
                    note="rejected in the admin",
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


class GenerationQueueForm(forms.ModelForm):
    """Queue a generation: rendered on the server (builtin) or a job for remote workers."""

    backend = forms.ChoiceField(
        choices=[("remote", "remote: a job for API workers"), ("builtin", "builtin renderer")],
        initial="remote",
    )

    class Meta:
        model = Generation
        fields = ("prompt", "backend")

    def clean_prompt(self) -> str:
        try:
            return services.validate_prompt(self.cleaned_data.get("prompt"))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean(self) -> dict[str, Any]:
        if selectors.revision_active() is None:
            raise forms.ValidationError("there is no active configuration revision")
        return super().clean()


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "short_prompt",
        "status",
        "revision",
        "backend",
        "claimed_by",
        "lease_expires_at",
        "attempts",
        "duration_s",
        "generation_seconds",
        "created_at",
    )
    list_filter = ("status", "backend", "revision")
    search_fields = ("prompt", "id")
    list_select_related = ("revision", "claimed_by")
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
        cpu = obj.cpu_seconds or 0
        return f"{obj.generation_seconds:.2f} s wall, {cpu:.2f} s CPU, {rss:.0f} MiB peak RSS"

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        if obj is None:
            kwargs["form"] = GenerationQueueForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None):
        if obj is None:
            return ("prompt", "backend")
        return super().get_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Any = None):
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Generation, form: Any, change: bool) -> None:
        if change:
            return  # generations are changed by their workflow, not by hand
        created, _ = services.generation_request(
            prompt=form.cleaned_data["prompt"],
            backend=form.cleaned_data["backend"],
            requested_by=request.user,
        )
        obj.pk = created.pk
        obj.refresh_from_db()


class WorkerTokenAddForm(forms.ModelForm):
    class Meta:
        model = WorkerToken
        fields = ("name",)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if selectors.worker_token_live_exists(name=name):
            raise forms.ValidationError("this worker already has a live token; revoke it first")
        return name


@admin.register(WorkerToken)
class WorkerTokenAdmin(admin.ModelAdmin):
    """Tokens of remote workers. The key is shown once, in the message after adding one."""

    form = WorkerTokenAddForm

    list_display = ("name", "prefix", "created_by", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    actions = ["revoke"]
    readonly_fields = (
        "name",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked",
        "revoked_at",
    )

    def get_fields(self, request: HttpRequest, obj: Any = None):
        return ("name",) if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: WorkerToken, form: Any, change: bool) -> None:
        if change:
            return
        token, key = services.worker_token_create(
            name=form.cleaned_data["name"], created_by=request.user
        )
        obj.pk = token.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            format_html(
                "Token for {}: <code>{}</code> — copy it now; it is not stored and will not be "
                "shown again.",
                token.name,
                key,
            ),
            messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: jobs keep pointing at the token that claimed them

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for token in queryset.filter(revoked=False):
            services.worker_token_revoke(token=token)
            self.message_user(request, f"{token.name}: revoked.")


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


@admin.register(RevisionTransition)
class RevisionTransitionAdmin(admin.ModelAdmin):
    """The lifecycle log across all revisions; history is never edited."""

    list_display = ("created_at", "revision", "from_status", "to_status", "actor", "note")
    list_filter = ("to_status",)
    list_select_related = ("revision", "actor")
    readonly_fields = ("revision", "from_status", "to_status", "actor", "note", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
