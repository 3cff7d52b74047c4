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


def test_a_hit_counter_allows_while_redis_is_unreachable(unreachable):
    assert unreachable.count_in_window("throttle_user_u1:n", 60) == (0, 0)


@pytest.fixture
def reachable() -> ResilientRedisCache:
    """The shared Redis (REDIS_URL), under a key prefix of this test's own."""
    import os
    import uuid

    from tests.conftest import skip_or_fail

    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL")
    cache = ResilientRedisCache(url, {"KEY_PREFIX": f"test-{uuid.uuid4().hex}"})
    yield cache
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{cache.key_prefix}*"))
    if keys:
        client.delete(*keys)


def test_one_redis_client_serves_every_call(reachable):
    reachable.set("a", 1, 30)
    assert reachable.get("a") == 1
    assert reachable._cache.get_client() is reachable._cache.get_client(write=True)


def test_a_hit_counter_counts_from_its_first_hit_and_resets_after_its_period(reachable):
    import time

    assert [reachable.count_in_window("k", 1)[0] for _ in range(3)] == [1, 2, 3]
    assert reachable.count_in_window("other", 1)[0] == 1
    _, seconds_left = reachable.count_in_window("k", 1)
    assert 0 <= seconds_left <= 1
    time.sleep(1.2)
    assert reachable.count_in_window("k", 1)[0] == 1


def test_a_hit_counter_left_without_an_expiry_gets_one(reachable):
    client = reachable._cache.get_client(write=True)
    client.set(reachable.make_and_validate_key("k"), 5)  # as if INCR had re-created it
    assert reachable.count_in_window("k", 30) == (6, 30)
    assert 0 < client.ttl(reachable.make_and_validate_key("k")) <= 30
