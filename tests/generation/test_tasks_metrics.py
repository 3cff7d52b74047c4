"""The server's metrics task: rows per metric with a version, idempotent, honest on bad input."""

import json

import pytest
from django.core.management import call_command

from generation.models import Generation, MetricsRun, MetricValue
from generation.services.metrics import metric_store
from generation.services.rendering import generation_run
from generation.services.requests import generation_request
from generation.tasks import metrics_compute_task
from tests.videometrics.test_degradations import REQUIRED_KEYS

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(active_revision):
    generation, _ = generation_request(
        pipeline=active_revision.pipeline, prompt="Metrics of a briefing", enqueue=False
    )
    return generation_run(generation_id=str(generation.id))


def test_task_stores_one_row_per_metric_with_the_version(finished):
    import videometrics

    assert metrics_compute_task.delay(str(finished.id)).get() == "succeeded"
    rows = MetricValue.objects.filter(generation=finished, source="server")
    assert {r.version for r in rows} == {videometrics.METRICS_VERSION}
    names = [r.name for r in rows]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_KEYS  # every key the CLI promises, as a row
    assert 0 <= rows.get(name="visual_quality").value <= 1


def test_second_delivery_does_not_recompute(finished):
    metrics_compute_task.delay(str(finished.id))
    first_ids = set(MetricValue.objects.values_list("id", flat=True))
    metrics_compute_task.delay(str(finished.id))
    assert set(MetricValue.objects.values_list("id", flat=True)) == first_ids
    assert MetricsRun.objects.filter(generation=finished).count() == 1


def test_recompute_at_a_new_version_replaces_older_rows(finished, monkeypatch):
    import videometrics

    metrics_compute_task.delay(str(finished.id))
    monkeypatch.setattr(videometrics, "METRICS_VERSION", videometrics.METRICS_VERSION + 1)
    metrics_compute_task.delay(str(finished.id))
    versions = set(
        MetricValue.objects.filter(generation=finished).values_list("version", flat=True)
    )
    assert versions == {videometrics.METRICS_VERSION}


def test_worker_rows_are_never_touched_by_the_server(finished):
    metric_store(generation=finished, values={"sharpness": 1.0}, version=1, source="worker")
    metrics_compute_task.delay(str(finished.id))
    assert MetricValue.objects.get(generation=finished, source="worker").value == 1.0


def test_corrupt_video_marks_the_run_failed_with_the_reason_and_writes_no_rows(finished):
    path = finished.video.path
    with open(path, "r+b") as fh:
        fh.truncate(2000)
    result = metrics_compute_task.delay(str(finished.id)).get()
    assert result == "failed"
    run = MetricsRun.objects.get(generation=finished)
    assert run.status == "failed" and run.error and "\n" not in run.error
    assert not MetricValue.objects.filter(generation=finished).exists()
    assert Generation.objects.get(pk=finished.pk).status == "succeeded"


def test_compute_metrics_command_prints_one_json_object(finished, tmp_path, capsys):
    script = tmp_path / "script.json"
    script.write_text(json.dumps(finished.script))
    call_command(
        "compute_metrics", finished.video.path, "--script-file", str(script), "--json", "--no-ocr"
    )
    data = json.loads(capsys.readouterr().out)
    assert data["frames"] > 0 and data["width"] == 192
