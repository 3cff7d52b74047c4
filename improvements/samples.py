"""Sample videos of a proposal and its parent, made on demand for a fixed set of prompts, so
staff can watch what a change does before approving it.

The samples are ordinary generations of the two revisions (named by an idempotency key, so
asking twice queues nothing new); they run outside experiments and count in no arm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from generation.models import SERVER_BACKEND, Generation
from generation.services.requests import generation_request
from pipelines.models import ConfigRevision


@dataclass(frozen=True)
class SamplePair:
    prompt: str
    parent: Generation | None
    candidate: Generation | None

    @property
    def ready(self) -> bool:
        done = Generation.Status.SUCCEEDED
        return bool(
            self.parent and self.candidate and {self.parent.status, self.candidate.status} == {done}
        )


def _key(revision: ConfigRevision, index: int) -> str:
    return f"sample:{revision.pk}:{index}"


def samples_request(*, revision: ConfigRevision, actor: Any = None) -> int:
    """Queue the samples of ``revision`` and its parent that do not exist yet; returns how many
    were queued. Rendered by the site's workers, or by remote workers for a remote pipeline."""
    pipeline = revision.pipeline
    backend = SERVER_BACKEND if pipeline.renderer else "remote"
    queued = 0
    for who in (revision.parent, revision):
        if who is None:
            continue
        for index, prompt in enumerate(settings.PROPOSAL_SAMPLE_PROMPTS):
            _generation, created = generation_request(
                pipeline=pipeline,
                prompt=prompt,
                revision=who,
                idempotency_key=_key(who, index),
                requested_by=actor,
                backend=backend,
            )
            queued += created
    return queued


def samples_of(*, revision: ConfigRevision) -> list[SamplePair]:
    """The sample pairs (parent, proposal) per prompt, None where not requested yet."""
    keys = {
        _key(who, i): who.pk
        for who in (revision.parent, revision)
        if who is not None
        for i in range(len(settings.PROPOSAL_SAMPLE_PROMPTS))
    }
    found = {g.idempotency_key: g for g in Generation.objects.filter(idempotency_key__in=keys)}
    pairs = []
    for index, prompt in enumerate(settings.PROPOSAL_SAMPLE_PROMPTS):
        parent = found.get(_key(revision.parent, index)) if revision.parent else None
        pairs.append(SamplePair(prompt, parent, found.get(_key(revision, index))))
    return pairs
