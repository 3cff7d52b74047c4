"""A real Celery worker process on Redis takes a generation from queued to succeeded.

Needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL): the worker is a separate process, so it
must see committed rows in a real database server and take messages from a real broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from generation.models import Generation, MetricsRun
from generation.services.requests import generation_request
from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]


def _require_services() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL: set DATABASE_URL (the worker must share the test database)")
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at {url} is not answering: {exc}")


def _routes_changed(app) -> None:
    """Celery builds its router once per process: after an earlier send (another test's), a
    changed task_routes is only read by a new one."""
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()


@pytest.fixture
def worker(settings, tmp_path):
    _require_services()
    from feedbackloop.celery import app

    app.conf.task_always_eager = False
    db = settings.DATABASES["default"]
    database_url = (
        f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    # Queues of our own: no other worker on this broker can take the test's messages, and the
    # worker's own follow-up (metrics after a render) goes to the namespaced queue too.
    namespace = f"test-{uuid.uuid4().hex[:8]}-"
    queues = {name: f"{namespace}{name}" for name in ("generation", "metrics")}
    routes = dict(app.conf.task_routes)
    app.conf.task_routes = {
        "generation.tasks.generation_run_task": {"queue": queues["generation"]},
        "generation.tasks.metrics_compute_task": {"queue": queues["metrics"]},
    }
    _routes_changed(app)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "FEEDBACKLOOP_VAR_DIR": str(tmp_path / "var"),
        "METRICS_OCR_ENABLED": "false",
        "CELERY_QUEUE_NAMESPACE": namespace,
    }
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - open for the worker's lifetime
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "feedbackloop",
            "worker",
            "--loglevel=INFO",
            "-Q",
            ",".join(queues.values()),
            "--concurrency",
            "1",
            "--pool",
            "solo",
            "-n",
            f"{namespace}worker@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    app.conf.task_routes = routes
    _routes_changed(app)
    app.conf.task_always_eager = True
    print((tmp_path / "worker.log").read_text()[-3000:])


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_real_worker_on_redis_renders_a_queued_generation_and_measures_it(worker, active_revision):
    generation, _ = generation_request(
        pipeline=active_revision.pipeline, prompt="Through the real broker"
    )
    assert generation.status == Generation.Status.QUEUED
    deadline = time.time() + 120
    while time.time() < deadline:
        generation.refresh_from_db()
        run = MetricsRun.objects.filter(generation=generation).first()
        if generation.status == Generation.Status.FAILED:
            pytest.fail(f"generation failed: {generation.error}")
        if run is not None and run.status != MetricsRun.Status.RUNNING:
            break
        assert worker.poll() is None, "the worker process died"
        time.sleep(0.5)
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.attempts == 1 and generation.generation_seconds > 0
    assert Path(generation.video.path).stat().st_size == generation.size_bytes
    assert run is not None and run.status == MetricsRun.Status.SUCCEEDED, run and run.error
    assert generation.metrics.filter(name="visual_quality").exists()
