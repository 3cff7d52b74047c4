from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from feedbackloop.errors import DomainError
from improvements import experiments
from improvements.models import (
    ActionReceipt,
    AnalysisRun,
    Experiment,
    ExperimentArm,
    ExperimentDecision,
    ImproverSettings,
)
from pipelines.admin import ConfigRevisionAdmin as BaseConfigRevisionAdmin
from pipelines.models import ConfigRevision
from pipelines.selectors import revision_active
from pipelines.services.revisions import revision_reject, revision_rollback_to

S = ConfigRevision.Status


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "pipeline",
        "created_at",
        "trigger",
        "ratings_seen",
        "new_ratings",
        "skipped_reason",
    )
    list_filter = ("pipeline", "trigger")
    readonly_fields = (
        "pipeline",
        "trigger",
        "ratings_seen",
        "new_ratings",
        "last_rating_id",
        "snapshot",
        "skipped_reason",
        "actor",
        "created_at",
        "proposed",
    )


@admin.register(ImproverSettings)
class ImproverSettingsAdmin(admin.ModelAdmin):
    """Overrides of config/default_config.yaml's improvement criteria; blank = the file's value."""

    list_display = ("__str__", "min_feedback_for_analysis", "alpha", "canary_share", "updated_at")
    exclude = ("updated_by",)

    def has_add_permission(self, request) -> bool:
        return not ImproverSettings.objects.exists()

    def save_model(self, request, obj, form, change) -> None:
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def arm_summary(arm: ExperimentArm) -> str:
    """One line: the arm's state and its latest numbers against the control."""
    result = arm.result
    head = f"{arm.status} vs r{arm.experiment.control.number} ({arm.share:.0%} of traffic)"
    if result.get("estimate") is None:
        return f"{head}: no look yet"
    interval = f"[{_number(result.get('lower'), True)}, {_number(result.get('upper'), True)}]"
    return (
        f"{head}: Δ {_number(result.get('estimate'), True)} {interval}, "
        f"n {result.get('n_candidate', 0)}/{result.get('n_control', 0)}"
    )


admin.site.unregister(ConfigRevision)


