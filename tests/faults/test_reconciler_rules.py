"""The reconciler's rules, one pass at a time in the test process.

Dispatches go to a real Redis, on namespaced queues that no worker consumes, and are read back
from it (PostgreSQL or SQLite for the rows). Settings as the fault tests': leases of 6 s, a
queued generation re-sent after 10 s, three attempts.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from generation.models import Generation, MetricsRun
from generation.services.claims import generation_take, server_generations
from generation.services.metrics import STALE_REASON, RunHeartbeat
from generation.services.outcomes import generation_fail
from generation.services.reconciler import reconcile
from generation.services.rendering import generation_run

G = Generation.Status
RUN = "generation.tasks.generation_run_task"
MEASURE = "generation.tasks.metrics_compute_task"


def make(revision, **fields) -> Generation:
    generation = Generation.objects.create(
        prompt="A briefing", revision=revision, params=dict(revision.params), backend="builtin"
    )
    Generation.objects.filter(pk=generation.pk).update(**fields)
    generation.refresh_from_db()
    return generation


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def media_file(settings, name: str, age_seconds: float = 0) -> Path:
    path = Path(settings.MEDIA_ROOT) / "generations" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if age_seconds:
        old = time.time() - age_seconds
        os.utime(path, (old, old))
    return path


def sent_ids(broker_queues, queue: str, task: str) -> list[str]:
    return [args[0] for name, args in broker_queues.sent(queue) if name == task]


# --- dispatch --------------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db
def test_queued_generations_whose_task_never_went_out_or_was_lost_are_dispatched(
    broker_queues, active_revision
):
    never_sent = make(active_revision, created_at=ago(30))
    lost = make(active_revision, created_at=ago(60), dispatched_at=ago(11))
    young = make(active_revision)  # its own request is still committing and sending it
    waiting = make(active_revision, created_at=ago(30), dispatched_at=ago(2))

    assert reconcile()["dispatched"] == 2
    assert sorted(sent_ids(broker_queues, "generation", RUN)) == sorted(
        [str(never_sent.pk), str(lost.pk)]
    )
    for generation in (never_sent, lost):
        generation.refresh_from_db()
        assert generation.status == G.QUEUED and generation.dispatched_at > ago(5)
    young.refresh_from_db()
    waiting.refresh_from_db()
    assert young.dispatched_at is None and waiting.dispatched_at < ago(1)
    assert reconcile()["dispatched"] == 0, "a pass later nothing is sent twice"


# --- renders whose heartbeat stopped ---------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db
def test_a_render_whose_lease_expired_is_queued_again_and_dispatched(
    broker_queues, active_revision, settings
):
    stalled = make(
        active_revision,
        status=G.RUNNING,
        attempts=1,
        lease_id=uuid.uuid4(),
        lease_expires_at=ago(1),
        heartbeat_at=ago(7),
        created_at=ago(30),
        dispatched_at=ago(29),
        progress=0.4,
    )
    part = media_file(settings, f".{stalled.pk}.mp4.0123456789ab.part")

    counts = reconcile()
    assert counts["taken_back"] == 1 and counts["failed"] == 0
    stalled.refresh_from_db()
    assert stalled.status == G.QUEUED and stalled.lease_id is None and stalled.progress == 0
    assert stalled.attempts == 1
    assert stalled.error.startswith("taken back after attempt 1")
    assert sent_ids(broker_queues, "generation", RUN) == [str(stalled.pk)]
    assert stalled.dispatched_at is not None
    assert not part.exists()


@pytest.mark.services
@pytest.mark.django_db
def test_a_render_whose_lease_expired_on_its_last_attempt_fails_with_the_reason(
    broker_queues, active_revision, settings
):
    stalled = make(
        active_revision,
        status=G.RUNNING,
        attempts=settings.GENERATION_MAX_ATTEMPTS,
        lease_id=uuid.uuid4(),
        lease_expires_at=ago(1),
    )
    files = [
        media_file(settings, f".{stalled.pk}.mp4.0123456789ab.part"),
        media_file(settings, f"{stalled.pk}.jpg"),
    ]

    assert reconcile()["failed"] == 1
    stalled.refresh_from_db()
    assert stalled.status == G.FAILED and stalled.finished_at is not None
    assert stalled.error == (
        f"the render stopped heartbeating on all {settings.GENERATION_MAX_ATTEMPTS} attempts "
        "(its worker died or was killed)"
    )
    assert not any(path.exists() for path in files)
    assert broker_queues.sent("generation") == []


@pytest.mark.services
@pytest.mark.django_db
def test_a_render_under_a_live_lease_is_left_alone(broker_queues, active_revision):
    lease = uuid.uuid4()
    rendering = make(
        active_revision,
        status=G.RUNNING,
        attempts=1,
        lease_id=lease,
        lease_expires_at=timezone.now() + timedelta(seconds=5),
    )
    counts = reconcile()
    assert counts["taken_back"] == counts["failed"] == 0
    rendering.refresh_from_db()
    assert rendering.status == G.RUNNING and rendering.lease_id == lease
    assert broker_queues.sent("generation") == []


# --- the render task's own delivery ----------------------------------------------------------


@pytest.mark.django_db
def test_a_delivery_that_finds_another_live_lease_leaves_the_render_to_it(
    active_revision, fault_settings
):
    lease = uuid.uuid4()
    rendering = make(
        active_revision,
        status=G.RUNNING,
        attempts=1,
        lease_id=lease,
        lease_expires_at=timezone.now() + timedelta(seconds=5),
    )
    result = generation_run(generation_id=str(rendering.pk))
    assert (result.status, result.attempts, result.lease_id) == (G.RUNNING, 1, lease)


@pytest.mark.django_db
def test_a_delivery_that_finds_the_last_attempt_dead_fails_it_instead_of_a_further_attempt(
    active_revision, fault_settings
):
    dead = make(
        active_revision,
        status=G.RUNNING,
        attempts=fault_settings.GENERATION_MAX_ATTEMPTS,
        lease_id=uuid.uuid4(),
        lease_expires_at=ago(1),
    )
    result = generation_run(generation_id=str(dead.pk))
    assert result.status == G.FAILED
    assert result.attempts == fault_settings.GENERATION_MAX_ATTEMPTS
    assert "stopped heartbeating" in result.error


@pytest.mark.django_db
def test_a_render_taken_over_after_a_kill_removes_the_partial_files_of_the_dead_attempt(
    active_revision, fault_settings
):
    dead = make(
        active_revision,
        status=G.RUNNING,
        attempts=1,
        lease_id=uuid.uuid4(),
        lease_expires_at=ago(1),
    )
    part = media_file(fault_settings, f".{dead.pk}.mp4.0123456789ab.part")
    result = generation_run(generation_id=str(dead.pk))
    assert result.status == G.SUCCEEDED and result.attempts == 2
    assert not part.exists()
    folder = Path(fault_settings.MEDIA_ROOT) / "generations"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{dead.pk}.mp4", f"{dead.pk}.jpg"])


@pytest.mark.django_db
def test_a_runner_whose_lease_was_taken_over_cannot_fail_the_new_holders_run(active_revision):
    generation = make(active_revision, status=G.QUEUED)
    first = generation_take(
        queryset=server_generations(), generation_id=generation.pk, lease=timedelta(seconds=-1)
    )
    second = generation_take(
        queryset=server_generations(), generation_id=generation.pk, lease=timedelta(seconds=60)
    )
    assert first.lease_id != second.lease_id
    result = generation_fail(
        generation_id=generation.pk,
        error="the first runner's late error",
        held=Generation.objects.filter(pk=generation.pk, lease_id=first.lease_id),
    )
    assert result.status == G.RUNNING and result.lease_id == second.lease_id


# --- measurements ----------------------------------------------------------------------------


def finished_video(revision, **fields) -> Generation:
    return make(
        revision,
        status=G.SUCCEEDED,
        video=f"generations/{uuid.uuid4()}.mp4",
        finished_at=ago(30),
        **fields,
    )


def metrics_version() -> int:
    import videometrics

    return videometrics.METRICS_VERSION


@pytest.mark.services
@pytest.mark.django_db
def test_a_measurement_whose_worker_stopped_heartbeating_is_failed_and_sent_again_once(
    broker_queues, active_revision, fault_settings
):
    generation = finished_video(active_revision, dispatched_at=ago(29))
    run = MetricsRun.objects.create(
        generation=generation, version=metrics_version(), heartbeat_at=ago(7)
    )
    live = finished_video(active_revision, dispatched_at=ago(29))
    MetricsRun.objects.create(generation=live, version=metrics_version(), heartbeat_at=ago(1))

    assert reconcile()["measured"] == 1
    run.refresh_from_db()
    assert (run.status, run.error) == (MetricsRun.Status.FAILED, STALE_REASON)
    assert sent_ids(broker_queues, "metrics", MEASURE) == [str(generation.pk)]
    assert reconcile()["measured"] == 0, "sent once: a pass later it is not sent again"
    assert len(broker_queues.sent("metrics")) == 1


@pytest.mark.services
@pytest.mark.django_db
def test_a_video_that_could_not_be_decoded_is_not_measured_again(
    broker_queues, active_revision, fault_settings
):
    generation = finished_video(active_revision, dispatched_at=ago(29))
    MetricsRun.objects.create(
        generation=generation,
        version=metrics_version(),
        status=MetricsRun.Status.FAILED,
        error="cannot decode: invalid data found when processing input",
    )
    assert reconcile()["measured"] == 0
    assert broker_queues.sent("metrics") == []


@pytest.mark.services
@pytest.mark.django_db
def test_a_finished_video_whose_measurement_never_went_out_is_measured_until_attempts_run_out(
    broker_queues, active_revision, fault_settings
):
    never_sent = finished_video(active_revision)
    spent = finished_video(active_revision)
    for _ in range(fault_settings.GENERATION_MAX_ATTEMPTS):
        MetricsRun.objects.create(
            generation=spent,
            version=metrics_version(),
            status=MetricsRun.Status.FAILED,
            error=STALE_REASON,
        )
    assert reconcile()["measured"] == 1
    assert sent_ids(broker_queues, "metrics", MEASURE) == [str(never_sent.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_long_measurement_keeps_its_heartbeat_fresh(active_revision, settings):
    settings.GENERATION_HEARTBEAT_SECONDS = 0.2
    generation = finished_video(active_revision)
    run = MetricsRun.objects.create(
        generation=generation, version=metrics_version(), heartbeat_at=ago(100)
    )
    with RunHeartbeat(run.pk):
        time.sleep(1.0)
    run.refresh_from_db()
    assert run.heartbeat_at > ago(1)


# --- litter ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_litter_older_than_the_limit_is_swept_and_what_is_in_use_is_kept(
    active_revision, fault_settings, tmp_path
):
    limit = fault_settings.LITTER_MAX_AGE_SECONDS
    old = limit + 60
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    fault_settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    stale_upload, fresh_upload = uploads / "tmpa.upload.mp4", uploads / "tmpb.upload.mp4"
    for path in (stale_upload, fresh_upload):
        path.write_bytes(b"x")
    os.utime(stale_upload, (time.time() - old, time.time() - old))

    rendering = make(
        active_revision,
        status=G.RUNNING,
        attempts=1,
        lease_id=uuid.uuid4(),
        lease_expires_at=timezone.now() + timedelta(seconds=5),
    )
    queued = make(active_revision, dispatched_at=timezone.now())
    failed = make(active_revision, status=G.FAILED)
    succeeded = finished_video(active_revision)
    kept = [
        # A long render's poster is written early and renamed at the end.
        media_file(fault_settings, f".{rendering.pk}.jpg.0123456789ab.part", old),
        media_file(fault_settings, f".{queued.pk}.mp4.0123456789ab.part"),  # young
        media_file(fault_settings, f"{succeeded.pk}.mp4", old),
        media_file(fault_settings, "README.txt", old),  # not a generation's
        fresh_upload,
    ]
    swept = [
        stale_upload,
        media_file(fault_settings, f".{queued.pk}.mp4.ba9876543210.part", old),
        media_file(fault_settings, f"{failed.pk}.mp4", old),
        media_file(fault_settings, f"{uuid.uuid4()}.mp4", old),  # its generation was deleted
    ]

    assert reconcile()["swept"] == len(swept)
    assert [p.name for p in kept if not p.exists()] == []
    assert [p.name for p in swept if p.exists()] == []
