"""Exports of the feedback for training reward models and preference tuning.

    filters = export_filters(pipeline="builtin", since="2026-01-01")
    for piece in export_stream(kind="pairs", fmt="parquet", filters=filters): ...
    export_to_file(kind="ratings", fmt="jsonl", filters=filters, path="ratings.jsonl")

Kinds (rows.py): ratings, issues, pairs, generations. Formats (writers.py): jsonl, parquet.
Filters: pipeline (slug), revision (number, of that pipeline), since and until (dates or ISO
times; a row counts when since <= created_at < until, and a plain date for until includes that
day). Anything else is an InvalidInput naming the valid choices. Memory stays flat: rows are
read in chunks and written a row group at a time. docs/export.md describes every column.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from feedbackloop.errors import InvalidInput, NotFound
from generation.models import MetricValue
from integrations.exports.rows import ROWS, ExportFilters
from integrations.exports.writers import jsonl_pieces, parquet_pieces, parquet_schema
from pipelines.models import ConfigRevision, Pipeline
from reviews.models import RatingDimension

KINDS = tuple(ROWS)
FORMATS = ("jsonl", "parquet")
FILTERS = ("pipeline", "revision", "since", "until")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}

__all__ = [
    "CONTENT_TYPES",
    "FILTERS",
    "FORMATS",
    "KINDS",
    "ExportFilters",
    "export_check",
    "export_filters",
    "export_stream",
    "export_to_file",
]


def export_check(*, kind: str, fmt: str) -> None:
    if kind not in KINDS:
        raise NotFound(
            f"unknown export kind {kind!r}; valid kinds: {', '.join(KINDS)}", code="unknown_kind"
        )
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}", code="unknown_format"
        )


def _moment(name: str, raw: Any, *, end: bool) -> datetime | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime.combine(raw + timedelta(days=1) if end else raw, time.min)
    else:
        text = str(raw).strip()
        day = parse_date(text) if len(text) == 10 else None
        try:
            parsed = parse_datetime(text)
        except ValueError:
            parsed = None
        if day is not None:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
        elif parsed is not None:
            moment = parsed
        else:
            raise InvalidInput(
                f"{name} must be a date (2026-01-31) or an ISO time (2026-01-31T12:00:00Z), "
                f"not {text[:40]!r}",
                code="invalid_filter",
            )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def export_filters(**given: Any) -> ExportFilters:
    """Check the filters by name and value; InvalidInput / NotFound name the valid ones."""
    unknown = sorted(set(given) - set(FILTERS))
    if unknown:
        raise InvalidInput(
            f"unknown filter {', '.join(unknown)}; valid filters: {', '.join(FILTERS)}",
            code="unknown_filter",
        )
    pipeline = None
    slug = given.get("pipeline")
    if slug not in (None, ""):
        pipeline = Pipeline.objects.filter(slug=slug).first()
        if pipeline is None:
            known = ", ".join(Pipeline.objects.values_list("slug", flat=True)) or "none yet"
            raise NotFound(
                f"no pipeline {slug!r}; valid pipelines: {known}", code="unknown_pipeline"
            )
    revision = None
    number = given.get("revision")
    if number not in (None, ""):
        if pipeline is None:
            raise InvalidInput(
                "revision needs pipeline: revision numbers are per pipeline",
                code="invalid_filter",
            )
        try:
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"revision must be a number, not {str(number)[:20]!r}", code="invalid_filter"
            ) from exc
        revision = ConfigRevision.objects.filter(pipeline=pipeline, number=number).first()
        if revision is None:
            known = ", ".join(
                str(n)
                for n in pipeline.revisions.order_by("number").values_list("number", flat=True)
            )
            raise NotFound(
                f"{pipeline.slug} has no revision {number}; its revisions: {known}",
                code="unknown_revision",
            )
    since = _moment("since", given.get("since"), end=False)
    until = _moment("until", given.get("until"), end=True)
    if since is not None and until is not None and until <= since:
        raise InvalidInput("until must be after since", code="invalid_filter")
    return ExportFilters(
        pipelines=(pipeline,) if pipeline else (), revision=revision, since=since, until=until
    )


def _open_keys(kind: str) -> dict[str, list[str]]:
    """The field names of a kind's open-ended Parquet columns, read from the database."""
    if kind == "ratings":
        return {"ratings": list(RatingDimension.objects.values_list("slug", flat=True))}
    if kind == "pairs":
        return {"dimensions": list(RatingDimension.objects.values_list("slug", flat=True))}
    if kind == "generations":
        names = MetricValue.objects.order_by().values_list("source", "name").distinct()
        keys: dict[str, list[str]] = {"metrics": [], "worker_metrics": []}
        for source, name in names:
            keys["metrics" if source == MetricValue.Source.SERVER else "worker_metrics"].append(
                name
            )
        return keys
    return {}


class _Counted:
    def __init__(self, rows: Iterator[dict[str, Any]]) -> None:
        self.rows, self.count = rows, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            self.count += 1
            yield row


def export_stream(
    *, kind: str, fmt: str, filters: ExportFilters, counter: list[int] | None = None
) -> Iterator[bytes]:
    """The export as pieces of bytes; ``counter`` (a one-item list) gets the row count."""
    export_check(kind=kind, fmt=fmt)
    rows = _Counted(ROWS[kind](filters))
    if fmt == "jsonl":
        pieces = jsonl_pieces(rows)
    else:
        pieces = parquet_pieces(rows, kind=kind, schema=parquet_schema(kind, keys=_open_keys(kind)))
    for piece in pieces:
        if counter is not None:
            counter[:] = [rows.count]
        if piece:
            yield piece
    if counter is not None:
        counter[:] = [rows.count]


def export_to_file(*, kind: str, fmt: str, filters: ExportFilters, path: str | Path) -> int:
    """Write the export to ``path`` (through a temporary file renamed when complete, so a
    failed export leaves no partial file); returns the number of rows."""
    export_check(kind=kind, fmt=fmt)
    target = Path(path)
    partial = target.with_name(f".{target.name}.part")
    counter = [0]
    try:
        with open(partial, "wb") as out:
            for piece in export_stream(kind=kind, fmt=fmt, filters=filters, counter=counter):
                out.write(piece)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return counter[0]
