"""The rows of each export kind, read in chunks so memory stays flat whatever the row count.

Each kind walks its main table once with ``.iterator(chunk_size=CHUNK)`` over ``values_list``
(a server-side cursor on PostgreSQL) and fetches what hangs off a chunk (ratings of its reviews,
verdicts of its comparisons, metrics of its generations) in one query per chunk. Rows are plain
dicts: ids as strings, times as aware datetimes, params as dicts. docs/export.md describes them.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models import Q, QuerySet
from django.utils.crypto import salted_hmac

from generation.models import Generation, MetricValue
from pipelines.models import ConfigRevision, Pipeline
from reviews.models import Comparison, ComparisonDimensionWinner, IssueReport, Rating, Review

CHUNK = 2000
PSEUDONYM_SALT = "feedbackloop.integrations.exports.reviewer"


@dataclass(frozen=True)
class ExportFilters:
    """What to export: some pipelines (none: all) or one revision, and a creation-time window
    [since, until)."""

    pipelines: tuple[Pipeline, ...] = ()
    revision: ConfigRevision | None = None
    since: datetime | None = None
    until: datetime | None = None


@lru_cache(maxsize=65536)
def reviewer_pseudonym(user_id: int) -> str:
    """A stable id for a reviewer that does not reveal who it is: an HMAC of the user id keyed
    with SECRET_KEY (the same reviewer gets the same id in every export of this site)."""
    return "r_" + salted_hmac(PSEUDONYM_SALT, str(user_id), algorithm="sha256").hexdigest()[:20]


def video_uri(name: str) -> str | None:
    """Where the file lives: s3://bucket/key on object storage, file:///… on local disk."""
    if not name:
        return None
    storage = default_storage
    bucket = getattr(storage, "bucket_name", None)
    if bucket:
        location = (getattr(storage, "location", "") or "").strip("/")
        return f"s3://{bucket}/{location + '/' if location else ''}{name}"
    if isinstance(storage, FileSystemStorage):
        return Path(storage.path(name)).as_uri()
    return name


def _chunks(rows: Iterable[Any]) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        yield chunk


def _window(queryset: QuerySet, filters: ExportFilters, field: str = "created_at") -> QuerySet:
    if filters.since is not None:
        queryset = queryset.filter(**{f"{field}__gte": filters.since})
    if filters.until is not None:
        queryset = queryset.filter(**{f"{field}__lt": filters.until})
    return queryset


def _of_generation(queryset: QuerySet, filters: ExportFilters, path: str) -> QuerySet:
    """Keep rows whose generation (at ``path``) is of the pipeline / revision asked for."""
    prefix = f"{path}__" if path else ""
    if filters.revision is not None:
        return queryset.filter(**{f"{prefix}revision": filters.revision})
    if filters.pipelines:
        return queryset.filter(**{f"{prefix}revision__pipeline__in": filters.pipelines})
    return queryset


# --- ratings: one row per review -------------------------------------------------------------


def rating_rows(filters: ExportFilters) -> Iterator[dict[str, Any]]:
    reviews = _window(_of_generation(Review.objects.all(), filters, "generation"), filters)
    columns = reviews.order_by("created_at", "id").values_list(
        "id",
        "created_at",
        "reviewer_id",
        "generation_id",
        "generation__revision__pipeline__slug",
        "generation__revision__number",
        "seconds_spent",
        "comments",
    )
    for chunk in _chunks(columns.iterator(chunk_size=CHUNK)):
        ratings: dict[Any, dict[str, int]] = defaultdict(dict)
        for review_id, slug, value in Rating.objects.filter(
            review_id__in=[row[0] for row in chunk]
        ).values_list("review_id", "dimension__slug", "value"):
            ratings[review_id][slug] = value
        for review_id, created, reviewer, generation, pipeline, number, seconds, text in chunk:
            yield {
                "review_id": str(review_id),
                "created_at": created,
                "reviewer": reviewer_pseudonym(reviewer),
                "generation_id": str(generation),
                "pipeline": pipeline,
                "revision": number,
                "ratings": ratings.get(review_id, {}),
                "seconds_spent": seconds,
                "comments": text,
            }


# --- issues: one row per issue report ---------------------------------------------------------


def issue_rows(filters: ExportFilters) -> Iterator[dict[str, Any]]:
    issues = _window(_of_generation(IssueReport.objects.all(), filters, "generation"), filters)
    columns = issues.order_by("created_at", "id").values_list(
        "id",
        "created_at",
        "review__reviewer_id",
        "review_id",
        "generation_id",
        "generation__revision__pipeline__slug",
        "generation__revision__number",
        "category",
        "severity",
        "start_s",
        "end_s",
        "note",
    )
    labels = dict(IssueReport.Severity.choices)
    for row in columns.iterator(chunk_size=CHUNK):
        (pk, created, reviewer, review, generation, pipeline, number) = row[:7]
        category, severity, start, end, note = row[7:]
        yield {
            "issue_id": pk,
            "created_at": created,
            "reviewer": reviewer_pseudonym(reviewer),
            "review_id": str(review),
            "generation_id": str(generation),
            "pipeline": pipeline,
            "revision": number,
            "category": category,
            "severity": severity,
            "severity_label": labels.get(severity, ""),
            "start_s": start,
            "end_s": end,
            "note": note,
        }


