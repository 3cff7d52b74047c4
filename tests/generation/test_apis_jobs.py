"""Leased jobs over the API: claim, heartbeat, complete with an upload, fail, expiry."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from generation.models import Generation, MetricsRun, MetricValue
from generation.services.leases import job_claim
from generation.services.requests import generation_request
from generation.services.tokens import worker_token_create
from pipelines.builtin.renderer import render_video
from pipelines.selectors import pipeline_default

pytestmark = pytest.mark.django_db

TINY = {
    "width": 160,
    "height": 90,
    "fps": 8,
    "seconds_per_scene": 0.5,
    "transition_seconds": 0.1,
    "preset": "ultrafast",
    "model_variant": "draft",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[bytes, bytes, dict]:
    """A real, small video and poster from the built-in renderer: what a worker uploads."""
    folder = tmp_path_factory.mktemp("render")
    result = render_video(
        prompt="Quarterly ridership update. Buses up. Trams steady.",
        params=TINY,
        output_path=folder / "v.mp4",
        poster_path=folder / "p.jpg",
    )
    return (
        Path(result.output_path).read_bytes(),
        Path(result.poster_path).read_bytes(),
        result.script.to_dict(),
    )


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


class Clock:
    """Moves the server's clock forward, so leases really expire."""

    def __init__(self, monkeypatch) -> None:
        self.offset = timedelta()
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


def worker_client(name: str, pipelines: tuple[str, ...] = ("*",)) -> APIClient:
    token, key = worker_token_create(name=name, pipelines=list(pipelines))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.token = token
    return client


@pytest.fixture
def worker(db) -> APIClient:
    return worker_client("gpu-1")


@pytest.fixture
def other_worker(db) -> APIClient:
    return worker_client("gpu-2")


def queue_job(prompt: str = "A briefing on tram lines") -> Generation:
    generation, _ = generation_request(pipeline=pipeline_default(), prompt=prompt, backend="remote")
    return generation


