"""End to end over real HTTP: a site on a free port, examples/remote_worker.py draining its queue.

The site runs as `manage.py runserver` in a subprocess with its own SQLite file, media folder
and eager Celery (so the server's metrics are computed in the web process). Two workers run at
once against four jobs; then the videos, the server's and the workers' metrics, and a
reviewer's feedback are checked through the API. The same site also takes a burst of
concurrent creates with one Idempotency-Key (on an SQLite file, as in the embedded default).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from feedbackloop.client import ApiError, FeedbackLoopClient

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TINY = {
    "width": 192,
    "height": 108,
    "fps": 10,
    "seconds_per_scene": 0.6,
    "transition_seconds": 0.2,
    "preset": "ultrafast",
    "model_variant": "draft",
}
SETUP = f"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from generation.services import revision_ensure_active
revision_ensure_active(params={TINY!r})
reviewer = get_user_model().objects.create_user("rita", password="rita-pass-123")
reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
"""


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


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("site")
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
        METRICS_OCR_ENABLED="false",  # text fidelity by OCR is slow and not what this tests
        API_THROTTLE_WORKER="6000/min",
        PYTHONUNBUFFERED="1",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", SETUP)
    key = manage(env, "create_worker_token", "e2e-worker").strip()
    port = free_port()
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the site did not start"
            time.sleep(0.3)
        yield {
            "url": url,
            "key": key,
            "env": env,
            "media": folder / "media",
            "log": folder / "server.log",
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def run_worker(site: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            PYTHON,
            "examples/remote_worker.py",
            "--url",
            site["url"],
            "--token",
            site["key"],
            "--poll",
            "0.5",
            *args,
        ],
        cwd=ROOT,
        env=site["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_remote_workers_drain_the_queue_and_everything_arrives(site):
    api = FeedbackLoopClient(site["url"], token=site["key"])
    prompts = [
        "Harbour traffic briefing. Ships up. Delays down.",
        "Tram ridership update. Line 4 grows. Night trams start.",
        "Water savings explainer. Short showers. Fix leaks.",
        "Budget overview. Schools first. Roads second.",
    ]
    queued = [api.create_generation(p)["id"] for p in prompts]

    counted = run_worker(site, "--max-jobs", "2")
    idler = run_worker(site, "--idle-exit", "5")
    outputs = []
    for worker in (counted, idler):
        out, _ = worker.communicate(timeout=600)
        outputs.append(out)
        assert worker.returncode == 0, out[-3000:]
    assert "2 job(s) done" in outputs[0]
    assert "configuration: r1 (draft)" in outputs[0]

    finished = api.list_generations(status="succeeded", backend="remote")
    assert sorted(g["id"] for g in finished["results"]) == sorted(queued), outputs
    for generation_id in queued:
        generation = api.get_generation(generation_id)
        assert generation["attempts"] == 1  # nobody took a job someone else held
        assert generation["claimed_by"] == "e2e-worker"
        assert generation["codec"] == "h264" and generation["width"] == 192
        assert generation["duration_s"] > 0 and generation["generation_seconds"] > 0
        assert generation["script"]["scenes"], "the worker uploads the script it rendered"
        video = site["media"] / "generations" / f"{generation_id}.mp4"
        assert video.stat().st_size == generation["size_bytes"]
        assert video.read_bytes()[4:8] == b"ftyp"
        server_metrics = generation["metrics"]["server"]
        assert len(server_metrics) > 5, "the server measured the upload"
        assert set(generation["metrics"]["worker"]) == {"render_seconds", "render_fps", "frames"}

    reviewer = FeedbackLoopClient(site["url"], username="rita", password="rita-pass-123")
    for rating, generation_id in enumerate(queued, start=2):
        review_id = reviewer.record_human_feedback(
            generation_id, {"visual_quality": rating, "overall_satisfaction": 4}, "seen"
        )
        assert review_id
    summary = reviewer.get_feedback_summary()
    assert summary["total_reviews"] == 4
    assert summary["avg_visual_quality"] == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert summary["generations_by_status"]["succeeded"] == 4
    assert api.get_feedback_summary() == summary  # the worker reads the same summary
    with pytest.raises(ApiError) as refused:
        api.record_human_feedback(queued[0], {"visual_quality": 1})
    assert refused.value.status == 403
    assert api.get_improvements()[0]["number"] == 1


def test_concurrent_creates_with_one_key_make_one_generation(site):
    statuses: list[int] = []
    ids: set[str] = set()
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        response = requests.post(
            f"{site['url']}/api/v1/generations/",
            json={"prompt": "Exactly once"},
            headers={"Authorization": f"Token {site['key']}", "Idempotency-Key": "burst-1"},
            timeout=60,
        )
        statuses.append(response.status_code)
        ids.add(response.json()["id"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [201], site["log"].read_text()[-3000:]
    assert len(ids) == 1
    matching = FeedbackLoopClient(site["url"], token=site["key"]).list_generations(q="Exactly once")
    assert matching["count"] == 1
