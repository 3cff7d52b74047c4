"""Staff pages for the improver's proposals: the list (approve a batch of arms at once) and one
proposal with its rationale, diff, evidence, predicted impact, the pipeline's experiments, and
sample videos of the parent and the proposal played side by side in sync.

Reading needs staff; approving and rejecting need pipelines.approve_configrevision.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from feedbackloop.errors import DomainError, NotFound
from generation.views import staff_required
from improvements import charts, experiments
from improvements.models import ExperimentArm
from improvements.samples import samples_of, samples_request
from improvements.services import pending_proposals
from improvements.views import experiment_panel
from pipelines.models import APPROVE_PERMISSION, ConfigRevision
from pipelines.selectors import pipeline_list, pipeline_or_default, revision_get, schema_current
from pipelines.services.revisions import revision_reject

PLAYBACK_RATES = ["0.25", "0.5", "1", "1.5", "2"]


def _pipeline(request: HttpRequest, slug: str | None):
    try:
        return pipeline_or_default(slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _may_approve(request: HttpRequest) -> bool:
    return request.user.has_perm(APPROVE_PERMISSION)


def _interval_text(impact: dict[str, Any]) -> str:
    if not impact or impact.get("estimate") is None:
        return "—"
    level = impact.get("level")
    level_text = f" ({level:.0%})" if isinstance(level, (int, float)) else ""
    low, high = impact.get("low", 0), impact.get("high", 0)
    return f"{impact['estimate']:+.2f} [{low:+.2f}, {high:+.2f}]{level_text}"


def _proposal_row(revision: ConfigRevision) -> dict[str, Any]:
    arm = (revision.evidence or {}).get("arm") or {}
    return {
        "revision": revision,
        "role": arm.get("role", "challenger"),
        "changes": revision.diff_from_parent(),
        "impact": _interval_text(revision.predicted_impact),
        "rationale": revision.rationale,
    }


@require_GET
@staff_required
def proposal_list(request: HttpRequest) -> HttpResponse:
    """The pipeline's proposals waiting for a decision, to approve as a batch."""
    pipeline = _pipeline(request, request.GET.get("pipeline"))
    rows = [_proposal_row(r) for r in pending_proposals(pipeline=pipeline)]
    recent = (
        ConfigRevision.objects.filter(pipeline=pipeline, source=ConfigRevision.Source.IMPROVER)
        .exclude(status=ConfigRevision.Status.PROPOSED)
        .select_related("parent")
        .order_by("-number")[:20]
    )
    return render(
        request,
        "improvements/proposals.html",
        {
            "pipeline": pipeline,
            "pipelines": pipeline_list(),
            "rows": rows,
            "recent": recent,
            "may_approve": _may_approve(request),
        },
    )


@require_POST
@staff_required
def proposals_approve(request: HttpRequest) -> HttpResponse:
    """Approve the ticked proposals: each opens as an arm of the pipeline's experiment."""
    if not _may_approve(request):
        raise PermissionDenied("approving needs the approve permission")
    pipeline = _pipeline(request, request.POST.get("pipeline"))
    numbers = [n for n in request.POST.getlist("revision") if n.isdigit()]
    back = f"{reverse('improvements:proposals')}?pipeline={pipeline.slug}"
    if not numbers:
        messages.error(request, "Tick at least one proposal to approve.")
        return redirect(back)
    try:
        revisions = [revision_get(pipeline=pipeline, number=n) for n in numbers]
    except NotFound as exc:
        messages.error(request, exc.message)
        return redirect(back)
    opened, refused = experiments.revisions_approve_as_arms(revisions=revisions, actor=request.user)
    if opened:
        listed = ", ".join(f"r{a.revision.number}" for a in opened)
        messages.success(request, f"Approved {listed}: each runs as an experiment arm.")
    for number, why in refused.items():
        messages.error(request, f"r{number} was not approved: {why}")
    return redirect(back)


