"""End to end over real HTTP: a site on a free port, examples/remote_worker.py draining its queue.

The site runs as `manage.py runserver` in a subprocess with its own SQLite file, media folder
and eager Celery (so the server's metrics are computed in the web process). Two workers run at
once against four jobs; then the videos, the server's and the workers' metrics, and a
reviewer's feedback are checked through the API. The same site also takes a burst of
concurrent creates with one Idempotency-Key (on an SQLite file, as in the embedded default).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest
import requests
from feedbackloop_client import ApiError, FeedbackLoopClient

from tests.live_site import PYTHON, REVIEWER, ROOT, live_site

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
from feedbackloop.config import BUILTIN_ENTRY
from pipelines.builtin.declaration import DECLARATION
from pipelines.services.registration import pipeline_register
entry = {{k: v for k, v in BUILTIN_ENTRY.items() if k != "declaration"}}
pipeline_register(parameters=DECLARATION, registered_by="e2e", initial_params={TINY!r}, **entry)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict]:
    with live_site(tmp_path_factory.mktemp("site"), SETUP) as live:
        yield {
            "url": live.url,
            "key": live.worker_token("e2e-worker", "builtin"),
            "env": live.env,
            "media": live.media,
            "log": live.log,
        }


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
    queued = [api.queue_generation(p, pipeline="builtin")["id"] for p in prompts]

    counted = run_worker(site, "--max-jobs", "2")
    idler = run_worker(site, "--idle-exit", "5")
    outputs = []
    for worker in (counted, idler):
        out, _ = worker.communicate(timeout=600)
        outputs.append(out)
        assert worker.returncode == 0, out[-3000:]
    assert "2 job(s) done" in outputs[0]
    assert "configuration: builtin r1 (draft)" in outputs[0]

    finished = api.generations(status="succeeded", backend="remote", pipeline="builtin")
    assert sorted(g["id"] for g in finished["results"]) == sorted(queued), outputs
    for generation_id in queued:
        generation = api.generation(generation_id)
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

    reviewer = FeedbackLoopClient(site["url"], username=REVIEWER[0], password=REVIEWER[1])
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
    assert api.get_improvement_log()[0]["number"] == 1


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
    matching = FeedbackLoopClient(site["url"], token=site["key"]).generations(q="Exactly once")
    assert matching["count"] == 1
