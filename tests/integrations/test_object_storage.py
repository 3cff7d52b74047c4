"""Shared media in S3-compatible object storage, against a real S3 server on a free port
(moto's standalone server, started here and stopped afterwards).

The end-to-end test runs the site as its own process (tests/live_site.py) with
MEDIA_STORAGE=s3, and a worker as another process (s3_worker.py) in a folder of its own, with no
access to the site's media folder: it uploads straight to the bucket with presigned URLs. The
site checks the upload, measures it through the storage API (its metrics read from the bucket)
and redirects reviewers' players to presigned URLs that the bucket serves with Range.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from django.test import Client
from rest_framework.test import APIClient

from generation.services.requests import generation_request
from generation.services.tokens import worker_token_create
from tests.factories import FinishedGenerationFactory, UserFactory
from tests.integrations.conftest import free_port
from tests.live_site import REVIEWER, live_site

HERE = Path(__file__).resolve().parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SETUP = """
from feedbackloop.config import BUILTIN_ENTRY
from pipelines.builtin.declaration import DECLARATION
from pipelines.services.registration import pipeline_register
entry = {k: v for k, v in BUILTIN_ENTRY.items() if k != "declaration"}
pipeline_register(parameters=DECLARATION, registered_by="s3-test", **entry)
"""


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(s3_endpoint) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    listing = s3_client(endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def run_worker(site, key: str, *flags: str, cwd: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TMPDIR": str(cwd)}
    done = subprocess.run(
        [sys.executable, str(HERE / "s3_worker.py"), site.url, key, *flags],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def s3_site(tmp_path_factory, s3_endpoint) -> Iterator:
    bucket = f"site-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    with live_site(
        tmp_path_factory.mktemp("s3-site"),
        SETUP,
        MEDIA_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3_endpoint,
        AWS_S3_REGION_NAME="us-east-1",
        AWS_S3_ADDRESSING_STYLE="path",
        **CREDENTIALS,
    ) as site:
        site.bucket = bucket
        site.key = site.worker_token("far-worker", "builtin")
        yield site


def signed_in(site, username: str, password: str) -> requests.Session:
    """A browser-like session of a person on the site (the login form with its CSRF token)."""
    session = requests.Session()
    login = f"{site.url}/accounts/login/"
    session.get(login, timeout=30).raise_for_status()
    response = session.post(
        login,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[:500]
    return session


def generation_of(site, generation_id: str) -> dict:
    response = requests.get(
        f"{site.url}/api/v1/generations/{generation_id}/",
        headers={"Authorization": f"Token {site.key}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def queue_job(site, prompt: str) -> str:
    response = requests.post(
        f"{site.url}/api/v1/generations/",
        json={"prompt": prompt, "backend": "remote"},
        headers={"Authorization": f"Token {site.key}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_worker_uploads_to_the_bucket_and_reviewers_stream_it_with_range(
    s3_site, s3_endpoint, tmp_path
):
    job = queue_job(s3_site, "Harbour traffic, from a GPU far away")
    result = run_worker(s3_site, s3_site.key, cwd=tmp_path)

    assert result["put"] == [200, 200]
    assert result["video_url_host"] == s3_endpoint.split("/")[2], "the bytes went to the bucket"
    assert result["status"] == 200, result["body"]
    body = result["body"]
    assert body["id"] == job and body["status"] == "succeeded"
    assert (body["width"], body["height"], body["codec"]) == (96, 64, "h264")
    assert body["size_bytes"] == result["video_bytes"]
    stored = keys(s3_endpoint, s3_site.bucket)
    assert stored == [f"generations/{job}.mp4", f"generations/{job}.png"]  # staging removed
    assert not any(p.is_file() for p in s3_site.media.rglob("*")), "nothing on the web host"

    # The server measured the video, reading it from the bucket through the storage API.
    assert len(generation_of(s3_site, job)["metrics"]["server"]) > 5

    reviewer = signed_in(s3_site, *REVIEWER)
    player = reviewer.get(f"{s3_site.url}/videos/{job}.mp4", allow_redirects=False)
    assert player.status_code == 302
    presigned = player.headers["Location"]
    assert presigned.startswith(f"{s3_endpoint}/{s3_site.bucket}/generations/{job}.mp4?")
    assert "X-Amz-Signature=" in presigned
    whole = requests.get(presigned, timeout=30)
    part = requests.get(presigned, headers={"Range": "bytes=100-1099"}, timeout=30)
    assert part.status_code == 206 and part.content == whole.content[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(whole.content)}"
    anonymous = requests.get(f"{s3_site.url}/videos/{job}.mp4", allow_redirects=False, timeout=30)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["Location"]


def test_a_staged_object_that_is_not_a_video_is_refused_and_removed(s3_site, s3_endpoint, tmp_path):
    job = queue_job(s3_site, "This one goes wrong")
    result = run_worker(s3_site, s3_site.key, "--not-a-video", cwd=tmp_path)
    assert result["put"] == [200, 200]
    assert result["status"] == 400
    assert "not a readable video" in result["body"]["error"]["message"]
    assert keys(s3_endpoint, s3_site.bucket, f"uploads/{job}/") == []
    assert keys(s3_endpoint, s3_site.bucket, f"generations/{job}") == []
    assert generation_of(s3_site, job)["status"] == "running"  # still the worker's to finish


def test_the_multipart_complete_still_works_and_stores_in_the_bucket(
    s3_site, s3_endpoint, tmp_path
):
    job = queue_job(s3_site, "Uploaded the old way")
    result = run_worker(s3_site, s3_site.key, "--multipart", cwd=tmp_path)
    assert result["status"] == 200 and result["body"]["status"] == "succeeded"
    assert keys(s3_endpoint, s3_site.bucket, f"generations/{job}") == [f"generations/{job}.mp4"]


def test_the_client_package_uploads_straight_to_the_bucket(s3_site, s3_endpoint, tmp_path):
    from feedbackloop_client import FeedbackLoopClient
    from PIL import Image

    from tests.integrations.s3_worker import encode

    job = queue_job(s3_site, "Completed by the client package")
    client = FeedbackLoopClient(s3_site.url, s3_site.key)
    claimed = client.claim()
    assert claimed is not None and claimed.id == job
    video, poster = tmp_path / "out.mp4", tmp_path / "out.png"
    encode(video)
    Image.new("RGB", (96, 64), (10, 120, 200)).save(poster)

    generation = client.complete(
        claimed.id, claimed.lease_id, video, poster_path=poster, generation_seconds=2.0, direct=True
    )

    assert generation["status"] == "succeeded" and generation["size_bytes"] == video.stat().st_size
    stored = keys(s3_endpoint, s3_site.bucket, f"generations/{job}")
    assert stored == [f"generations/{job}.mp4", f"generations/{job}.png"]
    assert keys(s3_endpoint, s3_site.bucket, f"uploads/{job}/") == []
    assert not any(p.is_file() for p in s3_site.media.rglob("*")), "nothing on the web host"


# --- in-process, with the storage pointed at the same server ------------------------------------


@pytest.fixture
def s3_storage(settings, s3_endpoint, bucket):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "addressing_style": "path",
                "signature_version": "s3v4",
                "querystring_expire": 600,
                "default_acl": None,
            },
        },
    }
    return bucket


@pytest.mark.django_db
def test_exports_name_videos_by_their_bucket_uri(s3_storage, active_revision):
    from integrations.exports.rows import video_uri

    assert video_uri("generations/x.mp4") == f"s3://{s3_storage}/generations/x.mp4"


@pytest.mark.django_db
def test_upload_urls_are_refused_on_local_disk(builtin_pipeline):
    _token, key = worker_token_create(name="local-worker", pipelines=["*"])
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="Local", backend="remote")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    claimed = api.post("/api/v1/jobs/claim/", {}, format="json").json()
    response = api.post(
        f"/api/v1/jobs/{generation.pk}/upload-url/",
        {"lease_id": claimed["lease"]["lease_id"]},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "direct_upload_unavailable"


@pytest.mark.django_db
def test_the_player_of_a_generation_on_local_disk_is_not_redirected(active_revision, settings):
    generation = FinishedGenerationFactory(revision=active_revision)
    path = Path(settings.MEDIA_ROOT) / generation.video.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" * 2048)
    client = Client()
    client.force_login(UserFactory(username="staffer", is_staff=True))
    response = client.get(f"/videos/{generation.pk}.mp4", HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206 and response["Content-Range"] == "bytes 0-99/2048"