def _evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """The evidence as (what, value) rows: nested keys joined, numbers rounded, the rest as
    compact JSON — readable without knowing the improver's internals."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value and len(rows) < 200:
            for key, sub in value.items():
                walk(f"{prefix} › {key}" if prefix else str(key), sub)
            return
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (str, int)) or value is None:
            text = "—" if value is None else str(value)
        else:
            text = json.dumps(value, default=str)[:400]
        rows.append((prefix.replace("_", " "), text))

    walk("", {k: v for k, v in (evidence or {}).items() if k not in ("arm", "changes")})
    return rows


def _diff_rows(revision: ConfigRevision) -> list[dict[str, Any]]:
    properties = revision.schema_version.parameters.get("properties", {})
    rows = []
    for key, (old, new) in revision.diff_from_parent().items():
        spec = properties.get(key, {})
        rows.append(
            {
                "key": key,
                "description": spec.get("description", ""),
                "parent": old,
                "proposal": new,
                "affects": ", ".join(f"{k} {v}" for k, v in spec.get("x-affects", {}).items()),
            }
        )
    return rows


def _sample_players(revision: ConfigRevision) -> list[dict[str, Any]]:
    players = []
    for index, pair in enumerate(samples_of(revision=revision)):
        entry: dict[str, Any] = {"prompt": pair.prompt, "ready": pair.ready, "index": index}
        entry["states"] = [
            (label, g.get_status_display() if g else "not requested")
            for label, g in (("parent", pair.parent), ("proposal", pair.candidate))
        ]
        if pair.ready:
            videos = []
            for label, g in (
                (f"Parent r{revision.parent.number}", pair.parent),
                (f"Proposal r{revision.number}", pair.candidate),
            ):
                videos.append(
                    {
                        "src": reverse("generation:video", args=[g.id]),
                        "poster": reverse("generation:poster", args=[g.id]) if g.poster else None,
                        "label": label,
                        "width": g.width,
                        "height": g.height,
                    }
                )
            entry.update(
                videos=videos,
                fps=pair.candidate.fps or 25,
                duration=max(pair.parent.duration_s or 0, pair.candidate.duration_s or 0),
            )
        players.append(entry)
    return players


def _arm_history(revision: ConfigRevision) -> list[charts.Chart]:
    found = []
    for arm in ExperimentArm.objects.filter(revision=revision).select_related(
        "experiment__control"
    ):
        looks = [
            (d.n_candidate + d.n_control, d.estimate, d.lower, d.upper, d.kind)
            for d in arm.decisions.order_by("created_at", "id")
        ]
        found.append(
            charts.experiment_chart(
                looks,
                min_effect=arm.experiment.min_effect,
                title=f"r{revision.number} against control r{arm.experiment.control.number}: "
                f"{arm.get_status_display()}",
            )
        )
    return found


@require_http_methods(["GET", "POST"])
@staff_required
def proposal_detail(request: HttpRequest, slug: str, number: str) -> HttpResponse:
    pipeline = _pipeline(request, slug)
    try:
        revision = revision_get(pipeline=pipeline, number=number)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if request.method == "POST":
        return _decide(request, revision)
    impact = revision.predicted_impact or {}
    impact_chart = charts.interval_chart(
        [
            (
                f"r{revision.number}",
                impact.get("estimate"),
                impact.get("low"),
                impact.get("high"),
                impact.get("basis", "the improver's model"),
            )
        ]
        if impact.get("estimate") is not None
        else [],
        title="Predicted impact on the objective",
        description="the model's estimate of the change in mean rating, with its interval",
        axis_label="change in mean rating against the parent (rating points)",
        columns=("revision", "estimate", "low", "high", "basis"),
    )
    experiment, experiment_chart = experiment_panel(
        experiments.experiment_current(pipeline=pipeline)
    )
    samples = _sample_players(revision)
    ready = [sample for sample in samples if sample["ready"]]
    wanted = request.GET.get("sample", "")
    shown = next((x for x in ready if str(x["index"]) == wanted), ready[0] if ready else None)
    context = {
        "pipeline": pipeline,
        "revision": revision,
        "role": ((revision.evidence or {}).get("arm") or {}).get("role", "challenger"),
        "diff": _diff_rows(revision),
        "evidence": _evidence_rows(revision.evidence),
        "impact_text": _interval_text(impact),
        "charts": [impact_chart, experiment_chart, *_arm_history(revision)],
        "experiment": experiment,
        "samples": samples,
        "shown": shown,
        "samples_requested": any(
            state[1] != "not requested" for sample in samples for state in sample["states"]
        ),
        "rates": PLAYBACK_RATES,
        "may_approve": _may_approve(request),
        "schema_version": schema_current(pipeline=pipeline).number,
        "decidable": revision.status
        in (ConfigRevision.Status.PROPOSED, ConfigRevision.Status.APPROVED),
    }
    return render(request, "improvements/proposal.html", context)


def _decide(request: HttpRequest, revision: ConfigRevision) -> HttpResponse:
    back = reverse("improvements:proposal", args=[revision.pipeline.slug, revision.number])
    action = request.POST.get("action")
    if action == "samples":
        queued = samples_request(revision=revision, actor=request.user)
        messages.success(
            request,
            f"{queued} sample video{'s' if queued != 1 else ''} queued; they appear here when done."
            if queued
            else "The samples were already requested.",
        )
        return redirect(back)
    if not _may_approve(request):
        raise PermissionDenied("approving and rejecting need the approve permission")
    try:
        if action == "approve":
            arm = experiments.revision_approve_as_arm(revision=revision, actor=request.user)
            messages.success(
                request,
                f"r{revision.number} approved: an arm on {arm.share:.0%} of new generations "
                f"against r{arm.experiment.control.number}.",
            )
        elif action == "reject":
            reason = (request.POST.get("reason") or "").strip()
            if not reason:
                messages.error(request, "Give a reason to reject: it is kept with the revision.")
                return redirect(back)
            revision_reject(revision=revision, actor=request.user, note=reason[:2000])
            messages.success(request, f"r{revision.number} rejected.")
        else:
            messages.error(request, "Unknown action.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(back)
