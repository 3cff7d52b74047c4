"""Reads for generations, their metrics and worker tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from generation.models import Generation, MetricValue, WorkerToken


def generation_get(*, generation_id: object) -> Generation | None:
    """The generation with this id, or None for an unknown or malformed id."""
    try:
        return (
            Generation.objects.select_related("revision__pipeline").filter(pk=generation_id).first()
        )
    except (ValidationError, ValueError, TypeError):
        return None


def generations_finished() -> QuerySet[Generation]:
    return Generation.objects.filter(status=Generation.Status.SUCCEEDED)


def generation_list(
    *,
    pipeline: str | None = None,
    status: str | None = None,
    revision_number: int | None = None,
    backend: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    prompt_contains: str | None = None,
) -> QuerySet[Generation]:
    generations = Generation.objects.select_related("revision__pipeline", "claimed_by")
    if pipeline:
        generations = generations.filter(revision__pipeline__slug=pipeline)
    if status:
        generations = generations.filter(status=status)
    if revision_number is not None:
        generations = generations.filter(revision__number=revision_number)
    if backend:
        generations = generations.filter(backend=backend)
    if created_after is not None:
        generations = generations.filter(created_at__gte=created_after)
    if created_before is not None:
        generations = generations.filter(created_at__lt=created_before)
    if prompt_contains:
        generations = generations.filter(prompt__icontains=prompt_contains)
    return generations.order_by("-created_at", "id")


def generation_metrics(*, generation: Generation) -> dict[str, dict[str, Any]]:
    """The generation's metric values by source: {"server": {name: value}, "worker": {...}}."""
    by_source: dict[str, dict[str, Any]] = {s: {} for s in MetricValue.Source.values}
    rows = MetricValue.objects.filter(generation=generation).values_list("source", "name", "value")
    for source, name, value in rows.order_by("source", "name"):
        by_source.setdefault(source, {})[name] = value
    return by_source


def worker_token_by_key(*, key: str) -> WorkerToken | None:
    """The live (not revoked) token with this key, or None."""
    return WorkerToken.objects.filter(key_hash=WorkerToken.hash_key(key), revoked=False).first()


def worker_token_live_exists(*, name: str) -> bool:
    return WorkerToken.objects.filter(name=name, revoked=False).exists()
