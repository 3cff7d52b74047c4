"""A web worker killed mid-upload (kill -9 of gunicorn's worker process) leaves its temporary
file in FILE_UPLOAD_TEMP_DIR; the reconciler sweeps it once older than LITTER_MAX_AGE_SECONDS
and leaves alone the file of an upload still streaming. An upload the client abandons leaves
nothing (Django removes its temporary file when the request ends): the bound asserted is 10 s.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from generation.services.reconciler import reconcile
from generation.services.requests import job_request
from generation.services.tokens import worker_token_create
from tests.faults.helpers import builtin_pipeline_rendering
from tests.faults.stack import QUICK_RENDER, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
MB = 1024 * 1024


def start_upload(base: str, key: str, job) -> socket.socket:
    """Begin a 40 MB video upload to /jobs/<id>/complete/ and send its first 6 MB only."""
    host, port = base.removeprefix("http://").split(":")
    boundary = f"fault{uuid.uuid4().hex}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="lease_id"\r\n\r\n'
        f'{job.lease_id}\r\n--{boundary}\r\nContent-Disposition: form-data; name="video"; '
        'filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    request = (
        f"POST /api/v1/jobs/{job.pk}/complete/ HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Token {key}\r\nX-Forwarded-Proto: https\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + 40 * MB + len(tail)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(request + head)
    for _ in range(6):
        sock.sendall(b"\0" * MB)
    return sock


def temp_files(folder: Path) -> set[Path]:
    return {p for p in folder.iterdir() if p.is_file()}


def spooled(folder: Path, known: set[Path]) -> Path | None:
    """A new temporary upload file holding at least 4 MB."""
    for path in temp_files(folder) - known:
        if path.stat().st_size >= 4 * MB:
            return path
    return None


def test_a_killed_upload_is_swept_once_old_and_a_streaming_one_is_left_alone(stack, fault_settings):
    pipeline = builtin_pipeline_rendering(QUICK_RENDER)
    token, key = worker_token_create(name="uploader", pipelines=["*"])
    job, _ = job_request(pipeline=pipeline, prompt="A big upload", claim_for=token)
    job_again, _ = job_request(pipeline=pipeline, prompt="Another big upload", claim_for=token)
    web, base = stack.web()
    uploads = stack.upload_dir

    killed_upload = start_upload(base, key, job)
    orphan = wait_for(lambda: spooled(uploads, set()), 30, "the upload to spool to a file")
    [web_worker] = web.children()
    web_worker.kill()
    killed_upload.close()
    time.sleep(1)
    assert orphan.exists(), "a killed web worker leaves its temporary upload behind"

    # gunicorn starts a new worker; an upload is streaming into it while the reconciler runs.
    streaming = start_upload(base, key, job_again)
    fresh = wait_for(lambda: spooled(uploads, {orphan}), 30, "the second upload to spool")
    an_hour_ago = time.time() - fault_settings.LITTER_MAX_AGE_SECONDS - 60
    os.utime(orphan, (an_hour_ago, an_hour_ago))

    swept = reconcile()["swept"]
    assert swept == 1
    assert not orphan.exists()
    assert fresh.exists(), "an upload still streaming is not litter"

    streaming.close()  # the client gives up: the request ends and Django removes its file
    wait_for(lambda: not fresh.exists(), 10, "the abandoned upload's file to be removed")
    assert temp_files(uploads) == set()
