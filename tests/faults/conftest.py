"""Fixtures of the fault tests: real processes on PostgreSQL and Redis (see stack.py).

Without PostgreSQL or Redis these tests skip with the reason; in CI (CI=true) that is a failure.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from django.db import connection

from tests.conftest import skip_or_fail
from tests.faults.stack import FAULT_SETTINGS, RedisServer, Stack, forget_namespace, free_port


def require_services() -> str:
    """The shared Redis URL; skips (fails in CI) without PostgreSQL and Redis."""
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL: set DATABASE_URL (the processes share the test database)")
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} is not answering: {exc}")
    return url


def database_url(settings: Any) -> str:
    db = settings.DATABASES["default"]
    return (
        f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def fault_settings(settings):
    """The test process uses the same settings as its worker processes."""
    for name, value in FAULT_SETTINGS.items():
        current = getattr(settings, name)
        setattr(settings, name, type(current)(value) if not isinstance(current, bool) else False)
    return settings


@pytest.fixture
def stack(transactional_db, fault_settings, tmp_path, request):
    shared_redis = require_services()
    from feedbackloop.celery import app

    app.conf.task_always_eager = False  # the tests' own sends go to the broker
    stack = Stack(
        tmp=tmp_path,
        database_url=database_url(fault_settings),
        redis_url=shared_redis,
        media_root=fault_settings.MEDIA_ROOT,
    )
    stack.upload_dir.mkdir(parents=True, exist_ok=True)
    fault_settings.FILE_UPLOAD_TEMP_DIR = str(stack.upload_dir)
    yield stack
    stack.stop_all()
    forget_namespace(stack.redis_url, stack.namespace)
    if shared_redis != stack.redis_url:
        forget_namespace(shared_redis, stack.namespace)
    # Shown by pytest when the test failed.
    print(stack.logs())


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (never the shared one: it is restarted)."""
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(port=free_port(), log=tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def reconciler_every_2s(stack, fault_settings):
    """The reconciler's beat schedule, made by the same helper as setup_site, on the test's
    namespaced default queue."""
    from feedbackloop.schedules import periodic_task_ensure

    fault_settings.CELERY_QUEUES_USED = {
        name: stack.queue(name) for name in ("generation", "metrics", "improver", "default")
    }
    periodic_task_ensure(
        name="reconciler: recover stuck generations and measurements, sweep litter",
        task="generation.tasks.reconcile_task",
        every_seconds=fault_settings.RECONCILE_EVERY_SECONDS,
        queue="default",
    )


class BrokerQueues:
    """The test process's own sends, routed to namespaced queues on the shared Redis, read back
    from Redis as (task name, args) pairs."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=2)
        self.namespace = namespace

    def sent(self, queue: str) -> list[tuple[str, list]]:
        import base64
        import json

        messages = []
        for raw in self.client.lrange(f"{self.namespace}{queue}", 0, -1):
            message = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            messages.append((message["headers"]["task"], args))
        return messages


@pytest.fixture
def broker_queues(fault_settings):
    """Sends from the test process go to a real Redis, on queues nobody consumes."""
    import uuid

    from feedbackloop.celery import app

    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} is not answering: {exc}")
    namespace = f"rules-{uuid.uuid4().hex[:8]}-"
    routes = app.conf.task_routes
    app.conf.task_always_eager = False
    app.conf.task_routes = {
        "generation.tasks.generation_run_task": {"queue": f"{namespace}generation"},
        "generation.tasks.metrics_compute_task": {"queue": f"{namespace}metrics"},
    }
    _routes_changed(app)
    yield BrokerQueues(url, namespace)
    app.conf.task_routes = routes
    _routes_changed(app)
    forget_namespace(url, namespace)


def _routes_changed(app: Any) -> None:
    # Celery prepares its route table and router once: make it read task_routes again.
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()
