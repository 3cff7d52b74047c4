"""While Redis is unreachable the cache is an empty cache, not an error (no server needed:
the cache points at a port where nothing listens)."""

from __future__ import annotations

import pytest

from feedbackloop.resilient_cache import ResilientRedisCache
from tests.integrations.conftest import free_port


@pytest.fixture
def unreachable() -> ResilientRedisCache:
    return ResilientRedisCache(
        f"redis://127.0.0.1:{free_port()}/0",
        {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}},
    )


def test_reads_miss_and_writes_are_skipped_while_redis_is_unreachable(unreachable, caplog):
    assert unreachable.get("k", "fallback") == "fallback"
    assert unreachable.get_many(["a", "b"]) == {}
    assert unreachable.has_key("k") is False
    assert unreachable.set("k", 1, 30) is None
    assert unreachable.add("k", 1) is False
    assert unreachable.delete("k") is False
    assert unreachable.set_many({"a": 1}) == ["a"]
    unreachable.delete_many(["a"])
    assert "cache unreachable" in caplog.text


def test_a_counter_does_not_pretend_while_redis_is_unreachable(unreachable):
    with pytest.raises(Exception, match="(?i)connect"):
        unreachable.incr("k")
