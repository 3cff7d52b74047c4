"""Real processes for the fault tests: Celery workers, celery beat, gunicorn and a Redis server.

Every process runs the site's own code against the test database (a real PostgreSQL) with the
fault-test settings below, on queues of its own (a namespace), so that nothing else on a shared
Redis takes the test's messages. Each process starts in its own session, so a test can kill a
worker's pool process alone, or the worker's whole process group at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]

# The bounds below follow from these: a render whose process died is taken up again once its
# lease (6 s) runs out and the reconciler (every 2 s) or the task's own retry notices.
FAULT_SETTINGS = {
    "GENERATION_LEASE_SECONDS": "6",
    "GENERATION_HEARTBEAT_SECONDS": "0.25",
    "RECONCILE_EVERY_SECONDS": "2",
    "GENERATION_REDISPATCH_SECONDS": "10",
    "GENERATION_MAX_ATTEMPTS": "3",
    "METRICS_OCR_ENABLED": "false",
    "LITTER_MAX_AGE_SECONDS": "3600",
}

# A render of about 2 s on a quiet 2-core machine (5-10 s on a busy one), with a heartbeat every
# 0.25 s: long enough to be seen, and killed, in the middle.
SLOW_RENDER = {
    "width": 320,
    "height": 180,
    "fps": 24,
    "seconds_per_scene": 4.0,
    "transition_seconds": 0.4,
    "preset": "medium",
    "model_variant": "hq",
}
# Well under a second.
QUICK_RENDER = {
    "width": 192,
    "height": 108,
    "fps": 12,
    "seconds_per_scene": 0.75,
    "transition_seconds": 0.2,
    "preset": "ultrafast",
    "model_variant": "draft",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    ready_marker: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(
            lambda: self.ready_marker in self.text() or not self.alive(),
            timeout,
            f"{self.name} to be ready",
        )
        assert self.alive(), f"{self.name} died at start:\n{self.text()[-3000:]}"

    def kill_group(self) -> None:
        """SIGKILL the process and everything it started (its session), as a host crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


@dataclass
class RedisServer:
    """A redis-server of the test's own, on its own port, without persistence."""

    port: int
    log: Path
    popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.popen = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self.ping, 10, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_connect_timeout=2)

    def stop(self) -> None:
        """Gone at once, with whatever it held (no persistence): a crash or a restart."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self.popen = None


@dataclass
class Stack:
    """The processes of one test. ``env`` is what every process gets."""

    tmp: Path
    database_url: str
    redis_url: str
    media_root: Path
    namespace: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:8]}-")
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    @property
    def upload_dir(self) -> Path:
        return self.tmp / "uploads"

    def queue(self, name: str) -> str:
        return f"{self.namespace}{name}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "feedbackloop.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "MEDIA_ROOT": str(self.media_root),
            "FEEDBACKLOOP_VAR_DIR": str(self.tmp / "var"),
            "FILE_UPLOAD_TEMP_DIR": str(self.upload_dir),
            "CELERY_QUEUE_NAMESPACE": self.namespace,
            # Production-like: no debug pages, a real secret (TLS is the proxy's: the tests send
            # X-Forwarded-Proto as nginx would).
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "fault-tests-" + uuid.uuid4().hex * 2,
            "PYTHONUNBUFFERED": "1",
            **FAULT_SETTINGS,
            **self.extra_env,
        }

    def _start(self, name: str, command: list[str], ready_marker: str = "") -> Proc:
        log = self.tmp / f"{name}.log"
        popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env(),
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log, ready_marker)
        self.procs.append(proc)
        return proc

    def worker(
        self, name: str, queues: list[str], *, pool: str = "prefork", wait: bool = True
    ) -> Proc:
        """A Celery worker on the namespaced ``queues``; prefork with one pool process (the
        process that runs the task is then the worker's only child). Without ``wait``, call
        ``wait_ready`` once everything is started (they start side by side)."""
        proc = self._start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "feedbackloop",
                "worker",
                "--loglevel=INFO",
                "-Q",
                ",".join(self.queue(q) for q in queues),
                "--pool",
                pool,
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{self.namespace}{name}-{uuid.uuid4().hex[:4]}@%h",
            ],
            ready_marker=" ready.",
        )
        if wait:
            proc.wait_ready()
        return proc

    def wait_ready(self) -> None:
        for proc in self.procs:
            proc.wait_ready()

    def beat(self, *, wait: bool = True) -> Proc:
        """celery beat with the site's database scheduler (django-celery-beat)."""
        proc = self._start(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "feedbackloop",
                "beat",
                "--loglevel=INFO",
                "--pidfile",
                str(self.tmp / "beat.pid"),
                "--schedule",
                str(self.tmp / "beat-schedule"),
            ],
            ready_marker="beat: Starting",
        )
        if wait:
            proc.wait_ready()
        return proc

    def web(self) -> tuple[Proc, str]:
        """gunicorn serving the site (one sync worker, as many small deployments run)."""
        port = free_port()
        proc = self._start(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "feedbackloop.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--timeout",
                "60",
                "--access-logfile",
                "-",
            ],
        )
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert proc.alive(), f"gunicorn died:\n{proc.text()[-3000:]}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(answers, 60, "gunicorn to listen")
        return proc, base

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                proc.kill_group()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.text()[-4000:]}" for p in self.procs)

    def count_in_logs(self, pattern: str) -> int:
        return sum(len(re.findall(pattern, p.text())) for p in self.procs)


def forget_namespace(redis_url: str, namespace: str) -> None:
    """Remove the test's queues, bindings and unacknowledged messages from a shared Redis."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        for pattern in (f"{namespace}*", f"_kombu.binding*.{namespace}*"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)
        for tag, raw in client.hgetall("unacked").items():
            try:
                _message, _exchange, routing_key = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if str(routing_key).startswith(namespace):
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    except redis.RedisError:
        pass


def iter_media(media_root: Path, generation_id: Any) -> Iterator[Path]:
    """Every file in media that belongs to a generation (video, poster, partial renders)."""
    folder = media_root / "generations"
    if folder.is_dir():
        for path in folder.iterdir():
            if str(generation_id) in path.name:
                yield path
