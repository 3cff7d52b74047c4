"""examples/seed_usage.py runs as a script and its video plays in Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import chromium_launch_args, require_chromium

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("example")
    shutil.copytree(ROOT / "config", work / "config")
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "FEEDBACKLOOP_VAR_DIR": str(work / "var"),
        "MEDIA_ROOT": str(work / "media"),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seed_usage.py")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return work, done.stdout


def test_seed_example_runs_and_prints_the_summary(example_run):
    work, stdout = example_run
    assert "Generated output/policy_briefing.mp4" in stdout
    assert "Average visual quality: 4.0" in stdout
    assert (work / "output" / "policy_briefing.mp4").stat().st_size > 10_000


@pytest.mark.browser
def test_seed_example_video_plays_in_chromium(example_run, output_dir):
    require_chromium()
    from playwright.sync_api import sync_playwright

    work, _ = example_run
    video = work / "output" / "policy_briefing.mp4"
    page_path = work / "output" / "play.html"
    page_path.write_text(f'<video id="v" src="{video.name}" muted playsinline></video>')
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium_launch_args())
        page = browser.new_page()
        page.goto(page_path.as_uri())
        page.wait_for_function("document.getElementById('v').readyState >= 1", timeout=15000)
        info = page.evaluate(
            """async () => { const v = document.getElementById('v');
                 await v.play(); await new Promise(r => setTimeout(r, 1200));
                 return {error: v.error && v.error.code, w: v.videoWidth, h: v.videoHeight,
                         duration: v.duration, t: v.currentTime}; }"""
        )
        page.screenshot(path=str(output_dir / "seed_video.png"))
        browser.close()
    assert info["error"] is None
    assert (info["w"], info["h"]) == (640, 360)
    assert info["duration"] > 4 and info["t"] > 0.3
