"""Reads for pipelines, their schema versions and revisions."""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.db.models import QuerySet

from feedbackloop.errors import NotFound
from pipelines.models import SLUG_PATTERN, ConfigRevision, Pipeline, SchemaVersion

S = ConfigRevision.Status


def pipeline_get(*, slug: str) -> Pipeline:
    """The pipeline with this slug; NotFound naming the known ones otherwise."""
    # A string no slug can be (a NUL byte, say, which PostgreSQL refuses) is simply not found.
    well_formed = isinstance(slug, str) and re.fullmatch(SLUG_PATTERN, slug) is not None
    pipeline = Pipeline.objects.filter(slug=slug).first() if well_formed else None
    if pipeline is None:
        known = ", ".join(Pipeline.objects.values_list("slug", flat=True)) or "none yet"
        shown = repr(slug)[:80]
        raise NotFound(f"no pipeline {shown}; known pipelines: {known}", code="unknown_pipeline")
    return pipeline


def pipeline_default_slug() -> str:
    return settings.FEEDBACKLOOP_DEFAULT_PIPELINE


def pipeline_default() -> Pipeline:
    """The pipeline that requests naming none use (the old, pipeline-less endpoints)."""
    return pipeline_get(slug=pipeline_default_slug())


def pipeline_or_default(slug: str | None) -> Pipeline:
    return pipeline_default() if slug in (None, "") else pipeline_get(slug=slug)


def pipeline_list() -> QuerySet[Pipeline]:
    return Pipeline.objects.order_by("slug")


def schema_current(*, pipeline: Pipeline) -> SchemaVersion:
    version = pipeline.versions.order_by("-number").first()
    if version is None:
        raise NotFound(f"pipeline {pipeline.slug!r} has no declared parameters", code="no_schema")
    return version


def revision_active(*, pipeline: Pipeline) -> ConfigRevision | None:
    return (
        ConfigRevision.objects.select_related("pipeline")
        .filter(pipeline=pipeline, status=S.ACTIVE)
        .first()
    )


def revision_get(*, pipeline: Pipeline, number: object) -> ConfigRevision:
    try:
        number = int(str(number))
    except ValueError:
        number = None
    revision = (
        ConfigRevision.objects.select_related("pipeline", "parent")
        .filter(pipeline=pipeline, number=number)
        .first()
        if number is not None
        else None
    )
    if revision is None:
        raise NotFound(
            f"pipeline {pipeline.slug!r} has no revision {number}", code="unknown_revision"
        )
    return revision


def revisions_in_canary(*, pipeline: Pipeline) -> QuerySet[ConfigRevision]:
    return ConfigRevision.objects.filter(pipeline=pipeline, status=S.CANARY).order_by("number")


def canary_bucket(key: str) -> float:
    """A stable number in [0, 1) for a key: the same generation always lands in the same arm."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def revision_for_new_generation(
    *, pipeline: Pipeline, key: str | None = None
) -> tuple[ConfigRevision, str] | None:
    """The revision a new generation of this pipeline uses, and its experiment arm.

    While canaries run, each takes its ``rollout_share`` of new generations (by a stable hash
    of the key, the generation's id) and the active revision the rest ("control"); outside
    experiments the arm is "". Without a key the active revision is given.
    """
    active = revision_active(pipeline=pipeline)
    if active is None:
        return None
    canaries = [c for c in revisions_in_canary(pipeline=pipeline) if c.rollout_share]
    if not canaries:
        return active, ""
    if key is not None:
        bucket, edge = canary_bucket(key), 0.0
        for canary in canaries:
            edge += canary.rollout_share
            if bucket < edge:
                return canary, "candidate"
    return active, "control"
