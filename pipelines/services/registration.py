"""Registering a pipeline and versioning its declared parameter space.

Registration is idempotent: the same name, description and parameters twice change nothing. A
changed parameter declaration makes a new schema version, unless the pipeline's active revision
would no longer be valid under it (refused, naming each key). The first registration creates
revision 1 from the declared defaults and makes it active, so a new pipeline can serve jobs at
once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from feedbackloop.errors import Conflict, InvalidInput
from pipelines.declarations import (
    InvalidParams,
    declaration_check,
    declaration_digest,
    params_check,
)
from pipelines.models import Pipeline, SchemaVersion, slug_validator
from pipelines.renderers import renderer_load
from pipelines.selectors import revision_active
from pipelines.services.revisions import revision_ensure_active


@dataclass(frozen=True)
class Registration:
    pipeline: Pipeline
    version: SchemaVersion
    created: bool  # the pipeline is new
    version_created: bool  # its declaration changed (or it is new)
    changed: bool  # anything at all changed


def _check_slug(slug: Any) -> str:
    from django.core.exceptions import ValidationError

    if not isinstance(slug, str):
        raise InvalidInput("slug must be a string", code="invalid_slug")
    try:
        slug_validator(slug)
    except ValidationError as exc:
        raise InvalidInput(f"slug {slug!r}: {exc.messages[0]}", code="invalid_slug") from exc
    return slug


def _check_text(name: str, value: Any, limit: int, *, required: bool) -> str:
    if not isinstance(value, str) or (required and not value.strip()) or "\x00" in value:
        raise InvalidInput(
            f"{name} must be a{' non-empty' if required else ''} text", code=f"invalid_{name}"
        )
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters", code=f"invalid_{name}")
    return value.strip()


def pipeline_register(
    *,
    slug: str,
    name: str,
    parameters: Any,
    description: str = "",
    renderer: str = "",
    registered_by: str = "",
    initial_params: dict[str, Any] | None = None,
) -> Registration:
    """Create or update a pipeline from its declaration; see the module docstring.

    ``initial_params`` (default: the declared defaults) are revision 1's params for a new
    pipeline, or for one that has no active revision yet.
    """
    slug = _check_slug(slug)
    name = _check_text("name", name, 200, required=True)
    description = _check_text("description", description, 10_000, required=False)
    declaration = declaration_check(parameters)
    if renderer:
        renderer_load(renderer)
    digest = declaration_digest(declaration)
    if initial_params is not None:
        params_check(declaration, initial_params)
    try:
        with transaction.atomic():
            return _register(
                slug,
                name,
                description,
                renderer,
                registered_by,
                declaration,
                digest,
                initial_params,
            )
    except IntegrityError as exc:
        # Two first registrations of one slug at once: the unique slug decided; the loser's
        # retry finds the pipeline and is idempotent.
        raise Conflict(f"pipeline {slug!r} is being registered concurrently; retry") from exc


def _register(
    slug: str,
    name: str,
    description: str,
    renderer: str,
    registered_by: str,
    declaration: dict[str, Any],
    digest: str,
    initial_params: dict[str, Any] | None,
) -> Registration:
    pipeline = Pipeline.objects.select_for_update().filter(slug=slug).first()
    created = pipeline is None
    changed = created
    if pipeline is None:
        pipeline = Pipeline.objects.create(
            slug=slug,
            name=name,
            description=description,
            renderer=renderer,
            registered_by=registered_by[:100],
        )
    elif (pipeline.name, pipeline.description, pipeline.renderer) != (name, description, renderer):
        pipeline.name, pipeline.description, pipeline.renderer = name, description, renderer
        pipeline.save(update_fields=["name", "description", "renderer", "updated_at"])
        changed = True
    current = pipeline.versions.order_by("-number").first()
    version_created = current is None or current.digest != digest
    if version_created:
        active = revision_active(pipeline=pipeline)
        if active is not None:
            _active_still_valid(pipeline, active, declaration)
        current = SchemaVersion.objects.create(
            pipeline=pipeline,
            number=(current.number + 1) if current else 1,
            parameters=declaration,
            digest=digest,
            created_by=registered_by[:100],
        )
        changed = True
    if revision_active(pipeline=pipeline) is None:
        revision_ensure_active(pipeline=pipeline, params=initial_params)
        changed = True
    return Registration(pipeline, current, created, version_created, changed)


def _active_still_valid(pipeline: Pipeline, active: Any, declaration: dict[str, Any]) -> None:
    try:
        params_check(declaration, active.params)
    except InvalidParams as exc:
        keys = ", ".join(exc.details)
        raise InvalidInput(
            f"this declaration would make the active revision r{active.number} of "
            f"{pipeline.slug} invalid ({keys}): keep those parameters compatible, or activate "
            "a revision that fits the new declaration first",
            code="breaks_active_revision",
            details=exc.details,
        ) from exc


def pipelines_from_config(*, entries: Any, registered_by: str = "config") -> list[Registration]:
    """Register every pipeline a config file declares (feedbackloop.config.PipelineEntry):
    idempotent, so `make run` and VideoGenerator() can call it every time."""
    return [
        pipeline_register(
            slug=entry.slug,
            name=entry.name,
            description=entry.description,
            parameters=entry.declaration,
            renderer=entry.renderer,
            registered_by=registered_by,
            initial_params=entry.params,
        )
        for entry in entries
    ]