def claim(client: APIClient, **body) -> dict:
    response = client.post("/api/v1/jobs/claim/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def upload(client: APIClient, job: dict, video: bytes, **extra):
    data = {
        "lease_id": job["lease"]["lease_id"],
        "video": SimpleUploadedFile("out.mp4", video, content_type="video/mp4"),
        **extra,
    }
    return client.post(f"/api/v1/jobs/{job['id']}/complete/", data, format="multipart")


def stored_videos() -> list[str]:
    if not default_storage.exists("generations"):
        return []
    return default_storage.listdir("generations")[1]


def test_claim_hands_out_the_oldest_queued_job_with_a_lease(active_revision, worker, clock):
    first = queue_job("first")
    clock.advance(1)
    queue_job("second")
    job = claim(worker, lease_seconds=60)
    assert job["id"] == str(first.id)
    assert job["status"] == "running" and job["attempts"] == 1
    assert job["params"] == active_revision.params and job["revision"] == active_revision.number
    assert job["lease"]["lease_id"]
    expires = job["lease"]["lease_expires_at"]
    assert timezone.now() + timedelta(seconds=55) < timezone.datetime.fromisoformat(expires)
    assert job["claimed_by"] == "gpu-1"


def test_claim_with_an_empty_queue_is_204(active_revision, worker):
    response = worker.post("/api/v1/jobs/claim/", {}, format="json")
    assert response.status_code == 204 and response.content == b""


def test_builtin_generations_are_never_handed_to_workers(active_revision, worker):
    generation_request(pipeline=pipeline_default(), prompt="rendered on the server", enqueue=False)
    assert worker.post("/api/v1/jobs/claim/", {}, format="json").status_code == 204


def test_a_claimed_job_is_not_handed_out_twice(active_revision, worker, other_worker):
    queue_job()
    claim(worker)
    assert other_worker.post("/api/v1/jobs/claim/", {}, format="json").status_code == 204


def test_lease_seconds_outside_the_allowed_range_is_400(active_revision, worker, settings):
    queue_job()
    settings.API_JOB_LEASE_MAX_SECONDS = 300
    response = worker.post("/api/v1/jobs/claim/", {"lease_seconds": 301}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_lease_seconds"
    assert Generation.objects.get().status == "queued"


def test_heartbeat_extends_the_lease_and_records_progress(active_revision, worker, clock):
    queue_job()
    job = claim(worker, lease_seconds=30)
    clock.advance(20)
    response = worker.post(
        f"/api/v1/jobs/{job['id']}/heartbeat/",
        {"lease_id": job["lease"]["lease_id"], "progress": 0.5, "lease_seconds": 30},
        format="json",
    )
    assert response.status_code == 200
    clock.advance(20)  # 40 s after the claim: alive only thanks to the heartbeat
    generation = Generation.objects.get()
    assert generation.progress == 0.5 and generation.lease_expires_at > timezone.now()
    assert response.json()["lease"]["lease_id"] == job["lease"]["lease_id"]


def test_expired_lease_is_claimed_again_and_the_late_completion_is_409(
    active_revision, worker, other_worker, clock, rendered
):
    video, _, _ = rendered
    queue_job()
    first = claim(worker, lease_seconds=30)
    clock.advance(31)

    late_beat = worker.post(
        f"/api/v1/jobs/{first['id']}/heartbeat/",
        {"lease_id": first["lease"]["lease_id"]},
        format="json",
    )
    assert late_beat.status_code == 409
    assert late_beat.json()["error"]["code"] == "lease_expired"

    second = claim(other_worker, lease_seconds=30)
    assert second["id"] == first["id"] and second["attempts"] == 2
    assert second["lease"]["lease_id"] != first["lease"]["lease_id"]
    assert upload(other_worker, second, video).status_code == 200

    late = upload(worker, first, video)
    assert late.status_code == 409
    assert late.json()["error"]["code"] in {"lease_lost", "job_finished"}
    assert Generation.objects.filter(status="succeeded").count() == 1
    assert Generation.objects.get().claimed_by == other_worker.token
    assert len(stored_videos()) == 1


def test_completion_under_a_lease_that_expired_unclaimed_is_409(
    active_revision, worker, clock, rendered
):
    queue_job()
    job = claim(worker, lease_seconds=30)
    clock.advance(31)
    response = upload(worker, job, rendered[0])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "lease_expired"
    assert stored_videos() == []


def test_another_worker_cannot_use_a_lease_it_does_not_hold(
    active_revision, worker, other_worker, rendered
):
    queue_job()
    job = claim(worker)
    response = upload(other_worker, job, rendered[0])
    assert response.status_code == 409 and response.json()["error"]["code"] == "lease_lost"
    assert Generation.objects.get().status == "running"


def test_complete_stores_the_video_and_the_server_measures_it(
    active_revision, worker, rendered, django_capture_on_commit_callbacks
):
    video, poster, script = rendered
    queue_job()
    job = claim(worker)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            worker,
            job,
            video,
            poster=SimpleUploadedFile("p.jpg", poster, content_type="image/jpeg"),
            script='{"title": "Ridership", "scenes": []}',
            generation_seconds="1.5",
            cpu_seconds="1.2",
            peak_rss_bytes="1000000",
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "succeeded" and body["lease"] is None
    generation = Generation.objects.get()
    assert generation.video.name == f"generations/{generation.id}.mp4"
    assert generation.poster.name == f"generations/{generation.id}.jpg"
    assert default_storage.open(generation.video.name).read() == video
    assert (generation.width, generation.height, generation.fps) == (160, 90, 8)
    assert generation.codec == "h264" and generation.size_bytes == len(video)
    assert generation.duration_s == pytest.approx(script["scenes"][-1]["end_s"], abs=0.2)
    assert generation.script == {"title": "Ridership", "scenes": []}
    assert generation.generation_seconds == 1.5 and generation.peak_rss_bytes == 1_000_000
    assert MetricsRun.objects.get(generation=generation).status == "succeeded"
    assert MetricValue.objects.filter(generation=generation, source="server").count() > 5


def test_a_job_cannot_succeed_twice(active_revision, worker, rendered):
    queue_job()
    job = claim(worker)
    assert upload(worker, job, rendered[0]).status_code == 200
    again = upload(worker, job, rendered[0])
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert len(stored_videos()) == 1


def _audio_only_file(path: Path) -> bytes:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(8000) / 10) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def _png(path: Path) -> bytes:
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, "PNG")
    return path.read_bytes()


@pytest.mark.parametrize(
    "kind", ["text", "random_bytes", "truncated_mp4", "audio_only", "still_image", "empty"]
)
def test_an_upload_that_is_not_a_video_is_400_with_the_reason(
    active_revision, worker, rendered, kind, tmp_path
):
    contents = {
        "text": lambda: b"this is not a video\n" * 50,
        "random_bytes": lambda: np.random.default_rng(1).bytes(20_000),
        "truncated_mp4": lambda: rendered[0][:1500],
        "audio_only": lambda: _audio_only_file(tmp_path / "a.mp4"),
        "still_image": lambda: _png(tmp_path / "still.png"),
        "empty": lambda: b"",
    }[kind]()
    queue_job()
    job = claim(worker)
    response = upload(worker, job, contents)
    assert response.status_code == 400
    error = response.json()["error"]
    if kind == "empty":
        assert error["details"] == {"video": ["The submitted file is empty."]}
    else:
        assert error["code"] == "invalid_video"
        assert error["message"].startswith("the upload is not a readable video: ")
        assert len(error["message"]) > len("the upload is not a readable video: ") + 5
    assert Generation.objects.get().status == "running"  # the worker may still upload a good one
    assert stored_videos() == []


