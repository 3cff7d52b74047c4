"""End to end: examples/diffusers_worker.py serves a tiny diffusers model to a live site.

A randomly initialised WanPipeline is built from configs (tests/diffusers/tiny_pipelines.py,
no download: HF_HUB_OFFLINE=1) and saved with save_pretrained; the worker loads it with
from_pretrained, declares its pipeline on a real site (runserver, SQLite, eager Celery), claims
the job queued for it, reports the denoising steps through heartbeats and uploads the video;
the site measures it and Chromium plays it. The worker runs as a GPU host would: Django,
Celery, OpenCV and onnxruntime cannot be imported in its process.

Needs the diffusers extra: `make test-diffusers`.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from feedbackloop_client import ApiError, FeedbackLoopClient

from tests.conftest import chromium_launch_args, require_chromium
from tests.live_site import PYTHON, REVIEWER, ROOT, LiveSite, live_site

pytestmark = [pytest.mark.diffusers]

SLUG = "diffusers-tiny-wan"
STEPS = 3
DEFAULTS = {
    "num_inference_steps": STEPS,
    "num_frames": 9,  # Wan takes 4k+1 frames
    "height": 64,
    "width": 64,
    "fps": 8,
    "guidance_scale": 5.0,
    "negative_prompt": "blurry",
    "seed": 7,
}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# Runs the worker with the site's packages made unimportable, as on a GPU host that installed
# only the client package, torch and diffusers; then lists any of the site's modules it loaded.
AS_GPU_HOST = """
import importlib.machinery, runpy, sys

HIDDEN = {"django", "rest_framework", "celery", "cv2", "onnxruntime", "rapidocr_onnxruntime"}
SITE = {"feedbackloop", "pipelines", "generation", "reviews", "improvements", "videometrics"}


