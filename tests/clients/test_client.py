"""The client package (clients/python, feedbackloop_client): its requests and retries.

A tiny HTTP server in a thread plays the site, answering from a script of responses, so the
client's real requests code runs over a real socket. What the real site answers is checked by
tests/generation/test_remote_worker_e2e.py and tests/diffusers/.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from feedbackloop_client import (
    ApiError,
    ApiUnavailable,
    FeedbackLoopClient,
    Job,
    LeaseKeeper,
    LeaseLost,
)


class ScriptedSite:
    """Answers each request with the next (status, body, headers) and records what it got."""

    def __init__(self) -> None:
        self.script: list[tuple[int, object, dict[str, str]]] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                with site.lock:
                    site.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": self.rfile.read(length),
                        }
                    )
                    unscripted = (599, {"error": {"code": "unscripted", "message": "-"}}, {})
                    status, body, headers = site.script.pop(0) if site.script else unscripted
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status: int, body: object = None, **headers: str) -> None:
        with self.lock:
            self.script.append((status, body, headers))

    def body(self, index: int) -> object:
        return json.loads(self.requests[index]["body"])


@pytest.fixture
def site() -> Iterator[ScriptedSite]:
    site = ScriptedSite()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    yield site
    site.server.shutdown()
    site.server.server_close()


def client_for(site: ScriptedSite, **kwargs) -> FeedbackLoopClient:
    return FeedbackLoopClient(site.url, token="flw_test", backoff_seconds=0.01, **kwargs)


GENERATION = {
    "id": "g1",
    "prompt": "p",
    "pipeline": "diffusers-tiny",
    "params": {"num_inference_steps": 4},
    "revision": 1,
    "status": "queued",
}
LEASED = {**GENERATION, "status": "running", "lease": {"lease_id": "L1", "lease_expires_at": "t"}}
SPACE = {
    "type": "object",
    "properties": {"steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 4}},
}


def leased_job() -> Job:
    return Job.from_generation(LEASED)


def test_the_package_imports_without_django_or_celery():
    check = (
        "import sys, feedbackloop_client; "
        "assert 'django' not in sys.modules and 'celery' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert done.returncode == 0, done.stderr


def test_reads_are_retried_after_5xx(site):
    site.answer(503, {"error": {"code": "down", "message": "restarting"}})
    site.answer(502)
    site.answer(200, {"total_reviews": 3})
    assert client_for(site).get_feedback_summary() == {"total_reviews": 3}
    assert len(site.requests) == 3
    assert site.requests[0]["headers"]["Authorization"] == "Token flw_test"
    assert site.requests[0]["headers"]["User-Agent"].startswith("feedbackloop-client/")


def test_queue_generation_retries_with_the_same_idempotency_key_and_names_the_pipeline(site):
    site.answer(500)
    site.answer(
        429, {"error": {"code": "throttled", "message": "slow down"}}, **{"Retry-After": "0"}
    )
    site.answer(201, GENERATION)
    assert client_for(site).queue_generation("p", pipeline="diffusers-tiny")["id"] == "g1"
    keys = {r["headers"]["Idempotency-Key"] for r in site.requests}
    assert len(site.requests) == 3 and len(keys) == 1
    assert site.body(0) == {
        "prompt": "p",
        "backend": "remote",
        "claim": False,
        "pipeline": "diffusers-tiny",
    }


def test_queue_generation_without_a_pipeline_leaves_the_choice_to_the_site(site):
    site.answer(200, GENERATION)
    client_for(site).queue_generation("p", idempotency_key="mine-1")
    assert site.requests[0]["headers"]["Idempotency-Key"] == "mine-1"
    assert "pipeline" not in site.body(0)


def test_an_api_error_carries_status_code_message_and_details(site):
    details = {"parameters.properties.steps.default": ["the default 0 is outside its bounds"]}
    site.answer(
        400,
        {"error": {"code": "invalid_parameters", "message": "bad default", "details": details}},
    )
    with pytest.raises(ApiError) as error:
        client_for(site).register_pipeline("diffusers-tiny", "Tiny", SPACE)
    assert (error.value.status, error.value.code) == (400, "invalid_parameters")
    assert error.value.message == "bad default"
    assert error.value.details == details
    assert len(site.requests) == 1  # a 4xx is an answer, not a reason to retry


def test_an_error_without_a_json_body_still_raises_a_typed_error(site):
    site.answer(404)
    with pytest.raises(ApiError) as error:
        client_for(site).pipeline("nope")
    assert (error.value.status, error.value.code) == (404, "http_404")


def test_a_site_that_is_down_raises_api_unavailable_after_the_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    client = FeedbackLoopClient(
        f"http://127.0.0.1:{port}", token="t", retries=2, backoff_seconds=0.01
    )
    with pytest.raises(ApiUnavailable) as error:
        client.config()
    assert error.value.attempts == 3


def test_register_pipeline_puts_the_declaration_and_retries_a_5xx(site):
    site.answer(502)
    site.answer(201, {"slug": "diffusers-tiny", "schema_version": 1})
    client = client_for(site)
    answer = client.register_pipeline("diffusers-tiny", "Tiny", SPACE, description="a test")
    assert answer["schema_version"] == 1
    assert [r["method"] for r in site.requests] == ["PUT", "PUT"]
    assert site.requests[1]["path"] == "/api/v1/pipelines/diffusers-tiny/"
    assert site.body(1) == {"name": "Tiny", "description": "a test", "parameters": SPACE}


def test_register_pipeline_retries_once_when_told_of_a_concurrent_registration(site):
    site.answer(409, {"error": {"code": "conflict", "message": "registered concurrently"}})
    site.answer(200, {"slug": "diffusers-tiny", "schema_version": 1})
    assert client_for(site).register_pipeline("diffusers-tiny", "Tiny", SPACE)["slug"]
    assert len(site.requests) == 2


def test_a_slug_cannot_reach_another_route(site):
    site.answer(404, {"error": {"code": "not_found", "message": "no such pipeline"}})
    with pytest.raises(ApiError):
        client_for(site).pipeline("../jobs/claim")
    assert site.requests[0]["path"] == "/api/v1/pipelines/..%2Fjobs%2Fclaim/"


def test_pipelines_and_pipeline_read_the_pipeline_endpoints(site):
    site.answer(200, [{"slug": "builtin"}])
    site.answer(200, {"slug": "builtin"})
    client = client_for(site)
    assert client.pipelines() == [{"slug": "builtin"}]
    assert client.pipeline("builtin") == {"slug": "builtin"}
    assert [r["path"] for r in site.requests] == [
        "/api/v1/pipelines/",
        "/api/v1/pipelines/builtin/",
    ]


def test_config_sends_the_etag_per_pipeline_and_reuses_the_config_on_304(site):
    default = {"pipeline": "builtin", "revision": 4, "params": {"fps": 12}, "etag": '"a"'}
    tiny = {"pipeline": "diffusers-tiny", "revision": 1, "params": {"steps": 4}, "etag": '"b"'}
    site.answer(200, default, ETag='"a"')
    site.answer(200, tiny, ETag='"b"')
    site.answer(304, None, ETag='"a"')
    site.answer(304, None, ETag='"b"')
    client = client_for(site)
    assert client.config() == default
    assert client.config("diffusers-tiny") == tiny
    assert client.config() == default
    assert client.config("diffusers-tiny") == tiny
    paths = [r["path"] for r in site.requests]
    assert paths == ["/api/v1/config/", "/api/v1/pipelines/diffusers-tiny/config/"] * 2
    sent = [r["headers"].get("If-None-Match") for r in site.requests]
    assert sent == [None, None, '"a"', '"b"']


def test_claim_names_the_pipelines_and_returns_none_on_an_empty_queue(site):
    site.answer(204)
    site.answer(200, LEASED)
    client = client_for(site)
    assert client.claim(pipelines=["diffusers-tiny"]) is None
    job = client.claim(pipelines=["diffusers-tiny"], lease_seconds=60)
    assert (job.id, job.pipeline, job.revision, job.lease_id) == ("g1", "diffusers-tiny", 1, "L1")
    assert job.params == {"num_inference_steps": 4}
    assert site.body(0) == {"pipelines": ["diffusers-tiny"]}
    assert site.body(1) == {"pipelines": ["diffusers-tiny"], "lease_seconds": 60}


def test_claim_refuses_a_bare_string_for_the_pipelines():
    client = FeedbackLoopClient("http://127.0.0.1:9", token="t")
    with pytest.raises(TypeError):
        client.claim(pipelines="diffusers-tiny")


def test_a_refused_claim_is_a_403_api_error(site):
    site.answer(403, {"error": {"code": "pipeline_not_allowed", "message": "may not serve"}})
    with pytest.raises(ApiError) as error:
        client_for(site).claim(pipelines=["other"])
    assert (error.value.status, error.value.code) == (403, "pipeline_not_allowed")


def test_heartbeat_sends_the_lease_and_clamped_progress(site):
    site.answer(409, {"error": {"code": "lease_lost", "message": "claimed again", "details": {}}})
    site.answer(200, LEASED)
    client = client_for(site)
    with pytest.raises(ApiError) as error:
        client.heartbeat("g1", "L1", progress=0.5)
    assert (error.value.status, error.value.code) == (409, "lease_lost")
    client.heartbeat("g1", "L1", progress=1.7, lease_seconds=90)
    assert site.requests[0]["path"] == "/api/v1/jobs/g1/heartbeat/"
    assert site.body(0) == {"lease_id": "L1", "progress": 0.5}
    assert site.body(1) == {"lease_id": "L1", "progress": 1.0, "lease_seconds": 90}


def test_fail_sends_the_error_and_requeue(site):
    site.answer(200, {**GENERATION, "status": "queued"})
    client_for(site).fail("g1", "L1", "CUDA out of memory", requeue=True)
    assert site.requests[0]["path"] == "/api/v1/jobs/g1/fail/"
    assert site.body(0) == {"lease_id": "L1", "error": "CUDA out of memory", "requeue": True}


def test_complete_uploads_video_poster_and_measurements(site, tmp_path):
    video, poster = tmp_path / "v.mp4", tmp_path / "p.jpg"
    video.write_bytes(b"\0\0\0\x18ftypmp42")
    poster.write_bytes(b"\xff\xd8\xff\xe0jpeg")
    site.answer(200, {**GENERATION, "status": "succeeded"})
    client_for(site).complete(
        "g1",
        "L1",
        video,
        poster,
        {"note": "x"},
        generation_seconds=1.5,
        peak_rss_bytes=10,
        direct=False,
    )
    body = site.requests[0]["body"]
    assert site.requests[0]["headers"]["Content-Type"].startswith("multipart/form-data")
    for part in (b'name="lease_id"', b"L1", b'name="video"', b"ftypmp42", b'name="poster"'):
        assert part in body
    assert b'name="generation_seconds"\r\n\r\n1.5' in body
    assert b'name="script"\r\n\r\n{"note": "x"}' in body
    assert b"cpu_seconds" not in body


def test_a_completion_whose_first_attempt_got_through_returns_the_finished_job(site, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42")
    site.answer(502)  # the upload was stored, but the answer was lost
    site.answer(409, {"error": {"code": "job_finished", "message": "already succeeded"}})
    site.answer(200, {**GENERATION, "status": "succeeded"})
    assert client_for(site).complete("g1", "L1", video, direct=False)["status"] == "succeeded"
    assert [r["method"] for r in site.requests] == ["POST", "POST", "GET"]
    assert b'name="lease_id"' in site.requests[1]["body"]
    assert b"ftypmp42" in site.requests[1]["body"]  # the file is sent again on the retry


def test_a_first_completion_refused_as_finished_is_an_error(site, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42")
    site.answer(409, {"error": {"code": "job_finished", "message": "someone else finished"}})
    with pytest.raises(ApiError) as error:
        client_for(site).complete("g1", "L1", video, direct=False)
    assert error.value.code == "job_finished"
    assert len(site.requests) == 1


def test_the_lease_keeper_sends_the_last_progress_when_the_work_ends(site):
    site.answer(200, {**LEASED, "progress": 0.5})
    site.answer(200, {**LEASED, "progress": 0.9})
    seen: list[float] = []
    job = leased_job()
    client = client_for(site)
    with LeaseKeeper(
        client, job, 60, min_gap_seconds=0, on_beat=lambda b: seen.append(b["progress"])
    ) as lease:
        lease.report(0.5)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        lease.report(0.9)  # sent by the thread, or at the latest when the block ends
    assert seen[0] == 0.5 and seen[-1] == 0.9
    assert all(site.body(i)["lease_id"] == "L1" for i in range(len(site.requests)))
    assert site.body(len(site.requests) - 1)["progress"] == 0.9


def test_the_lease_keeper_reports_a_lost_lease_to_the_worker(site):
    site.answer(409, {"error": {"code": "lease_expired", "message": "the lease ran out"}})
    with LeaseKeeper(client_for(site), leased_job(), 60, min_gap_seconds=0) as lease:
        lease.report(0.3)
        assert lease.lost.wait(5)
        with pytest.raises(LeaseLost, match="the lease ran out"):
            lease.report(0.4)
    assert len(site.requests) == 1  # nothing more is sent for a lost lease


LOCAL_DISK = {"error": {"code": "direct_upload_unavailable", "message": "media on local disk"}}


def test_on_local_disk_complete_falls_back_to_the_multipart_upload_and_asks_once(site, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42")
    site.answer(409, LOCAL_DISK)
    site.answer(200, {**GENERATION, "status": "succeeded"})
    site.answer(200, {**GENERATION, "status": "succeeded"})
    client = client_for(site)
    client.complete("g1", "L1", video)
    client.complete("g1", "L1", video)
    paths = [r["path"] for r in site.requests]
    assert paths == [
        "/api/v1/jobs/g1/upload-url/",
        "/api/v1/jobs/g1/complete/",
        "/api/v1/jobs/g1/complete/",
    ]
    assert b"ftypmp42" in site.requests[1]["body"]


def test_with_object_storage_complete_puts_the_files_to_the_presigned_urls(site, tmp_path):
    video, poster = tmp_path / "v.mp4", tmp_path / "p.png"
    video.write_bytes(b"\0\0\0\x18ftypmp42")
    poster.write_bytes(b"\x89PNG")
    targets = {
        "video": {"url": f"{site.url}/bucket/staged.mp4?X-Amz-Signature=s", "key": "up/v.mp4"},
        "poster": {"url": f"{site.url}/bucket/staged.png?X-Amz-Signature=s", "key": "up/p.png"},
    }
    site.answer(200, targets)
    site.answer(200)  # the bucket takes the video
    site.answer(200)  # ... and the poster
    site.answer(200, {**GENERATION, "status": "succeeded"})
    client_for(site).complete("g1", "L1", video, poster, {"note": "x"}, generation_seconds=1.5)
    put_video, put_poster, done = site.requests[1:]
    assert put_video["method"] == "PUT" and put_video["body"] == b"\0\0\0\x18ftypmp42"
    assert "Authorization" not in put_video["headers"], "the site's token never goes to storage"
    assert put_poster["headers"]["Content-Type"] == "image/png"
    assert site.body(3) == {
        "lease_id": "L1",
        "video_key": "up/v.mp4",
        "poster_key": "up/p.png",
        "script": {"note": "x"},
        "generation_seconds": 1.5,
    }


def test_insisting_on_direct_upload_on_local_disk_is_an_error(site, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42")
    site.answer(409, LOCAL_DISK)
    with pytest.raises(ApiError) as caught:
        client_for(site).complete("g1", "L1", video, direct=True)
    assert caught.value.code == "direct_upload_unavailable" and len(site.requests) == 1


def test_generate_video_queues_a_claimed_job_renders_and_uploads(site, tmp_path):
    site.answer(201, LEASED)
    site.answer(409, LOCAL_DISK)
    site.answer(200, {**LEASED, "status": "succeeded"})
    calls = []

    def render(prompt, params, video_path, poster_path):
        calls.append((prompt, params))
        video_path.write_bytes(b"\0\0\0\x18ftypmp42")
        return {"scenes": []}

    result = client_for(site).generate_video("p", render, tmp_path, pipeline="diffusers-tiny")
    assert result["status"] == "succeeded" and result["config_revision"] == 1
    assert calls == [("p", {"num_inference_steps": 4})]
    assert site.body(0)["claim"] is True and site.body(0)["pipeline"] == "diffusers-tiny"
    assert site.requests[1]["path"] == "/api/v1/jobs/g1/upload-url/"
    assert site.requests[2]["path"] == "/api/v1/jobs/g1/complete/"
