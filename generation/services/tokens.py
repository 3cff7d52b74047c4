"""Worker API tokens: made (the key shown once), revoked, and touched when used."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from feedbackloop.actors import person_or_none
from feedbackloop.errors import Conflict, InvalidInput
from generation.models import WorkerToken

_PATTERN = re.compile(r"^[a-z0-9*?][a-z0-9_*?-]{0,63}$")


def _check_patterns(pipelines: Any) -> list[str]:
    if not isinstance(pipelines, (list, tuple)) or not pipelines:
        raise InvalidInput(
            "a worker token needs the pipelines it may serve: slugs or patterns such as "
            "'diffusers-*' ('*' for all)",
            code="invalid_pipelines",
        )
    bad = [p for p in pipelines if not isinstance(p, str) or not _PATTERN.match(p)]
    if bad:
        raise InvalidInput(f"not a pipeline slug or pattern: {bad!r}", code="invalid_pipelines")
    return list(dict.fromkeys(pipelines))


def worker_token_create(
    *, name: str, pipelines: list[str], created_by: Any = None
) -> tuple[WorkerToken, str]:
    """Make a worker's API token; returns (token, key). The key is not stored: show it once."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 64:
        raise InvalidInput("a worker token needs a name of 1 to 64 characters", code="invalid_name")
    patterns = _check_patterns(pipelines)
    key = WorkerToken.KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = WorkerToken.objects.create(
                name=name,
                prefix=key[:12],
                key_hash=WorkerToken.hash_key(key),
                pipelines=patterns,
                created_by=person_or_none(created_by),
            )
    except IntegrityError as exc:
        raise Conflict(
            f"worker {name!r} already has a live token; revoke it first", code="token_name_taken"
        ) from exc
    return token, key


def worker_token_revoke(*, token: WorkerToken) -> WorkerToken:
    WorkerToken.objects.filter(pk=token.pk, revoked=False).update(
        revoked=True, revoked_at=timezone.now()
    )
    token.refresh_from_db()
    return token


def worker_token_touch(*, token: WorkerToken) -> None:
    """Record that the token was used; at most one write a minute, since workers poll often."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < timedelta(minutes=1):
        return
    WorkerToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