# --- pairs: one row per blind comparison ------------------------------------------------------

SIDE_FIELDS = ("id", "prompt", "params", "revision__pipeline__slug", "revision__number", "video")


def pair_rows(filters: ExportFilters) -> Iterator[dict[str, Any]]:
    comparisons = Comparison.objects.all()
    if filters.revision is not None:
        comparisons = comparisons.filter(
            Q(left__revision=filters.revision) | Q(right__revision=filters.revision)
        )
    elif filters.pipelines:
        comparisons = comparisons.filter(
            Q(left__revision__pipeline__in=filters.pipelines)
            | Q(right__revision__pipeline__in=filters.pipelines)
        )
    comparisons = _window(comparisons, filters)
    columns = comparisons.order_by("created_at", "id").values_list(
        "id",
        "created_at",
        "reviewer_id",
        "winner",
        "seconds_spent",
        *(f"left__{f}" for f in SIDE_FIELDS),
        *(f"right__{f}" for f in SIDE_FIELDS),
    )
    n = len(SIDE_FIELDS)
    for chunk in _chunks(columns.iterator(chunk_size=CHUNK)):
        verdicts: dict[Any, dict[str, str]] = defaultdict(dict)
        for comparison_id, slug, winner in ComparisonDimensionWinner.objects.filter(
            comparison_id__in=[row[0] for row in chunk]
        ).values_list("comparison_id", "dimension__slug", "winner"):
            verdicts[comparison_id][slug] = winner
        for row in chunk:
            pk, created, reviewer, winner, seconds = row[:5]
            left, right = _side(row[5 : 5 + n]), _side(row[5 + n : 5 + 2 * n])
            tie = winner == Comparison.Winner.TIE
            # A tie keeps the sides as shown: chosen is the left one, and "tie" says so.
            chosen_side = "right" if winner == Comparison.Winner.RIGHT else "left"
            chosen, rejected = (right, left) if chosen_side == "right" else (left, right)
            yield {
                "comparison_id": str(pk),
                "created_at": created,
                "reviewer": reviewer_pseudonym(reviewer),
                "prompt": chosen["prompt"],
                "chosen": {"side": chosen_side, **chosen},
                "rejected": {"side": "left" if chosen_side == "right" else "right", **rejected},
                "tie": tie,
                "dimensions": {
                    slug: _relative(verdict, chosen_side)
                    for slug, verdict in verdicts.get(pk, {}).items()
                },
                "seconds_spent": seconds,
            }


def _side(values: tuple[Any, ...]) -> dict[str, Any]:
    generation, prompt, params, pipeline, number, video = values
    return {
        "generation_id": str(generation),
        "prompt": prompt,
        "pipeline": pipeline,
        "revision": number,
        "params": params,
        "video_uri": video_uri(video),
    }


def _relative(verdict: str, chosen_side: str) -> str:
    """A per-dimension left/right/tie as seen from the pair: chosen, rejected or tie."""
    if verdict == Comparison.Winner.TIE:
        return "tie"
    return "chosen" if verdict == chosen_side else "rejected"


# --- generations: params, revision, pipeline and metrics --------------------------------------

MEASURES = (
    "duration_s",
    "fps",
    "width",
    "height",
    "codec",
    "size_bytes",
    "generation_seconds",
    "cpu_seconds",
    "peak_rss_bytes",
)
GENERATION_FIELDS = (
    "id",
    "created_at",
    "finished_at",
    "status",
    "prompt",
    "revision__pipeline__slug",
    "revision__number",
    "params",
    "experiment_arm",
    "backend",
    "video",
    "error",
    *MEASURES,
)


def generation_rows(filters: ExportFilters) -> Iterator[dict[str, Any]]:
    generations = _window(_of_generation(Generation.objects.all(), filters, ""), filters)
    columns = generations.order_by("created_at", "id").values_list(*GENERATION_FIELDS)
    for chunk in _chunks(columns.iterator(chunk_size=CHUNK)):
        metrics: dict[Any, dict[str, dict[str, float | None]]] = defaultdict(
            lambda: {MetricValue.Source.SERVER: {}, MetricValue.Source.WORKER: {}}
        )
        for generation_id, name, value, source in MetricValue.objects.filter(
            generation_id__in=[row[0] for row in chunk]
        ).values_list("generation_id", "name", "value", "source"):
            metrics[generation_id][source][name] = value
        for row in chunk:
            record = dict(zip(GENERATION_FIELDS, row, strict=True))
            pk = record.pop("id")
            measured = metrics.get(pk) or {}
            yield {
                "generation_id": str(pk),
                "created_at": record["created_at"],
                "finished_at": record["finished_at"],
                "status": record["status"],
                "prompt": record["prompt"],
                "pipeline": record["revision__pipeline__slug"],
                "revision": record["revision__number"],
                "params": record["params"],
                "experiment_arm": record["experiment_arm"],
                "backend": record["backend"],
                "video_uri": video_uri(record["video"]),
                **{k: record[k] for k in MEASURES},
                "error": record["error"],
                "metrics": measured.get(MetricValue.Source.SERVER, {}),
                "worker_metrics": measured.get(MetricValue.Source.WORKER, {}),
            }


ROWS = {
    "ratings": rating_rows,
    "issues": issue_rows,
    "pairs": pair_rows,
    "generations": generation_rows,
}
