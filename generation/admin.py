from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from feedbackloop.errors import DomainError
from generation import selectors
from generation.models import Generation, MetricsRun, MetricValue, WorkerToken
from generation.services.requests import generation_request, validate_prompt
from generation.services.tokens import worker_token_create, worker_token_revoke
from pipelines.models import Pipeline
from pipelines.selectors import revision_active


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

    pipeline = forms.ModelChoiceField(queryset=Pipeline.objects.order_by("slug"))

    class Meta:
        model = Generation
        fields = ("prompt", "backend")

    def clean_prompt(self) -> str:
        try:
            return validate_prompt(self.cleaned_data.get("prompt"))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        pipeline = data.get("pipeline")
        if pipeline is not None and revision_active(pipeline=pipeline) is None:
            raise forms.ValidationError(f"pipeline {pipeline.slug} has no active revision")
        return data


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
        "watch",
    )
    list_filter = ("status", "backend", "revision__pipeline")
    search_fields = ("prompt", "id")
    list_select_related = ("revision__pipeline", "claimed_by")
    inlines = [MetricInline]
    # The files show as "Watch": the staff page plays the video with its reviews.
    readonly_fields = [
        "watch",
        *(f.name for f in Generation._meta.fields if f.name not in ("video", "poster")),
        "resources",
    ]

    @admin.display(description="prompt")
    def short_prompt(self, obj: Generation) -> str:
        return obj.prompt[:60]

    @admin.display(description="video")
    def watch(self, obj: Generation) -> str:
        if not obj.pk:
            return "—"
        url = reverse("improvements:generation", args=[obj.pk])
        label = "Watch, with its reviews" if obj.video else "Staff page"
        return format_html('<a href="{}">{}</a>', url, label)

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
            return ("pipeline", "prompt", "backend")
        return self.readonly_fields  # nothing to edit; the files show as "Watch"

    def get_inlines(self, request: HttpRequest, obj: Any = None):
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Generation, form: Any, change: bool) -> None:
        if change:
            return  # generations are changed by their workflow, not by hand
        created, _ = generation_request(
            pipeline=form.cleaned_data["pipeline"],
            prompt=form.cleaned_data["prompt"],
            backend=form.cleaned_data["backend"],
            requested_by=request.user,
        )
        obj.pk = created.pk
        obj.refresh_from_db()


class WorkerTokenAddForm(forms.ModelForm):
    pipelines = forms.CharField(
        initial="builtin",
        help_text="comma-separated pipeline slugs or patterns this worker may serve and "
        "register, e.g. diffusers-* ('*' for all)",
    )

    class Meta:
        model = WorkerToken
        fields = ("name",)

    def clean_pipelines(self) -> list[str]:
        return [p.strip() for p in self.cleaned_data["pipelines"].split(",") if p.strip()]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if selectors.worker_token_live_exists(name=name):
            raise forms.ValidationError("this worker already has a live token; revoke it first")
        return name


@admin.register(WorkerToken)
class WorkerTokenAdmin(admin.ModelAdmin):
    """Tokens of remote workers. The key is shown once, in the message after adding one."""

    form = WorkerTokenAddForm

    list_display = (
        "name",
        "pipelines",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked",
    )
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    actions = ["revoke"]
    readonly_fields = (
        "name",
        "pipelines",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked",
        "revoked_at",
    )

    def get_fields(self, request: HttpRequest, obj: Any = None):
        return ("name", "pipelines") if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: WorkerToken, form: Any, change: bool) -> None:
        if change:
            return
        try:
            token, key = worker_token_create(
                name=form.cleaned_data["name"],
                pipelines=form.cleaned_data["pipelines"],
                created_by=request.user,
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
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
            worker_token_revoke(token=token)
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
