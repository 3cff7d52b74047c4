"""A pipeline's feedback and experiments, read from the database as the policy's inputs.

The improver's policy (improvements.search) is pure numpy and knows nothing of Django: it reads
plain columns. This module is the one place that turns rows into those columns — ratings,
issue reports, generations, revisions' params, and the experiment state (running arms and the
memory of closed ones) — with every reviewer excluded by staff left out.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from generation.models import Generation
from improvements.models import ExperimentArm
from improvements.search.observations import (
    Arm,
    ExperimentState,
    Generations,
    Interval,
    Issues,
    Observations,
    Ratings,
)
from pipelines.models import ConfigRevision, Pipeline
from reviews.models import IssueReport, Rating
from reviews.selectors import dimensions_for, excluded_reviewer_ids

A = ExperimentArm.Status


def _epoch(moment: Any) -> float:
    return moment.timestamp()


def observations_for(pipeline: Pipeline) -> Observations:
    """Everything rated, reported and generated for ``pipeline`` so far."""
    excluded = excluded_reviewer_ids()
    dimensions = tuple(d.slug for d in dimensions_for(pipeline=pipeline))
    dim_index = {slug: i for i, slug in enumerate(dimensions)}
    revisions = dict(
        ConfigRevision.objects.filter(pipeline=pipeline).values_list("id", "params").order_by("id")
    )
    generations = Generation.objects.filter(
        revision__pipeline=pipeline,
        status__in=[Generation.Status.SUCCEEDED, Generation.Status.FAILED],
    ).order_by()
    gen_rows = list(
        generations.values_list("id", "revision_id", "status", "generation_seconds", "created_at")
    )
    gen_index = {row[0]: i for i, row in enumerate(gen_rows)}

    ratings = (
        Rating.objects.filter(review__generation__revision__pipeline=pipeline)
        .exclude(review__reviewer_id__in=excluded)
        .order_by("id")
        .values_list(
            "review__generation__revision_id",
            "review__generation_id",
            "review__reviewer_id",
            "dimension__slug",
            "value",
            "created_at",
        )
    )
    columns: dict[str, list[Any]] = {k: [] for k in ("r", "g", "u", "d", "v", "t")}
    for revision, generation, reviewer, slug, value, created in ratings.iterator(2000):
        if slug not in dim_index or generation not in gen_index:
            continue
        columns["r"].append(revision)
        columns["g"].append(gen_index[generation])
        columns["u"].append(reviewer)
        columns["d"].append(dim_index[slug])
        columns["v"].append(value)
        columns["t"].append(_epoch(created))

    issues = list(
        IssueReport.objects.filter(generation__revision__pipeline=pipeline)
        .exclude(review__reviewer_id__in=excluded)
        .order_by("id")
        .values_list(
            "generation__revision_id", "generation_id", "review__reviewer_id", "category", "note"
        )
    )
    issues = [row for row in issues if row[1] in gen_index]
    return Observations(
        dimensions=dimensions,
        revisions=revisions,
        ratings=Ratings.of(
            revision=columns["r"],
            generation=columns["g"],
            reviewer=columns["u"],
            dimension=columns["d"],
            value=columns["v"],
            time=columns["t"],
        ),
        issues=Issues.of(
            revision=[row[0] for row in issues],
            generation=[gen_index[row[1]] for row in issues],
            reviewer=[row[2] for row in issues],
            category=[row[3] for row in issues],
            note=[row[4] for row in issues],
        ),
        generations=Generations.of(
            id=np.arange(len(gen_rows)),
            revision=[row[1] for row in gen_rows],
            failed=[row[2] == Generation.Status.FAILED for row in gen_rows],
            seconds=[row[3] if row[3] is not None else np.nan for row in gen_rows],
            time=[_epoch(row[4]) for row in gen_rows],
        ),
        now=time.time(),
    )


def _interval(data: Any) -> Interval | None:
    if not isinstance(data, dict):
        return None
    try:
        return Interval(
            estimate=float(data["estimate"]),
            low=float(data["low"]),
            high=float(data["high"]),
            level=float(data.get("level", 0.95)),
            # The factor already applied to the model's sd when it was predicted: the next
            # calibration divides it out to compare the model's own sd with what happened.
            calibration=float(data.get("calibration") or 1.0),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def arm_memory(arm: ExperimentArm) -> Arm:
    """A database arm as the policy remembers it (closed arms carry their outcome and effect)."""
    result = arm.result or {}
    closed = arm.status != A.RUNNING
    effect = None
    if closed and result.get("lower") is not None and result.get("upper") is not None:
        effect = Interval(
            estimate=float(result.get("estimate") or 0.0),
            low=float(result["lower"]),
            high=float(result["upper"]),
            level=1 - arm.alpha,
        )
    return Arm(
        revision=arm.revision_id,
        role=arm.role,
        control=arm.experiment.control_id,
        opened=_epoch(arm.started_at),
        alpha=arm.alpha,
        mixture=float(result.get("mixture") or 0.0),
        control_history=_count(result.get("control_history")),
        predicted=_interval(result.get("predicted")),
        outcome=(result.get("outcome") or arm.status) if closed else None,
        effect=effect,
    )


def experiment_state_for(pipeline: Pipeline, *, active: ConfigRevision) -> ExperimentState:
    arms = ExperimentArm.objects.filter(experiment__pipeline=pipeline).select_related("experiment")
    return ExperimentState(
        active=active.pk,
        arms=tuple(arm_memory(a) for a in arms.filter(status=A.RUNNING).order_by("id")),
        history=tuple(
            arm_memory(a)
            for a in arms.exclude(status__in=[A.RUNNING, A.CARRIED_OVER]).order_by("id")
        ),
    )
