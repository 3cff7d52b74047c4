"""A real site on a free port for end-to-end tests of remote workers.

`manage.py runserver` in a subprocess with its own SQLite file, media folder and eager Celery
(so the server's metrics are computed in the web process, right after an upload). Nothing is
mocked: workers talk to it over HTTP as they would to a deployed site.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

REVIEWER = ("rita", "rita-pass-123")
MAKE_REVIEWER = f"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
reviewer = get_user_model().objects.create_user({REVIEWER[0]!r}, password={REVIEWER[1]!r})
reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
"""


@dataclass
class LiveSite:
    url: str
    env: dict[str, str]
    media: Path
    log: Path

    def manage(self, *args: str) -> str:
        return manage(self.env, *args)

    def worker_token(self, name: str, pipelines: str | None = None) -> str:
        extra = ["--pipelines", pipelines] if pipelines else []
        return self.manage("create_worker_token", name, *extra).strip()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@contextmanager
def live_site(folder: Path, setup: str = "", **settings: str) -> Iterator[LiveSite]:
    """Migrate a fresh database in ``folder``, run ``setup`` (Python, in `manage.py shell`)
    and the reviewer set-up, then serve until the block ends. ``settings`` are extra
    environment variables for the site."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
        FEEDBACKLOOP_VAR_DIR=str(folder / "var"),
        MEDIA_ROOT=str(folder / "media"),
        CELERY_TASK_ALWAYS_EAGER="true",
        METRICS_OCR_ENABLED="false",  # text fidelity by OCR is slow and not what these test
        API_THROTTLE_WORKER="6000/min",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", setup + MAKE_REVIEWER)
    port = free_port()
    site = LiveSite(
        url=f"http://127.0.0.1:{port}",
        env=env,
        media=folder / "media",
        log=folder / "server.log",
    )
    with open(site.log, "w") as log:
        server = subprocess.Popen(
            [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{site.url}/healthz", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                assert server.poll() is None, site.log_tail()
                assert time.monotonic() < deadline, "the site did not start"
                time.sleep(0.3)
            yield site
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
