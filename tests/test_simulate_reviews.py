"""A small run of the whole loop with simulated reviewers ends better than it started."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_simulated_loop_beats_the_start_and_a_fixed_baseline():
    out = StringIO()
    call_command(
        "simulate_reviews",
        "--small",
        "--baseline",
        "--rounds",
        "8",  # the promotion lands around round 5; canary arms are random, so leave margin
        "--generations-per-round",
        "10",
        "--reviewers",
        "6",
        "--seed",
        "1",
        stdout=out,
    )
    text = out.getvalue()
    print(text)
    summary = json.loads(text.rsplit("summary: ", 1)[1])
    start, final, baseline = summary["start"], summary["final"], summary["baseline"]
    assert final["revision"] != start["revision"], "no improvement was promoted"
    assert final["mean"] > start["mean"] + 0.2
    assert final["ci_low"] > baseline["ci_high"], "better than the fixed config, beyond noise"
    assert text.count("round ") == 8
