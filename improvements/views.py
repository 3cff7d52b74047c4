"""The staff dashboard: what the improver saw, as charts (server-rendered SVG) with tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.dateparse import parse_datetime

from improvements import charts
from improvements.experiments import OVERALL, experiment_current
from improvements.models import AnalysisRun, Experiment

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


def snapshot_charts(snapshot: dict[str, Any]) -> list[charts.Chart]:
    issues = snapshot.get("issue_rates") or []
    recent = sorted({row["revision"] for row in issues}, reverse=True)[:ISSUE_REVISIONS]
    issue_rows = [
        (
            f"r{row['revision']} · {str(row['category']).replace('_', ' ')}",
            row.get("rate"),
            f"{row.get('count', 0)}/{row.get('reviews', 0)} reviews",
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
        ),
        charts.bar_chart(
            agreement_rows,
            title="Agreement between reviewers (Krippendorff's ordinal alpha)",
            description="alpha per rating dimension; 1 is perfect agreement, 0 is chance",
            domain=(min([0.0] + [r[1] for r in agreement_rows if r[1] is not None]), 1.0),
            columns=("dimension", "alpha", ""),
        ),
        charts.interval_chart(
            [
                (
                    f"r{row['revision']}",
                    row.get("strength"),
                    row.get("ci_low"),
                    row.get("ci_high"),
                    f"{row.get('comparisons', 0)} comparisons",
                )
                for row in ranking
            ],
            title="Blind comparisons: Bradley–Terry ranking",
            description="log-strength per revision with 95% bootstrap intervals; 0 is average",
            columns=("revision", "strength", "low", "high", "comparisons"),
        ),
        charts.heatmap(
            correlations,
            title="Which metric predicts which rating (Spearman rho)",
            description="rank correlation of each automated metric with each rating dimension",
        ),
    ]


def experiment_panel(experiment: Experiment | None) -> tuple[dict[str, Any] | None, charts.Chart]:
    if experiment is None:
        return None, charts.empty_chart("Current experiment", "no canary experiment yet")
    decisions = list(experiment.decisions.order_by("created_at", "id"))
    looks = [(d.n_candidate + d.n_control, d.estimate, d.lower, d.upper, d.kind) for d in decisions]
    candidate, control = experiment.candidate.number, experiment.control.number
    title = f"Canary r{candidate} vs r{control}: candidate − control"
    summary = {
        "experiment": experiment,
        "latest": decisions[-1] if decisions else None,
    }
    return summary, charts.experiment_chart(looks, min_effect=experiment.min_effect, title=title)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("the dashboard is for staff")
    recent = AnalysisRun.objects.exclude(snapshot={}).order_by("-created_at", "-id")
    runs = [
        (created_at, snapshot)
        for created_at, snapshot in reversed(
            recent.values_list("created_at", "snapshot")[:HISTORY_RUNS]
        )
        if _is_full_snapshot(snapshot)
    ]
    latest = runs[-1][1] if runs else {}
    experiment, experiment_chart = experiment_panel(experiment_current())
    context = {
        "snapshot": latest,
        "analysed_at": _when(latest, runs[-1][0]) if runs else None,
        "experiment": experiment,
        "charts": [
            charts.rating_over_time(rating_series(runs)),
            experiment_chart,
            *snapshot_charts(latest),
        ],
    }
    return render(request, "improvements/dashboard.html", context)
