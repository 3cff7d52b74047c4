"""The web process's WSGI module tunes garbage collection once the application is loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_process_freezes_the_loaded_application_and_collects_young_objects_less_often():
    script = (
        "import gc, json, feedbackloop.wsgi as w; "
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count(), w.WEB_GC_THRESHOLDS]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    thresholds, frozen, configured = json.loads(out.stdout.strip().splitlines()[-1])
    assert thresholds == configured
    assert thresholds[0] >= 10_000
    assert frozen > 10_000  # Django, DRF and the apps' objects, out of every collection
