"""Queuing a generation: a render on the site's workers, or a job for remote workers.

With an idempotency key a repeated request returns the first generation (created=False); the
same key for a different request is a Conflict. A new generation of a pipeline gets the
pipeline's active revision, or, while an experiment runs, an arm by a stable hash of its id.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from feedbackloop.actors import person_or_none
from feedbackloop.errors import Conflict, Forbidden, InvalidInput, NotFound
from generation.models import SERVER_BACKEND, Generation
from generation.services.claims import generation_take, remote_jobs
from generation.services.leases import lease_duration
from generation.services.rendering import generation_enqueue
from pipelines.models import ConfigRevision, Pipeline
from pipelines.selectors import revision_for_new_generation


def validate_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("prompt must be a non-empty string", code="invalid_prompt")
    prompt = prompt.strip()
    if len(prompt) > settings.MAX_PROMPT_LENGTH:
        raise InvalidInput(
            f"prompt is {len(prompt)} characters; the limit is {settings.MAX_PROMPT_LENGTH}",
            code="invalid_prompt",
        )
    return prompt


def _validate_backend(pipeline: Pipeline, backend: Any) -> str:
    if not isinstance(backend, str) or not backend.strip() or len(backend) > 64:
        raise InvalidInput("backend must be a name of 1 to 64 characters", code="invalid_backend")
    if backend == SERVER_BACKEND and not pipeline.renderer:
        raise InvalidInput(
            f"pipeline {pipeline.slug} has no in-process renderer: its videos are made by "
            'remote workers, so name a worker backend (e.g. "remote")',
            code="invalid_backend",
        )
    return backend


def generation_request(
    *,
    pipeline: Pipeline,
    prompt: str,
    revision: ConfigRevision | None = None,
    idempotency_key: str | None = None,
    requested_by: Any = None,
    backend: str = SERVER_BACKEND,
    enqueue: bool = True,
) -> tuple[Generation, bool]:
    """Queue a generation of ``pipeline``; returns (generation, created).

    A server render is dispatched once the row is committed (``enqueue``); a remote job waits
    for a worker to claim it.
    """
    prompt = validate_prompt(prompt)
    backend = _validate_backend(pipeline, backend)
    if revision is not None and revision.pipeline_id != pipeline.pk:
        raise InvalidInput(f"r{revision.number} is not a revision of {pipeline.slug}")
    if idempotency_key is not None:
        existing = Generation.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_request_or_conflict(existing, pipeline, prompt, backend), False
    try:
        with transaction.atomic():
            generation_id = uuid.uuid4()
            arm = ""
            if revision is None:
                assigned = revision_for_new_generation(pipeline=pipeline, key=str(generation_id))
                if assigned is None:
                    raise NotFound(
                        f"pipeline {pipeline.slug} has no active configuration revision",
                        code="no_active_revision",
                    )
                revision, arm = assigned
            generation = Generation.objects.create(
                id=generation_id,
                prompt=prompt,
                revision=revision,
                experiment_arm=arm,
                params=dict(revision.params),
                backend=backend,
                idempotency_key=idempotency_key,
                requested_by=person_or_none(requested_by),
            )
            if enqueue and backend == SERVER_BACKEND:
                generation_enqueue(generation=generation)
    except IntegrityError:
        existing = Generation.objects.filter(idempotency_key=idempotency_key).first()
        if idempotency_key is None or existing is None:
            raise
        return _same_request_or_conflict(existing, pipeline, prompt, backend), False
    return generation, True


def _same_request_or_conflict(
    existing: Generation, pipeline: Pipeline, prompt: str, backend: str
) -> Generation:
    if (
        existing.prompt != prompt
        or existing.backend != backend
        or existing.revision.pipeline_id != pipeline.pk
    ):
        raise Conflict(
            "this idempotency key was already used for a different request",
            code="idempotency_key_reused",
        )
    return existing


def job_request(
    *,
    pipeline: Pipeline,
    prompt: str,
    backend: str = "remote",
    idempotency_key: str | None = None,
    requested_by: Any = None,
    claim_for: Any = None,
    lease_seconds: int | None = None,
) -> tuple[Generation, bool]:
    """Queue a generation from the API; with ``claim_for`` (a worker token) a new remote job is
    leased to that worker at once. A repeated request returns the first generation unchanged."""
    if claim_for is not None and backend == SERVER_BACKEND:
        raise InvalidInput(
            "only remote jobs can be claimed; the builtin backend renders on the server",
            code="invalid_claim",
        )
    if claim_for is not None and not claim_for.may_serve(pipeline.slug):
        raise Forbidden(
            f"worker {claim_for.name!r} may not serve {pipeline.slug!r}; it may serve "
            f"{', '.join(claim_for.pipelines) or 'no pipeline'}",
            code="pipeline_not_allowed",
        )
    lease = lease_duration(lease_seconds) if claim_for is not None else None
    with transaction.atomic():  # no other worker can claim the new job before its creator
        generation, created = generation_request(
            pipeline=pipeline,
            prompt=prompt,
            idempotency_key=idempotency_key,
            requested_by=requested_by,
            backend=backend,
        )
        if not (created and claim_for is not None):
            return generation, created
        claimed = generation_take(
            queryset=remote_jobs(), generation_id=generation.pk, lease=lease, worker=claim_for
        )
    return claimed or generation, created
