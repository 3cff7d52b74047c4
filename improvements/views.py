"""The staff dashboard: what the improver saw, as charts (server-rendered SVG) with tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.dateparse import parse_datetime

from feedbackloop.errors import NotFound
from improvements import charts
from improvements.experiments import experiment_current
from improvements.models import AnalysisRun, Experiment
from improvements.services import pending_proposals
from improvements.stats.correlation import MIN_PAIRS
from pipelines.selectors import pipeline_list, pipeline_or_default
from reviews.models import OVERALL_DIMENSION as OVERALL

# The fewest paired generations for which the analysis computes a correlation.
CORRELATION_MIN_N = MIN_PAIRS
HISTORY_RUNS = 60  # analyses shown on the rating-over-time chart
MAX_SERIES = len(charts.PALETTE)  # revisions drawn (the newest ones)
ISSUE_REVISIONS = 4


def _is_full_snapshot(snapshot: dict[str, Any]) -> bool:
    return isinstance(snapshot, dict) and isinstance(snapshot.get("corrected"), dict)


def _when(snapshot: dict[str, Any], fallback: datetime) -> datetime:
    parsed = parse_datetime(str(snapshot.get("computed_at") or ""))
    return parsed or fallback


def rating_series(runs: list[tuple[datetime, dict[str, Any]]]) -> dict[str, list[tuple]]:
    """Per revision: (time, corrected mean, low, high) of the overall rating at each analysis."""
    by_revision: dict[int, list[tuple]] = {}
    for created_at, snapshot in runs:
        corrected = snapshot["corrected"]
        rows = corrected.get(OVERALL) or next(iter(corrected.values()), [])
        for row in rows or []:
            by_revision.setdefault(row["revision"], []).append(
                (
                    _when(snapshot, created_at),
                    row.get("mean"),
                    row.get("ci_low"),
                    row.get("ci_high"),
                )
            )
    newest = sorted(by_revision, reverse=True)[:MAX_SERIES]
    return {f"r{number}": by_revision[number] for number in sorted(newest)}


def _comparisons(n: int) -> str:
    return f"{n} comparison{'' if n == 1 else 's'} of this revision"


def _issue_caption(row: dict[str, Any]) -> str:
    share = f"{row.get('reviews_reporting', row.get('count', 0))}/{row.get('reviews', 0)} reviews"
    if row.get("rate_low") is None or row.get("rate_high") is None:
        return share
    return f"{share} (95% {row['rate_low']:.0%}–{row['rate_high']:.0%})"


def snapshot_charts(snapshot: dict[str, Any]) -> list[charts.Chart]:
    issues = snapshot.get("issue_rates") or []
    recent = sorted({row["revision"] for row in issues}, reverse=True)[:ISSUE_REVISIONS]
    issue_rows = [
        (
            f"r{row['revision']} · {str(row['category']).replace('_', ' ')}",
            row.get("rate"),
            _issue_caption(row),
        )
        for row in sorted(issues, key=lambda r: (-r["revision"], str(r["category"])))
        if row["revision"] in recent
    ]
    agreement = snapshot.get("agreement") or {}
    agreement_rows = [
        (dimension.replace("_", " "), alpha, "undefined" if alpha is None else f"α = {alpha:.2f}")
        for dimension, alpha in sorted(agreement.items())
    ]
    ranking = sorted(
        snapshot.get("bradley_terry") or [],
        key=lambda r: r.get("strength") if r.get("strength") is not None else float("-inf"),
        reverse=True,
    )
    correlations = {
        (row["metric"], row["dimension"]): (row.get("rho"), row.get("p_value"), row.get("n", 0))
        for row in snapshot.get("correlations") or []
    }
    return [
        charts.bar_chart(
            issue_rows,
            title="Issue reports per category (share of reviews)",
            description=f"issue-report rate by category for the {len(recent)} newest revisions",
            domain=(0.0, max([r[1] or 0 for r in issue_rows] + [0.05])),
            columns=("revision · category", "rate", "reports"),
            axis_label="share of reviews that report the category",
        ),
        charts.bar_chart(
            agreement_rows,
            title="Agreement between reviewers (Krippendorff's ordinal alpha)",
            description="alpha per rating dimension; 1 is perfect agreement, 0 is chance",
            domain=(min([0.0] + [r[1] for r in agreement_rows if r[1] is not None]), 1.0),
            columns=("dimension", "alpha", "note"),
            axis_label="Krippendorff's alpha (1 = perfect agreement, 0 = chance)",
        ),
        charts.interval_chart(
            [
                (
                    f"r{row['revision']}",
                    row.get("strength"),
                    row.get("ci_low"),
                    row.get("ci_high"),
                    _comparisons(row.get("comparisons", 0)),
                )
                for row in ranking
            ],
            title="Blind comparisons: Bradley–Terry ranking",
            description="log-strength per revision with 95% bootstrap intervals; 0 is average",
            axis_label="log-strength (0 = an average revision; higher wins more often)",
            columns=("revision", "strength", "low", "high", "comparisons"),
        ),
        charts.heatmap(
            correlations,
            title="Which metric predicts which rating (Spearman rho)",
            description="rank correlation of each automated metric with each rating dimension",
            min_n=CORRELATION_MIN_N,
        ),
    ]


def experiment_panel(experiment: Experiment | None) -> tuple[dict[str, Any] | None, charts.Chart]:
    """Every arm of the experiment with its interval against the control and its traffic."""
    if experiment is None:
        return None, charts.empty_chart("Current experiment", "no experiment yet")
    arms = list(experiment.arms.select_related("revision").order_by("id"))
    control_share = 1 - sum(a.share for a in arms if a.status == "running")
    rows = [
        (
            f"r{arm.revision.number} ({arm.role}, {arm.status})",
            arm.result.get("estimate"),
            arm.result.get("lower"),
            arm.result.get("upper"),
            f"{arm.share:.0%} of traffic · n {arm.result.get('n_candidate') or 0}"
            f"/{arm.result.get('n_control') or 0}",
        )
        for arm in arms
    ]
    title = f"Experiment #{experiment.pk}: each arm − control r{experiment.control.number}"
    summary = {
        "experiment": experiment,
        "arms": arms,
        "control_share": max(control_share, 0.0),
        "latest": experiment.decisions.order_by("-created_at", "-id").first(),
    }
    chart = charts.interval_chart(
        rows,
        title=title,
        description="mean rating of each arm minus the control's, with its always-valid "
        f"interval; the minimum effect is {experiment.min_effect:+.2f}",
        axis_label="difference in mean rating, arm − control (rating points)",
        columns=("arm", "difference", "low", "high", "traffic · ratings arm/control"),
    )
    return summary, chart


def pipelines_chart() -> charts.Chart:
    """Model selection: the pipelines ranked by blind comparisons between their videos."""
    from improvements.analysis import pipelines_ranking  # numerics: loaded when drawn

    ranked = pipelines_ranking()
    return charts.interval_chart(
        [
            (
                row["pipeline"],
                row["strength"],
                row["ci_low"],
                row["ci_high"],
                f"{row['comparisons']} comparison{'' if row['comparisons'] == 1 else 's'}",
            )
            for row in ranked["ranking"]
        ],
        title="Model selection: pipelines compared blind (Bradley–Terry)",
        description="log-strength per pipeline from blind comparisons of two pipelines' videos "
        "of one prompt, with 95% bootstrap intervals; 0 is average",
        axis_label="log-strength (0 = an average pipeline; higher wins more often)",
        columns=("pipeline", "strength", "low", "high", "comparisons"),
    )


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("the dashboard is for staff")
    slug = request.GET.get("pipeline")
    if not slug and not pipeline_list().exists():
        empty = charts.empty_chart("Feedback", "no pipeline is registered yet")
        return render(request, "improvements/dashboard.html", {"charts": [empty]})
    try:
        pipeline = pipeline_or_default(slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    recent = (
        AnalysisRun.objects.filter(pipeline=pipeline)
        .exclude(snapshot={})
        .order_by("-created_at", "-id")
    )
    runs = [
        (created_at, snapshot)
        for created_at, snapshot in reversed(
            recent.values_list("created_at", "snapshot")[:HISTORY_RUNS]
        )
        if _is_full_snapshot(snapshot)
    ]
    latest = runs[-1][1] if runs else {}
    experiment, experiment_chart = experiment_panel(experiment_current(pipeline=pipeline))
    model_selection = []
    if pipeline_list().count() > 1:
        model_selection = [pipelines_chart()]
    context = {
        "pipeline": pipeline,
        "pipelines": pipeline_list(),
        "pending_proposals": len(pending_proposals(pipeline=pipeline)),
        "snapshot": latest,
        "analysed_at": _when(latest, runs[-1][0]) if runs else None,
        "experiment": experiment,
        "charts": [
            charts.rating_over_time(rating_series(runs)),
            experiment_chart,
            *snapshot_charts(latest),
            *model_selection,
        ],
    }
    return render(request, "improvements/dashboard.html", context)
