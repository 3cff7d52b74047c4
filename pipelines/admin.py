"""The admin of pipelines, their schema versions, and configuration revisions (read-only
history: revisions are immutable; their lifecycle moves through pipelines.services.revisions)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from feedbackloop.errors import DomainError
from pipelines.declarations import InvalidParams, params_check
from pipelines.models import (
    APPROVE_PERMISSION,
    ConfigRevision,
    Pipeline,
    RevisionTransition,
    SchemaVersion,
)
from pipelines.selectors import schema_current
from pipelines.services.registration import pipeline_register
from pipelines.services.revisions import (
    revision_approve_and_activate,
    revision_create,
    revision_reject,
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
        help_text="JSON object; keys left out take the parent's value (or the declared default)."
    )

    class Meta:
        model = ConfigRevision
        fields = ("pipeline", "parent", "params", "rationale")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        parent, pipeline = data.get("parent"), data.get("pipeline")
        if parent is not None and pipeline is not None and parent.pipeline_id != pipeline.pk:
            raise forms.ValidationError("the parent must be a revision of the same pipeline")
        params = data.get("params")
        if pipeline is not None and params is not None:
            # Checked here so a bad key is a form error, not a 500 from save_model.
            base = dict(parent.params) if parent is not None else {}
            try:
                params_check(schema_current(pipeline=pipeline).parameters, {**base, **params})
            except (InvalidParams, DomainError) as exc:
                details = getattr(exc, "details", None) or {}
                self.add_error(
                    "params",
                    [f"{k}: {' '.join(v)}" for k, v in details.items()] or [exc.message],
                )
        return data


@admin.register(ConfigRevision)
class ConfigRevisionAdmin(admin.ModelAdmin):
    list_display = (
        "pipeline",
        "number",
        "status",
        "source",
        "created_at",
        "created_by",
        "param_diff",
        "short_rationale",
    )
    list_filter = ("pipeline", "status", "source")
    search_fields = ("rationale",)
    inlines = [TransitionInline]
    actions = ["approve_and_activate", "reject"]
    readonly_fields = (
        "pipeline",
        "schema_version",
        "number",
        "status",
        "source",
        "parent",
        "params_pretty",
        "param_diff",
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
            return ("pipeline", "parent", "params", "rationale")
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
        created = revision_create(
            pipeline=form.cleaned_data["pipeline"],
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
        return request.user.has_perm(APPROVE_PERMISSION)

    @admin.action(description="Approve and activate the selected proposals")
    def approve_and_activate(self, request: HttpRequest, queryset: Any) -> None:
        if not self._may_approve(request):
            self.message_user(request, "You may not approve revisions.", messages.ERROR)
            return
        for revision in queryset.order_by("number"):
            try:
                revision_approve_and_activate(
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
                revision_reject(revision=revision, actor=request.user, note="rejected in the admin")
                self.message_user(request, f"r{revision.number} rejected.")
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)


class SchemaVersionInline(admin.TabularInline):
    model = SchemaVersion
    extra = 0
    can_delete = False
    fields = ("number", "created_at", "created_by", "parameter_names")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="parameters")
    def parameter_names(self, obj: SchemaVersion) -> str:
        return ", ".join(obj.parameters.get("properties", {}))


class PipelineForm(forms.ModelForm):
    parameters = forms.JSONField(
        help_text="the parameter declaration: a JSON Schema object schema whose properties carry "
        "type, bounds, default, description and x-tunable / x-scale / x-step / x-affects / "
        "x-cost (docs/pipelines.md). A changed declaration makes a new schema version."
    )

    class Meta:
        model = Pipeline
        fields = ("slug", "name", "description", "parameters")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["slug"].disabled = True
            version = self.instance.versions.order_by("-number").first()
            if version is not None:
                self.initial["parameters"] = version.parameters

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            self.registration = pipeline_register(
                slug=data["slug"] if not self.instance.pk else self.instance.slug,
                name=data["name"],
                description=data.get("description", ""),
                parameters=data["parameters"],
                renderer=self.instance.renderer if self.instance.pk else "",
                registered_by=f"user:{self.user.get_username()}",
            )
        except DomainError as exc:
            details = getattr(exc, "details", None) or {}
            raise forms.ValidationError(
                [exc.message, *(f"{k}: {' '.join(v)}" for k, v in details.items())]
            ) from exc
        return data

    def validate_unique(self) -> None:
        # clean() has registered the pipeline (pipeline_register decides what is new), so the
        # model's own "slug already exists" check would refuse every new pipeline.
        return


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    """Pipelines: create one (its declaration makes schema v1 and an active revision 1), see
    its schema versions and revisions. Changing the declaration makes a new version."""

    form = PipelineForm
    list_display = ("slug", "name", "runs_on", "schema_version", "active_revision", "updated_at")
    search_fields = ("slug", "name")
    readonly_fields = ("renderer", "registered_by", "created_at", "updated_at", "revisions_link")
    inlines = [SchemaVersionInline]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        form = super().get_form(request, obj, **kwargs)
        form.user = request.user
        return form

    def save_model(self, request: HttpRequest, obj: Pipeline, form: Any, change: bool) -> None:
        obj.pk = form.registration.pipeline.pk  # pipeline_register wrote it
        obj.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revisions and generations point at it

    @admin.display(description="runs on")
    def runs_on(self, obj: Pipeline) -> str:
        return "server" if obj.renderer else "remote workers"

    @admin.display(description="schema")
    def schema_version(self, obj: Pipeline) -> str:
        version = obj.versions.order_by("-number").first()
        return f"v{version.number}" if version else "—"

    @admin.display(description="active")
    def active_revision(self, obj: Pipeline) -> str:
        active = obj.revisions.filter(status=ConfigRevision.Status.ACTIVE).first()
        return f"r{active.number}" if active else "—"

    @admin.display(description="revisions")
    def revisions_link(self, obj: Pipeline) -> str:
        from django.urls import reverse

        url = (
            reverse("admin:pipelines_configrevision_changelist") + f"?pipeline__id__exact={obj.pk}"
        )
        return format_html('<a href="{}">{} revisions</a>', url, obj.revisions.count())


@admin.register(SchemaVersion)
class SchemaVersionAdmin(admin.ModelAdmin):
    """Every declared version of every pipeline's parameters; versions are never edited."""

    list_display = ("__str__", "pipeline", "number", "created_by", "created_at")
    list_filter = ("pipeline",)
    list_select_related = ("pipeline",)
    readonly_fields = (
        "pipeline",
        "number",
        "parameters_pretty",
        "digest",
        "created_by",
        "created_at",
    )
    fields = readonly_fields

    @admin.display(description="parameters")
    def parameters_pretty(self, obj: SchemaVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.parameters, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
