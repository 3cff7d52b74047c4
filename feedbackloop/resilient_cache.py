"""The site's Redis cache: an unreachable Redis is an empty cache instead of an error.

It also reuses its redis-py clients and counts hits in one round trip (for the API throttle).

The cache holds only what can be recomputed (sessions are also in the database; signed-in users
and their roles for 30 s; throttle counts), so while Redis is down a request should go on
without it: a read is a miss, a write is skipped and logged. The broker outage test
(tests/faults/test_broker_outage.py) posts a generation while Redis is down and expects a 201,
not a 500 from the throttle's cache.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
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


class ReusedRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client, keeping one redis.Redis per connection pool.

    Django builds a new redis.Redis for every cache call, and redis-py fills a table of ~170
    response callbacks in each: about 0.2 ms of CPU a call, four calls a review submission
    (measured by benchmarks/ratings_load.py's profile). A redis.Redis is safe to share between
    threads (each command takes a connection from the pool), so one per pool is enough.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    """django.core.cache.backends.redis.RedisCache whose reads miss and writes are skipped
    while Redis cannot be reached (incr/decr still raise: a counter must not pretend), and
    which reuses its redis-py clients (ReusedRedisCacheClient)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedRedisCacheClient

    def count_in_window(self, key: str, seconds: int) -> tuple[int, int]:
        """Count one more hit on a counter that lives ``seconds`` from its first hit.

        Returns (hits so far including this one, seconds until the counter resets), in one
        round trip (SET NX EX, INCR, TTL pipelined). While Redis is unreachable: (0, 0).
        """
        key = self.make_and_validate_key(key)
        try:
            client = self._cache.get_client(key, write=True)
            pipe = client.pipeline(transaction=False)
            pipe.set(key, 0, ex=seconds, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
            _, count, left = pipe.execute()
            if left < 0:
                # The counter expired between SET and INCR, and INCR made one without an
                # expiry: give it one, or it would never reset.
                client.expire(key, seconds)
                left = seconds
        except UNREACHABLE as exc:
            logger.warning("cache unreachable, count_in_window skipped: %s", exc)
            return 0, 0
        return int(count), max(int(left), 0)


for _name in FALLBACKS:
    setattr(ResilientRedisCache, _name, _degrade(_name, getattr(RedisCache, _name)))
