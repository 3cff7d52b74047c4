import av
import pytest

from feedbackloop.errors import Conflict, InvalidInput
from generation.models import Generation, MetricsRun, MetricValue
from generation.services.rendering import generation_run
from generation.services.requests import generation_request
from pipelines.builtin.declaration import DECLARATION
from pipelines.services.registration import pipeline_register

pytestmark = pytest.mark.django_db


def default_pipeline():
    """The default pipeline (builtin)."""
    from pipelines.selectors import pipeline_default

    return pipeline_default()


def test_generation_run_renders_records_resources_and_the_script(active_revision):
    generation, created = generation_request(
        pipeline=default_pipeline(), prompt="Solar power basics", enqueue=False
    )
    assert created and generation.status == Generation.Status.QUEUED
    done = generation_run(generation_id=str(generation.id))
    assert done.status == Generation.Status.SUCCEEDED, done.error
    assert done.generation_seconds > 0 and done.cpu_seconds > 0
    assert done.peak_rss_bytes > 10 * 2**20
    assert done.started_at <= done.finished_at
    assert (done.width, done.height, done.codec) == (192, 108, "h264")
    assert done.video.size == done.size_bytes > 0
    assert done.poster.name.endswith(".jpg")
    assert done.script["scenes"] and done.script["scenes"][0]["text"]
    with av.open(done.video.path) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")


def test_second_delivery_of_a_finished_generation_does_nothing(active_revision):
    generation, _ = generation_request(
        pipeline=default_pipeline(), prompt="Wind farms", enqueue=False
    )
    first = generation_run(generation_id=str(generation.id))
    again = generation_run(generation_id=str(generation.id))
    assert again.finished_at == first.finished_at and again.attempts == 1


def broken_renderer(**kwargs):
    """An in-process renderer that fails, as a pipeline's ``renderer`` names it."""
    raise RuntimeError("encoder exploded")


def test_render_error_marks_the_generation_failed_with_the_error(db):
    pipeline = pipeline_register(
        slug="broken",
        name="Broken renderer",
        parameters=DECLARATION,
        renderer="tests.generation.test_services_rendering:broken_renderer",
    ).pipeline
    generation, _ = generation_request(pipeline=pipeline, prompt="Doomed", enqueue=False)
    failed = generation_run(generation_id=str(generation.id))
    assert failed.status == Generation.Status.FAILED
    assert "encoder exploded" in failed.error
    assert not failed.video


def test_success_enqueues_metrics_on_commit(active_revision, django_capture_on_commit_callbacks):
    generation, _ = generation_request(
        pipeline=default_pipeline(), prompt="Metrics please", enqueue=False
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        generation_run(generation_id=str(generation.id))
    assert len(callbacks) == 1
    run = MetricsRun.objects.get(generation=generation)
    assert run.status == MetricsRun.Status.SUCCEEDED, run.error
    names = set(MetricValue.objects.filter(generation=generation).values_list("name", flat=True))
    assert {"sharpness", "visual_quality", "temporal_coherence", "text_cer"} <= names


def test_request_enqueues_render_on_commit_and_eager_task_finishes_it(
    active_revision, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        generation, _ = generation_request(
            pipeline=default_pipeline(), prompt="Queued through Celery"
        )
    generation.refresh_from_db()
    assert generation.status == Generation.Status.SUCCEEDED


def test_idempotency_key_returns_the_same_generation_and_refuses_a_different_body(active_revision):
    first, created = generation_request(
        pipeline=default_pipeline(), prompt="Same", idempotency_key="k1", enqueue=False
    )
    second, created_again = generation_request(
        pipeline=default_pipeline(), prompt="Same", idempotency_key="k1", enqueue=False
    )
    assert created and not created_again and first.pk == second.pk
    with pytest.raises(Conflict):
        generation_request(
            pipeline=default_pipeline(), prompt="Different", idempotency_key="k1", enqueue=False
        )
    assert Generation.objects.count() == 1


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 2001, None])
def test_bad_prompt_is_refused_and_nothing_is_written(active_revision, prompt):
    with pytest.raises(InvalidInput):
        generation_request(pipeline=default_pipeline(), prompt=prompt, enqueue=False)
    assert Generation.objects.count() == 0


def test_a_generation_of_a_pipeline_without_a_renderer_needs_a_remote_backend(active_revision):
    remote = pipeline_register(slug="gpu", name="GPU", parameters=DECLARATION).pipeline
    with pytest.raises(InvalidInput, match="remote workers"):
        generation_request(pipeline=remote, prompt="No server render", enqueue=False)
    job, created = generation_request(
        pipeline=remote, prompt="A job for a worker", backend="remote", enqueue=False
    )
    assert created and job.revision.pipeline == remote and job.status == "queued"


def test_the_same_idempotency_key_for_another_pipeline_is_refused(active_revision):
    other = pipeline_register(slug="gpu", name="GPU", parameters=DECLARATION).pipeline
    generation_request(
        pipeline=default_pipeline(), prompt="Same", idempotency_key="k1", backend="remote"
    )
    with pytest.raises(Conflict):
        generation_request(pipeline=other, prompt="Same", idempotency_key="k1", backend="remote")
    assert Generation.objects.count() == 1
