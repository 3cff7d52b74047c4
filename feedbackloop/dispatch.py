"""Handing a task to the broker after the transaction commits, without failing the request.

When the broker is down (Redis restarting, a network blip) the write that wanted the task is
already committed; raising then would answer 500 for a request whose row exists. So a failed
publish is logged and left to the reconciler, which finds the rows whose task never went out
(e.g. a queued generation with no ``dispatched_at``) and dispatches them again once the broker is
back: the database row is the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def _broker_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError

    errors: list[type[BaseException]] = [OperationalError, ConnectionError, TimeoutError]
    try:
        from redis.exceptions import RedisError

        errors.append(RedisError)
    except ImportError:  # pragma: no cover - redis is a dependency of celery[redis]
        pass
    return tuple(errors)


def send(task: Any, *args: Any, on_sent: Callable[[], None] | None = None) -> bool:
    """Publish ``task(*args)`` now; False (logged) when the broker cannot take it."""
    try:
        task.apply_async(args=args, retry=True, retry_policy=settings.CELERY_PUBLISH_RETRY_POLICY)
    except _broker_errors() as exc:
        logger.warning(
            "broker unavailable, %s(%s) left to the reconciler: %s", task.name, args, exc
        )
        return False
    if on_sent is not None:
        on_sent()
    return True


def send_on_commit(task: Any, *args: Any, on_sent: Callable[[], None] | None = None) -> None:
    """Publish once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: send(task, *args, on_sent=on_sent))