class NotInstalled(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in HIDDEN | SITE:
            return None
        return super().find_spec(fullname, path, target)


sys.meta_path[:] = [
    NotInstalled if finder is importlib.machinery.PathFinder else finder
    for finder in sys.meta_path
]
worker, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = worker
try:
    runpy.run_path(worker, run_name="__main__")
finally:
    loaded = sorted({m.partition(".")[0] for m in sys.modules} & (HIDDEN | SITE))
    print("SITE-OR-HEAVY-MODULES-LOADED:", loaded, flush=True)
"""


@pytest.fixture(scope="module")
def tiny_model_build(tmp_path_factory) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Builds the model in a subprocess, while the site starts (both take a while)."""
    folder = tmp_path_factory.mktemp("model") / "tiny-wan"
    builder = subprocess.Popen(
        [PYTHON, str(ROOT / "tests" / "diffusers" / "tiny_pipelines.py"), "wan", str(folder)],
        env={**os.environ, **OFFLINE},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield builder, folder
    if builder.poll() is None:
        builder.kill()


def built(build: tuple[subprocess.Popen, Path]) -> Path:
    builder, folder = build
    output, _ = builder.communicate(timeout=300)
    assert builder.returncode == 0, output[-3000:]
    assert (folder / "model_index.json").exists()
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[LiveSite]:
    with live_site(tmp_path_factory.mktemp("site")) as live:
        yield live


def start_worker(site: LiveSite, token: str, model: Path, workdir: Path) -> subprocess.Popen:
    wrapper = workdir / "as_gpu_host.py"
    wrapper.write_text(AS_GPU_HOST)
    defaults = [f"--default={key}={value}" for key, value in DEFAULTS.items()]
    return subprocess.Popen(
        [
            PYTHON,
            str(wrapper),
            str(ROOT / "examples" / "diffusers_worker.py"),
            "--url",
            site.url,
            "--model",
            str(model),
            "--slug",
            SLUG,
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--once",
            "--poll-seconds",
            "0.3",
            "--lease-seconds",
            "60",
            "--progress-seconds",
            "0",
            *defaults,
        ],
        cwd=workdir,  # not the project: nothing of the site is importable from here
        env={**site.env, **OFFLINE, "FEEDBACKLOOP_TOKEN": token, "PYTHONPATH": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_pipeline(api: FeedbackLoopClient, worker: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 300
    while True:
        try:
            return api.pipeline(SLUG)
        except ApiError as exc:
            assert exc.status == 404, exc
        assert worker.poll() is None, worker.communicate()[0][-5000:]
        assert time.monotonic() < deadline, "the worker never declared its pipeline"
        time.sleep(0.3)


def watch(api: FeedbackLoopClient, generation_id: str, worker: subprocess.Popen) -> list[dict]:
    """The generation as the site shows it, polled until the worker exits."""
    seen = []
    deadline = time.monotonic() + 600
    while worker.poll() is None and time.monotonic() < deadline:
        generation = api.generation(generation_id)
        seen.append({k: generation[k] for k in ("status", "progress", "claimed_by")})
        time.sleep(0.1)
    return seen


def test_the_diffusers_worker_declares_claims_reports_progress_and_uploads_a_playable_video(
    tiny_model_build, site, tmp_path
):
    token = site.worker_token("gpu-e2e", "diffusers-*")
    api = FeedbackLoopClient(site.url, token=token)
    worker = start_worker(site, token, built(tiny_model_build), tmp_path)
    try:
        # The worker declares its pipeline, with the model's parameter space, before any job.
        pipeline = wait_for_pipeline(api, worker)
        generation_id = api.queue_generation("A red ball bouncing", pipeline=SLUG)["id"]
        seen = watch(api, generation_id, worker)
        output, _ = worker.communicate(timeout=600)
    finally:
        if worker.poll() is None:
            worker.kill()
    (tmp_path / "worker.log").write_text(output)
    assert worker.returncode == 0, output[-5000:]
    assert "1 job(s) done, 1 succeeded" in output, output[-5000:]
    assert "SITE-OR-HEAVY-MODULES-LOADED: []" in output, output[-5000:]

    # The declared space, as registered: revision 1 is the declared defaults, active.
    properties = pipeline["parameters"]["properties"]
    assert set(properties) == {
        "num_inference_steps",
        "guidance_scale",
        "num_frames",
        "fps",
        "height",
        "width",
        "negative_prompt",
        "scheduler",
        "seed",
    }
    assert properties["num_inference_steps"]["x-scale"] == "log"
    assert properties["num_inference_steps"]["x-cost"] is True
    assert properties["negative_prompt"]["x-tunable"] is False
    assert properties["seed"]["x-tunable"] is False
    assert properties["scheduler"]["enum"] == ["default", "FlowMatchEulerDiscreteScheduler"]
    assert pipeline["runs_on"] == "remote" and pipeline["registered_by"] == "worker:gpu-e2e"
    revision = pipeline["active_revision"]
    assert revision["number"] == 1 and revision["status"] == "active"
    assert {k: revision["params"][k] for k in DEFAULTS} == DEFAULTS
    assert any(p["slug"] == SLUG for p in api.pipelines())

    # Claimed by this worker, progress reported while it ran, then succeeded.
    statuses = [s["status"] for s in seen]
    assert "running" in statuses, seen
    assert {s["claimed_by"] for s in seen if s["status"] == "running"} == {"gpu-e2e"}
    for observed in seen:
        assert 0.0 <= (observed["progress"] or 0.0) <= 1.0
    acknowledged = [float(v) for v in re.findall(r"progress ([0-9.]+) acknowledged", output)]
    assert any(0.0 < v < 1.0 for v in acknowledged), output[-5000:]
    assert acknowledged == sorted(acknowledged), acknowledged
    heartbeats = site.log.read_text().count(f"POST /api/v1/jobs/{generation_id}/heartbeat/")
    assert heartbeats >= 2, site.log_tail()

    generation = api.generation(generation_id)
    assert generation["status"] == "succeeded", (generation, output[-5000:])
    assert generation["pipeline"] == SLUG and generation["revision"] == 1
    assert generation["claimed_by"] == "gpu-e2e" and generation["attempts"] == 1
    assert (generation["codec"], generation["width"], generation["height"]) == ("h264", 64, 64)
    assert generation["fps"] == pytest.approx(8)
    assert generation["duration_s"] == pytest.approx(9 / 8, abs=0.15)
    assert generation["generation_seconds"] > 0 and generation["peak_rss_bytes"] > 0
    assert generation["poster_url"], "the worker uploads a poster"
    # Measured: the server's metrics of the upload, and the worker's own.
    assert len(generation["metrics"]["server"]) > 5, generation["metrics"]
    assert set(generation["metrics"]["worker"]) == {"denoise_seconds", "encode_seconds", "frames"}
    assert generation["metrics"]["worker"]["frames"] == 9

    # The file: H.264 yuv420p in MP4 with the index first (faststart).
    video = site.media / "generations" / f"{generation_id}.mp4"
    data = video.read_bytes()
    assert data[4:8] == b"ftyp" and data.index(b"moov") < data.index(b"mdat")
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 9

    assert_plays_in_chromium(site, generation["video_url"], tmp_path)


def assert_plays_in_chromium(site: LiveSite, video_url: str, tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium_launch_args())
        page = browser.new_page()
        page.goto(f"{site.url}/accounts/login/")
        page.fill("input[name=username]", REVIEWER[0])
        page.fill("input[name=password]", REVIEWER[1])
        page.press("input[name=password]", "Enter")
        page.wait_for_load_state()
        page.goto(video_url)  # Chromium's own player page for the file
        page.wait_for_function("document.querySelector('video').readyState >= 2", timeout=15000)
        info = page.evaluate(
            """async () => { const v = document.querySelector('video');
                 v.muted = true; await v.play();
                 const t0 = v.currentTime;
                 await new Promise(r => setTimeout(r, 600));
                 return {error: v.error && v.error.code, w: v.videoWidth, h: v.videoHeight,
                         duration: v.duration, t0, t1: v.currentTime,
                         ready: v.readyState}; }"""
        )
        page.screenshot(path=str(tmp_path / "diffusers_video.png"))
        browser.close()
    assert info["error"] is None, info
    assert (info["w"], info["h"]) == (64, 64), info
    assert info["ready"] >= 2 and info["duration"] > 1.0, info
    assert info["t1"] > info["t0"], f"the video did not play: {info}"
