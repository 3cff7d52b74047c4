"""Workers that die mid-task (kill -9), against real Celery processes, celery beat and PostgreSQL.

Settings (stack.FAULT_SETTINGS): leases of 6 s renewed by heartbeats every 1 s, the reconciler
every 2 s from celery beat. The bounds asserted:

- a render whose pool process is SIGKILLed succeeds exactly once within 60 s of the kill, on
  its second attempt, with one video, one poster and no partial file left;
- the same within 60 s of the kill when the whole worker (main and pool) is SIGKILLed and a new
  worker is started;
- a render killed on each of its GENERATION_MAX_ATTEMPTS (2 here) attempts fails within 60 s of
  the last kill, with the reason, and leaves no media file at all;
- a measurement whose metrics pool process is SIGKILLed is failed as stale and measured again,
  successfully, within 90 s of the kill (a measurement with OCR takes ~10-20 s here), with
  exactly two runs: the long second measurement is kept alive by its heartbeat.
"""

from __future__ import annotations

import time

import pytest

from generation.models import Generation, MetricsRun, MetricValue
from generation.services.metrics import STALE_REASON
from tests.faults.helpers import (
    builtin_pipeline_rendering,
    finished,
    media_names,
    mid_render,
    partial_files,
    queue_render,
)
from tests.faults.stack import QUICK_RENDER, SLOW_RENDER, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
G = Generation.Status


def succeeded_once(stack, generation) -> None:
    generation.refresh_from_db()
    assert generation.status == G.SUCCEEDED, generation.error
    assert generation.attempts == 2, "the kill cost exactly one attempt"
    # The worker logs it just after the commit that the test saw.
    success = rf"generation {generation.pk} succeeded on attempt"
    wait_for(lambda: stack.count_in_logs(success), 10, "the worker to log the success")
    assert stack.count_in_logs(success) == 1
    assert media_names(stack.media_root, generation) == {
        f"{generation.pk}.mp4",
        f"{generation.pk}.jpg",
    }
    assert (stack.media_root / generation.video.name).stat().st_size == generation.size_bytes
    assert partial_files(stack.media_root) == []


def test_a_render_whose_pool_process_is_killed_succeeds_exactly_once_within_60s(
    stack, reconciler_every_2s
):
    pipeline = builtin_pipeline_rendering(SLOW_RENDER)
    worker = stack.worker("render", ["generation"], wait=False)
    stack.worker("ops", ["default"], pool="solo", wait=False)
    stack.beat(wait=False)
    stack.wait_ready()
    generation = queue_render(stack, pipeline, "Solar panels for homeowners: cost and upkeep")

    wait_for(lambda: mid_render(generation, stack.media_root), 90, "the render to be under way")
    [pool_process] = worker.children()
    pool_process.kill()
    killed = time.monotonic()

    wait_for(lambda: finished(generation), 60, "the generation to finish within 60 s of the kill")
    print(f"pool process killed: succeeded {time.monotonic() - killed:.1f} s after the kill")
    succeeded_once(stack, generation)
    assert worker.alive() and pool_process.pid not in [p.pid for p in worker.children()]


def test_a_render_whose_whole_worker_is_killed_succeeds_on_a_new_worker_within_60s(
    stack, reconciler_every_2s
):
    pipeline = builtin_pipeline_rendering(SLOW_RENDER)
    first = stack.worker("render", ["generation"], wait=False)
    stack.worker("ops", ["default"], pool="solo", wait=False)
    stack.beat(wait=False)
    stack.wait_ready()
    generation = queue_render(stack, pipeline, "Heat pumps explained: sizing and noise")

    wait_for(lambda: mid_render(generation, stack.media_root), 90, "the render to be under way")
    first.kill_group()  # main and pool process at once: the message stays unacknowledged
    killed = time.monotonic()
    second = stack.worker("render-2", ["generation"], wait=False)

    wait_for(lambda: finished(generation), 60, "the generation to finish within 60 s of the kill")
    print(f"whole worker killed: succeeded {time.monotonic() - killed:.1f} s after the kill")
    succeeded_once(stack, generation)
    assert f"generation {generation.pk} succeeded on attempt 2" in second.text()


def test_a_render_killed_on_every_attempt_fails_with_the_reason_and_leaves_no_media(
    stack, reconciler_every_2s, fault_settings
):
    stack.extra_env["GENERATION_MAX_ATTEMPTS"] = "2"
    fault_settings.GENERATION_MAX_ATTEMPTS = 2
    pipeline = builtin_pipeline_rendering(SLOW_RENDER)
    worker = stack.worker("render", ["generation"], wait=False)
    stack.worker("ops", ["default"], pool="solo", wait=False)
    stack.beat(wait=False)
    stack.wait_ready()
    generation = queue_render(stack, pipeline, "Rainwater tanks: sizing, filters and upkeep")

    for attempt in (1, 2):
        wait_for(
            lambda attempt=attempt: (
                mid_render(generation, stack.media_root) and generation.attempts == attempt
            ),
            90,
            f"attempt {attempt} to be under way",
        )
        [pool_process] = worker.children()
        pool_process.kill()
    killed = time.monotonic()

    wait_for(lambda: finished(generation), 60, "the generation to fail within 60 s")
    print(f"killed on every attempt: failed {time.monotonic() - killed:.1f} s after the last kill")
    generation.refresh_from_db()
    assert generation.status == G.FAILED
    assert generation.attempts == 2
    assert "stopped heartbeating on all 2 attempts" in generation.error
    assert not generation.video
    assert media_names(stack.media_root, generation) == set()
    assert partial_files(stack.media_root) == []


def test_a_measurement_whose_metrics_process_is_killed_is_retried_and_succeeds_within_90s(
    stack, reconciler_every_2s
):
    stack.extra_env["METRICS_OCR_ENABLED"] = "true"  # a measurement long enough to be killed
    pipeline = builtin_pipeline_rendering(QUICK_RENDER)
    stack.worker("render", ["generation"], wait=False)
    metrics_worker = stack.worker("metrics", ["metrics"], wait=False)
    stack.worker("ops", ["default"], pool="solo", wait=False)
    stack.beat(wait=False)
    stack.wait_ready()
    generation = queue_render(stack, pipeline, "Bike commuting: routes, kit and weather")

    runs = MetricsRun.objects.filter(generation=generation)
    wait_for(
        lambda: runs.filter(status=MetricsRun.Status.RUNNING).exists(), 90, "measuring to start"
    )
    time.sleep(0.3)  # in the middle of it (OCR makes it last a few seconds)
    assert runs.filter(status=MetricsRun.Status.RUNNING).exists(), "measured too fast to kill"
    [pool_process] = metrics_worker.children()
    pool_process.kill()
    killed = time.monotonic()

    wait_for(
        lambda: runs.filter(status=MetricsRun.Status.SUCCEEDED).exists(),
        90,
        "the measurement to succeed within 90 s of the kill",
    )
    print(f"metrics process killed: measured {time.monotonic() - killed:.1f} s after the kill")
    first, second = runs.order_by("created_at")
    assert (first.status, first.error) == (MetricsRun.Status.FAILED, STALE_REASON)
    assert second.status == MetricsRun.Status.SUCCEEDED
    time.sleep(3)  # a reconciler pass later: nothing measures it a third time
    assert runs.count() == 2
    assert MetricValue.objects.filter(
        generation=generation, source=MetricValue.Source.SERVER, name="text_cer"
    ).exists()