def test_a_poster_that_is_not_an_image_is_400(active_revision, worker, rendered):
    queue_job()
    job = claim(worker)
    response = upload(
        worker, job, rendered[0], poster=SimpleUploadedFile("p.jpg", b"nope", "image/jpeg")
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_poster"
    assert stored_videos() == []


def test_a_script_that_is_not_a_json_object_is_400(active_revision, worker, rendered):
    queue_job()
    job = claim(worker)
    response = upload(worker, job, rendered[0], script="[1, 2")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["script"] == ["script must be a JSON object"]


def test_an_upload_over_the_size_limit_is_413_by_content_length(active_revision, worker, settings):
    settings.API_MAX_UPLOAD_BYTES = 1000
    queue_job()
    job = claim(worker)
    response = upload(worker, job, b"\0" * (1024 * 1024 + 5000))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert stored_videos() == []


def test_an_upload_over_the_size_limit_is_413_by_file_size(
    active_revision, worker, rendered, settings
):
    settings.API_MAX_UPLOAD_BYTES = 1000
    queue_job()
    job = claim(worker)
    response = upload(worker, job, rendered[0])  # body far below the Content-Length margin
    assert len(rendered[0]) > 1000
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_a_lease_lost_during_the_upload_leaves_no_file_behind(
    active_revision, worker, rendered, clock, monkeypatch
):
    import videometrics

    real_probe = videometrics.probe

    def slow_probe(path):
        clock.advance(3600)  # the lease runs out while the server checks the video
        return real_probe(path)

    monkeypatch.setattr(videometrics, "probe", slow_probe)
    queue_job()
    job = claim(worker, lease_seconds=30)
    response = upload(worker, job, rendered[0])
    assert response.status_code == 409 and response.json()["error"]["code"] == "lease_expired"
    assert stored_videos() == []
    assert Generation.objects.get().status == "running"


def test_fail_marks_the_job_failed_with_the_workers_error(active_revision, worker):
    queue_job()
    job = claim(worker)
    response = worker.post(
        f"/api/v1/jobs/{job['id']}/fail/",
        {"lease_id": job["lease"]["lease_id"], "error": "CUDA out of memory"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["status"] == "failed"
    generation = Generation.objects.get()
    assert generation.error == "CUDA out of memory" and generation.finished_at is not None


def test_fail_with_requeue_puts_the_job_back_for_another_worker(
    active_revision, worker, other_worker
):
    queue_job()
    job = claim(worker)
    response = worker.post(
        f"/api/v1/jobs/{job['id']}/fail/",
        {"lease_id": job["lease"]["lease_id"], "error": "shutting down", "requeue": True},
        format="json",
    )
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert claim(other_worker)["id"] == job["id"]


def test_a_job_whose_lease_keeps_expiring_fails_after_the_last_attempt(
    active_revision, worker, clock, settings
):
    settings.API_JOB_MAX_ATTEMPTS = 2
    queue_job()
    claim(worker, lease_seconds=10)
    clock.advance(11)
    claim(worker, lease_seconds=10)
    clock.advance(11)
    assert worker.post("/api/v1/jobs/claim/", {}, format="json").status_code == 204
    generation = Generation.objects.get()
    assert generation.status == "failed" and "expired on all 2 attempts" in generation.error


def test_lease_operations_on_unknown_or_malformed_ids_are_404(active_revision, worker):
    lease = {"lease_id": "5b0a7c1e-0000-4000-8000-000000000000", "error": "x"}
    for job_id in ["not-a-uuid", "5b0a7c1e-0000-4000-8000-000000000000"]:
        for op in ["heartbeat", "fail"]:
            response = worker.post(f"/api/v1/jobs/{job_id}/{op}/", lease, format="json")
            assert response.status_code == 404, (job_id, op)
            assert response.json()["error"]["code"] == "unknown_generation"


def test_a_builtin_generation_is_not_a_job(active_revision, worker):
    generation, _ = generation_request(
        pipeline=pipeline_default(), prompt="server side", enqueue=False
    )
    response = worker.post(
        f"/api/v1/jobs/{generation.id}/heartbeat/",
        {"lease_id": "5b0a7c1e-0000-4000-8000-000000000000"},
        format="json",
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_job"


def test_a_malformed_lease_id_is_400(active_revision, worker):
    queue_job()
    job = claim(worker)
    response = worker.post(
        f"/api/v1/jobs/{job['id']}/heartbeat/", {"lease_id": "abc"}, format="json"
    )
    assert response.status_code == 400 and "lease_id" in response.json()["error"]["details"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="the in-memory SQLite test database (shared cache) answers 'table is locked' instead "
    "of waiting; tests/generation/test_remote_worker_e2e.py races a live server on an SQLite "
    "file instead",
)
def test_concurrent_claims_hand_each_job_to_exactly_one_worker(active_revision):
    jobs = {str(queue_job(f"job {i}").id) for i in range(6)}
    tokens = [worker_token_create(name=f"racer-{i}", pipelines=["*"])[0] for i in range(4)]
    claimed: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(tokens))

    def race(token) -> None:
        try:
            barrier.wait()
            while (job := job_claim(worker=token)) is not None:
                claimed.append(str(job.id))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(claimed) == sorted(jobs)  # every job once, none twice
    assert set(Generation.objects.values_list("attempts", flat=True)) == {1}


def test_a_completion_without_a_body_is_400_not_500(active_revision, worker):
    queue_job()
    job = claim(worker)
    response = worker.post(f"/api/v1/jobs/{job['id']}/complete/")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"lease_id", "video"}
