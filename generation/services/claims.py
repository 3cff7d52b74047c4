"""Taking a waiting generation: the conditional UPDATE that decides who runs it.

A generation is waiting when it is queued, or running under a lease that expired (its runner
stopped heartbeating: a worker died, a pool process was killed). Of two takers racing for one
row exactly one UPDATE matches; the other gets None. Every take sets a new ``lease_id``, so a
runner that lost its lease can never finish the generation someone else now holds.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from generation.models import SERVER_BACKEND, Generation

G = Generation.Status


def waiting(queryset: QuerySet[Generation], now: Any) -> QuerySet[Generation]:
    return queryset.filter(Q(status=G.QUEUED) | Q(status=G.RUNNING, lease_expires_at__lt=now))


def server_generations() -> QuerySet[Generation]:
    """Generations the site's own workers render (the pipeline's in-process renderer)."""
    return Generation.objects.filter(backend=SERVER_BACKEND)


def remote_jobs() -> QuerySet[Generation]:
    """Generations remote workers make through the API."""
    return Generation.objects.exclude(backend=SERVER_BACKEND)


def generation_take(
    *,
    queryset: QuerySet[Generation],
    generation_id: Any,
    lease: timedelta,
    worker: Any = None,
    max_attempts: int | None = None,
) -> Generation | None:
    """Lease a waiting generation of ``queryset``; None if someone else took it first.

    With ``max_attempts``, a run whose lease expired on its last allowed attempt is not taken
    again (it is to be failed with the reason, see rendering.stalled_render_fail).

    ``queryset`` may filter on the generation's own columns only: a filter through a relation
    makes the UPDATE "pk IN (subquery)", whose conditions PostgreSQL does not re-check on a row
    another transaction has just changed, so two takers could both win.
    """
    now = timezone.now()
    candidates = waiting(queryset, now).filter(pk=generation_id)
    if max_attempts is not None:
        candidates = candidates.exclude(status=G.RUNNING, attempts__gte=max_attempts)
    won = candidates.update(
        status=G.RUNNING,
        lease_id=uuid.uuid4(),
        claimed_by=worker,
        lease_expires_at=now + lease,
        heartbeat_at=now,
        started_at=now,
        attempts=F("attempts") + 1,
        progress=0.0,
        error="",
    )
    if not won:
        return None
    return Generation.objects.select_related("revision__pipeline").get(pk=generation_id)
