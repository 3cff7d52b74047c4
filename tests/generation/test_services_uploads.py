"""A worker's upload past a configured limit (width, height, frame rate, duration) is a 400 that
names the limit, and nothing is stored: no media file, no temporary file, the job still leased
and unfinished. The 7680×4320 upload of issue 11 is refused under the default limits."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from generation.models import Generation, MetricsRun
from generation.services.requests import job_request
from generation.services.tokens import worker_token_create

pytestmark = pytest.mark.django_db
SMALL = {  # 192×108 at 12 frames/s, a few seconds
    "width": 192,
    "height": 108,
    "fps": 12,
    "seconds_per_scene": 0.75,
    "transition_seconds": 0.2,
    "preset": "ultrafast",
    "model_variant": "draft",
}


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    from pipelines.builtin.renderer import render_video

    folder = tmp_path_factory.mktemp("videos")
    render_video(
        prompt="Limits of an upload",
        params=SMALL,
        output_path=folder / "small.mp4",
        poster_path=folder / "small.jpg",
    )
    return folder / "small.mp4"


@pytest.fixture(scope="module")
def eight_k_video(tmp_path_factory) -> Path:
    """Two black 7680×4320 frames: small on disk, 100 MB a frame once decoded."""
    path = tmp_path_factory.mktemp("videos") / "8k.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=2, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((4320, 7680, 3), np.uint8), format="rgb24")
        for index in range(2):
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def uploads(settings, tmp_path) -> Path:
    """Every upload spools to a temporary file in a folder of the test's own."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    return folder


@pytest.fixture
def leased_job(builtin_pipeline):
    token, key = worker_token_create(name="gpu-1", pipelines=["*"])
    job, _ = job_request(pipeline=builtin_pipeline, prompt="Upload me", claim_for=token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, job


def complete(client: APIClient, job: Generation, video: Path):
    with open(video, "rb") as fh:
        return client.post(
            f"/api/v1/jobs/{job.pk}/complete/",
            {"lease_id": str(job.lease_id), "video": fh},
            format="multipart",
        )


def assert_nothing_stored(job: Generation, media_root: Path, uploads: Path) -> None:
    folder = Path(media_root) / "generations"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert list(uploads.iterdir()) == []
    lease = job.lease_id
    job.refresh_from_db()
    assert job.status == Generation.Status.RUNNING and job.lease_id == lease
    assert not job.video and job.width is None
    assert not MetricsRun.objects.filter(generation=job).exists()


@pytest.mark.parametrize(
    ("setting", "limit", "named"),
    [
        ("UPLOAD_MAX_WIDTH", 160, "width is 192 pixels; the limit is 160"),
        ("UPLOAD_MAX_HEIGHT", 100, "height is 108 pixels; the limit is 100"),
        ("UPLOAD_MAX_FPS", 10.0, "fps is 12 frames/s; the limit is 10"),
        ("UPLOAD_MAX_DURATION_SECONDS", 1.0, "duration is"),
    ],
)
def test_an_upload_past_a_limit_is_400_naming_it_and_nothing_is_stored(
    leased_job, small_video, uploads, settings, setting, limit, named
):
    client, job = leased_job
    setattr(settings, setting, limit)
    response = complete(client, job, small_video)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "video_too_large"
    assert named in error["message"] and f"({setting})" in error["message"]
    assert_nothing_stored(job, settings.MEDIA_ROOT, uploads)


def test_the_same_upload_within_the_limits_is_accepted(leased_job, small_video, uploads):
    client, job = leased_job
    response = complete(client, job, small_video)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "succeeded" and (body["width"], body["height"]) == (192, 108)
    assert list(uploads.iterdir()) == []


def test_a_7680x4320_upload_is_refused_under_the_default_limits(
    leased_job, eight_k_video, uploads, settings
):
    client, job = leased_job
    assert (settings.UPLOAD_MAX_WIDTH, settings.UPLOAD_MAX_HEIGHT) == (3840, 2160)
    response = complete(client, job, eight_k_video)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "width is 7680 pixels; the limit is 3840 (UPLOAD_MAX_WIDTH)" in message
    assert_nothing_stored(job, settings.MEDIA_ROOT, uploads)