@admin.register(ConfigRevision)
class ConfigRevisionAdmin(BaseConfigRevisionAdmin):
    """The changelog: every revision with its diff, rationale, lifecycle and canary result.

    Approving starts a canary (improvements.experiments.experiment_start); "approve and activate
    now" skips it and is kept for set-ups where no reviews can come in (and for the library's
    behaviour). Approve, reject and roll back need generation.approve_configrevision: without
    it the actions are hidden and the buttons' URLs answer 403.
    """

    change_form_template = "admin/pipelines/configrevision/change_form.html"
    list_display = (
        "number",
        "status",
        "source",
        "created_by",
        "created_at",
        "short_rationale",
        "param_diff",
        "experiment_result",
    )
    list_select_related = ("parent", "created_by")
    actions = ["approve_start_canary", "approve_and_activate", "reject", "rollback_to"]
    readonly_fields = (
        *BaseConfigRevisionAdmin.readonly_fields,
        "rollout_share",
        "predicted_impact_pretty",
        "experiment_history",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConfigRevision]:
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch(
                    "arms",
                    queryset=ExperimentArm.objects.select_related("experiment__control").order_by(
                        "-id"
                    ),
                )
            )
        )

    def get_fields(self, request: HttpRequest, obj: Any = None):
        fields = super().get_fields(request, obj)
        if obj is None:
            return fields
        return tuple(f for f in fields if f != "predicted_impact")

    @admin.display(description="experiment result")
    def experiment_result(self, obj: ConfigRevision) -> str:
        latest = next(iter(obj.arms.all()), None)
        return arm_summary(latest) if latest is not None else "—"

    @admin.display(description="predicted impact")
    def predicted_impact_pretty(self, obj: ConfigRevision) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.predicted_impact, indent=2, sort_keys=True)
        )

    @admin.display(description="canary experiments")
    def experiment_history(self, obj: ConfigRevision) -> str:
        found = ExperimentArm.objects.filter(revision=obj).select_related("experiment__control")
        if not found:
            return "none"
        parts = []
        for arm in found.order_by("started_at", "id"):
            rows = format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        d.created_at.strftime("%Y-%m-%d %H:%M"),
                        d.kind,
                        _number(d.estimate, True),
                        f"[{_number(d.lower, True)}, {_number(d.upper, True)}]",
                        f"{d.n_candidate}/{d.n_control}",
                        d.reason,
                    )
                    for d in arm.decisions.all()
                ),
            )
            parts.append(
                format_html(
                    "<div class='experiment'><p><b>{}</b></p><table><thead><tr><th>when</th>"
                    "<th>decision</th><th>estimate</th><th>always-valid interval</th>"
                    "<th>n cand./ctrl.</th><th>reason</th></tr></thead><tbody>{}</tbody>"
                    "</table></div>",
                    arm_summary(arm),
                    rows or mark_safe("<tr><td colspan='6'>no decision yet</td></tr>"),
                )
            )
        return format_html_join("", "{}", ((p,) for p in parts))

    # --- permissions ---------------------------------------------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        if not self._may_approve(request):
            for name in ("approve_start_canary", "approve_and_activate", "reject", "rollback_to"):
                found.pop(name, None)
        return found

    def _refuse_unless_approver(self, request: HttpRequest) -> bool:
        if self._may_approve(request):
            return False
        self.message_user(request, "You may not approve, reject or roll back.", messages.ERROR)
        return True

    def _run(self, request: HttpRequest, revision: ConfigRevision, step: str) -> bool:
        """Apply one step to one revision; report the outcome as an admin message."""
        user = request.user
        try:
            if step == "approve":
                arm = experiments.revision_approve_as_arm(revision=revision, actor=user)
                self.message_user(
                    request,
                    f"r{revision.number} approved: an arm on {arm.share:.0%} of new "
                    f"generations against r{arm.experiment.control.number}.",
                )
            elif step == "reject":
                note = (request.POST.get("note") or "").strip() or "rejected in the admin"
                revision_reject(revision=revision, actor=user, note=note)
                self.message_user(request, f"r{revision.number} rejected.")
            elif step == "rollback":
                made = revision_rollback_to(target=revision, actor=user)
                experiments.experiment_settle(pipeline=revision.pipeline, actor=user)
                if made.pk == revision.pk:
                    self.message_user(request, f"Canary stopped; r{revision.number} stays active.")
                else:
                    self.message_user(
                        request, f"Rolled back to r{revision.number}: r{made.number} is active."
                    )
            return True
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return False

    # --- changelist actions --------------------------------------------------------------------

    @admin.action(description="Approve: run as experiment arms")
    def approve_start_canary(self, request: HttpRequest, queryset: QuerySet) -> None:
        if self._refuse_unless_approver(request):
            return
        for revision in queryset.order_by("number"):
            self._run(request, revision, "approve")

    @admin.action(description="Approve and activate now (skip the experiment)")
    def approve_and_activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        # pipelines.services.revisions refuses this while an experiment runs in the pipeline.
        super().approve_and_activate(request, queryset)

    @admin.action(description="Reject the selected proposals")
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        if self._refuse_unless_approver(request):
            return
        for revision in queryset.order_by("number"):
            self._run(request, revision, "reject")

    @admin.action(description="Roll back to the selected revision (as a new revision)")
    def rollback_to(self, request: HttpRequest, queryset: QuerySet) -> None:
        if self._refuse_unless_approver(request):
            return
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one revision to roll back to.", messages.ERROR
            )
            return
        self._run(request, queryset.get(), "rollback")

    # --- buttons on the revision page ----------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path(
                f"<path:object_id>/{step}/",
                self.admin_site.admin_view(self._step_view(step)),
                name=f"{info[0]}_{info[1]}_{step}",
            )
            for step in ("approve", "reject", "rollback")
        ]
        return custom + super().get_urls()

    def _step_view(self, step: str):
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            if not self._may_approve(request):
                raise PermissionDenied
            revision = get_object_or_404(ConfigRevision, pk=object_id)
            self._run(request, revision, step)
            return HttpResponseRedirect(
                reverse("admin:pipelines_configrevision_change", args=[revision.pk])
            )

        return view

    def revision_buttons(self, request: HttpRequest, revision: ConfigRevision) -> list[dict]:
        if not self._may_approve(request):
            return []
        url = "admin:pipelines_configrevision_{}".format
        buttons = []
        if revision.status in (S.PROPOSED, S.APPROVED):
            buttons.append(
                {
                    "url": reverse(url("approve"), args=[revision.pk]),
                    "label": "Approve: run as an experiment arm",
                    "note": False,
                }
            )
            buttons.append(
                {"url": reverse(url("reject"), args=[revision.pk]), "label": "Reject", "note": True}
            )
        active = revision_active(pipeline=revision.pipeline)
        if revision.status == S.CANARY and active is not None:
            buttons.append(
                {
                    "url": reverse(url("rollback"), args=[active.pk]),
                    "label": f"Stop this canary (keep r{active.number})",
                    "note": False,
                }
            )
        was_active = revision.transitions.filter(to_status=S.ACTIVE).exists()
        canary_running = ConfigRevision.objects.filter(
            pipeline=revision.pipeline, status=S.CANARY
        ).exists()
        if was_active and (revision.status != S.ACTIVE or canary_running):
            label = (
                "Stop the canary (keep this revision)"
                if revision.status == S.ACTIVE
                else "Roll back to this revision"
            )
            buttons.append(
                {"url": reverse(url("rollback"), args=[revision.pk]), "label": label, "note": False}
            )
        return buttons

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        revision = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if revision is not None:
            extra["revision_buttons"] = self.revision_buttons(request, revision)
        # A saved revision is immutable: its page has lifecycle buttons, not Save buttons.
        extra.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        return super().change_view(request, object_id, form_url, extra)


