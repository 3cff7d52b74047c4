"""The Python client's network behaviour: retries, idempotency keys, ETags, errors.

A tiny HTTP server in a thread plays the site, answering from a script of responses, so the
client's real requests code runs over a real socket.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from feedbackloop.client import ApiError, ApiUnavailable, FeedbackLoopClient, Job


class ScriptedSite:
    """Answers each request with the next (status, body, headers) and records what it got."""

    def __init__(self) -> None:
        self.script: list[tuple[int, object, dict[str, str]]] = []
        self.requests: list[dict] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                site.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                status, body, headers = site.script.pop(0)
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, status: int, body: object = None, **headers: str) -> None:
        self.script.append((status, body, headers))


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


GENERATION = {"id": "g1", "prompt": "p", "params": {}, "revision": 1, "status": "queued"}


def test_reads_are_retried_after_5xx(site):
    site.answer(503, {"error": {"code": "down", "message": "restarting"}})
    site.answer(502)
    site.answer(200, {"total_reviews": 3})
    assert client_for(site).get_feedback_summary() == {"total_reviews": 3}
    assert len(site.requests) == 3
    assert site.requests[0]["headers"]["Authorization"] == "Token flw_test"


def test_a_create_is_retried_with_the_same_idempotency_key(site):
    site.answer(500)
    site.answer(
        429, {"error": {"code": "throttled", "message": "slow down"}}, **{"Retry-After": "0"}
    )
    site.answer(201, GENERATION)
    assert client_for(site).create_generation("p")["id"] == "g1"
    keys = {r["headers"]["Idempotency-Key"] for r in site.requests}
    assert len(site.requests) == 3 and len(keys) == 1
    assert json.loads(site.requests[0]["body"]) == {
        "prompt": "p",
        "backend": "remote",
        "claim": False,
    }


def test_a_given_idempotency_key_is_sent_as_is(site):
    site.answer(200, GENERATION)
    client_for(site).create_generation("p", idempotency_key="mine-1")
    assert site.requests[0]["headers"]["Idempotency-Key"] == "mine-1"


def test_an_api_error_carries_the_code_and_message(site):
    site.answer(409, {"error": {"code": "lease_lost", "message": "claimed again", "details": {}}})
    with pytest.raises(ApiError) as error:
        client_for(site).heartbeat(Job("g1", "p", {}, 1, "lease-1", ""))
    assert (error.value.status, error.value.code) == (409, "lease_lost")
    assert error.value.message == "claimed again"
    assert len(site.requests) == 1  # a 4xx is an answer, not a reason to retry


def test_a_site_that_is_down_raises_api_unavailable_after_the_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    client = FeedbackLoopClient(
        f"http://127.0.0.1:{port}", token="t", retries=2, backoff_seconds=0.01
    )
    with pytest.raises(ApiUnavailable):
        client.get_config()


def test_get_config_sends_the_etag_and_reuses_the_config_on_304(site):
    config = {
        "revision": 4,
        "params": {"fps": 12},
        "model_variant": "hq",
        "experiment_arm": "",
        "etag": '"abc"',
    }
    site.answer(200, config, ETag='"abc"')
    site.answer(304, None, ETag='"abc"')
    client = client_for(site)
    assert client.get_config() == config
    assert client.get_config() == config
    assert "If-None-Match" not in site.requests[0]["headers"]
    assert site.requests[1]["headers"]["If-None-Match"] == '"abc"'


def test_claim_returns_none_on_an_empty_queue_and_a_job_with_its_lease(site):
    site.answer(204)
    site.answer(200, {**GENERATION, "lease": {"lease_id": "L1", "lease_expires_at": "soon"}})
    client = client_for(site)
    assert client.claim_job() is None
    job = client.claim_job(lease_seconds=60)
    assert (job.id, job.lease_id, job.lease_expires_at) == ("g1", "L1", "soon")
    assert json.loads(site.requests[1]["body"]) == {"lease_seconds": 60}


def test_a_completion_whose_first_attempt_got_through_returns_the_finished_job(site, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42")
    site.answer(502)  # the upload was stored, but the answer was lost
    site.answer(409, {"error": {"code": "job_finished", "message": "already succeeded"}})
    site.answer(200, {**GENERATION, "status": "succeeded"})
    job = Job("g1", "p", {}, 1, "L1", "")
    assert client_for(site).complete_job(job, video)["status"] == "succeeded"
    assert [r["method"] for r in site.requests] == ["POST", "POST", "GET"]
    assert b'name="lease_id"' in site.requests[1]["body"]
    assert b"ftypmp42" in site.requests[1]["body"]  # the file is sent again on the retry
