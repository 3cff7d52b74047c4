"""A Redis cache that treats an unreachable Redis as an empty cache instead of an error.

The cache holds only what can be recomputed (sessions are also in the database, roles for 30 s,
throttle counts), so while Redis is down a request should go on without it: a read is a miss,
a write is skipped and logged. The broker outage test (tests/faults/test_broker_outage.py)
posts a generation while Redis is down and expects a 201, not a 500 from the throttle's cache.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

# method -> what it answers while Redis is unreachable (called with the method's arguments)
FALLBACKS: dict[str, Callable[..., Any]] = {
    "get": lambda key, default=None, version=None: default,
    "get_many": lambda keys, version=None: {},
    "has_key": lambda key, version=None: False,
    "add": lambda *args, **kwargs: False,
    "set": lambda *args, **kwargs: None,
    "set_many": lambda data, timeout=None, version=None: list(data),
    "touch": lambda *args, **kwargs: False,
    "delete": lambda *args, **kwargs: False,
    "delete_many": lambda *args, **kwargs: None,
    "clear": lambda: None,
}


def _degrade(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    fallback = FALLBACKS[name]

    @functools.wraps(method)
    def call(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except UNREACHABLE as exc:
            logger.warning("cache unreachable, %s skipped: %s", name, exc)
            return fallback(*args, **kwargs)

    return call


class ResilientRedisCache(RedisCache):
    """django.core.cache.backends.redis.RedisCache whose reads miss and writes are skipped
    while Redis cannot be reached (incr/decr still raise: a counter must not pretend)."""


for _name in FALLBACKS:
    setattr(ResilientRedisCache, _name, _degrade(_name, getattr(RedisCache, _name)))