class ExperimentArmInline(admin.TabularInline):
    model = ExperimentArm
    extra = 0
    can_delete = False
    fields = ("revision", "role", "status", "share", "alpha", "reason", "started_at", "decided_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ExperimentDecisionInline(admin.TabularInline):
    model = ExperimentDecision
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "arm",
        "kind",
        "estimate",
        "lower",
        "upper",
        "n_candidate",
        "n_control",
        "reason",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Canaries and every look at them; decisions are made by the evaluation task, not here."""

    list_display = ("__str__", "pipeline", "status", "started_at", "finished_at")
    list_filter = ("pipeline", "status")
    list_select_related = ("pipeline", "control")
    inlines = [ExperimentArmInline, ExperimentDecisionInline]
    readonly_fields = (
        "pipeline",
        "control",
        "status",
        "alpha",
        "min_effect",
        "min_ratings_per_arm",
        "result",
        "started_by",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExperimentArm)
class ExperimentArmAdmin(admin.ModelAdmin):
    """Every arm of every experiment; arms open and close through the experiment services."""

    list_display = ("__str__", "experiment", "role", "status", "share", "started_at", "decided_at")
    list_filter = ("status", "role")
    list_select_related = ("experiment", "revision")
    readonly_fields = [f.name for f in ExperimentArm._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExperimentDecision)
class ExperimentDecisionAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "experiment",
        "kind",
        "estimate",
        "lower",
        "upper",
        "n_candidate",
        "n_control",
    )
    list_filter = ("kind",)
    readonly_fields = [f.name for f in ExperimentDecision._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ActionReceipt)
class ActionReceiptAdmin(admin.ModelAdmin):
    """The first answers of admin actions sent with an Idempotency-Key (read only)."""

    list_display = ("created_at", "action", "target", "status_code", "actor", "key")
    list_filter = ("action",)
    search_fields = ("key", "target")
    readonly_fields = [f.name for f in ActionReceipt._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
