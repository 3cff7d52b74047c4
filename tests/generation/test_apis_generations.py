"""Generations, config, worker metrics, feedback, the summary and the improvement log."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from generation.models import Generation, MetricValue
from generation.services.metrics import metric_store
from generation.services.requests import generation_request
from generation.services.tokens import worker_token_create
from improvements.services import improvement_log
from pipelines.models import ConfigRevision
from pipelines.selectors import pipeline_default
from pipelines.services.revisions import revision_approve_and_activate, revision_create
from reviews.models import Review
from reviews.selectors import feedback_summary
from tests.factories import FinishedGenerationFactory, PipelineFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


@pytest.fixture
def worker(db) -> APIClient:
    token, key = worker_token_create(name="gpu-1", pipelines=["*"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.token = token
    return client


@pytest.fixture
def admin(db) -> APIClient:
    client = APIClient()
    client.force_login(
        get_user_model().objects.create(username="boss", is_staff=True, is_superuser=True)
    )
    return client


@pytest.fixture
def reviewer_api(db) -> APIClient:
    reviewer = get_user_model().objects.create(username="rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    client = APIClient()
    client.force_login(reviewer)
    return client


def queue(prompt: str, backend: str = "remote") -> Generation:
    """A job of the default pipeline, queued as the site does."""
    return generation_request(pipeline=pipeline_default(), prompt=prompt, backend=backend)[0]


def create(client: APIClient, body: dict, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/v1/generations/", body, format="json", **headers)


# --- config ---------------------------------------------------------------------------------


def test_config_is_the_active_revision_with_an_etag(active_revision, worker):
    response = worker.get("/api/v1/config/")
    assert response.status_code == 200
    body = response.json()
    assert body["pipeline"] == "builtin" and body["schema_version"] == 1
    assert body["revision"] == active_revision.number
    assert body["params"] == active_revision.params
    assert body["params"]["model_variant"] == "draft" and body["experiment_arm"] == ""
    assert response["ETag"] == body["etag"] and response["ETag"].startswith('"')


def test_config_answers_304_without_a_body_while_unchanged(active_revision, worker):
    etag = worker.get("/api/v1/config/")["ETag"]
    for header in [etag, f"W/{etag}", f'"other", {etag}', "*"]:
        response = worker.get("/api/v1/config/", HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 304, header
        assert response.content == b"" and response["ETag"] == etag
    assert worker.get("/api/v1/config/", HTTP_IF_NONE_MATCH='"stale"').status_code == 200


def test_config_changes_its_etag_when_a_new_revision_is_activated(active_revision, worker):
    etag = worker.get("/api/v1/config/")["ETag"]
    revision = revision_create(
        pipeline=active_revision.pipeline,
        params={**active_revision.params, "crf": 18},
        parent=active_revision,
    )
    revision_approve_and_activate(revision=revision)
    response = worker.get("/api/v1/config/", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["revision"] == revision.number and response["ETag"] != etag


def test_config_without_an_active_revision_is_404(worker):
    PipelineFactory()  # the default pipeline, declared but with no revision yet
    response = worker.get("/api/v1/config/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_active_revision"


def test_config_before_the_default_pipeline_is_registered_is_404_naming_it(worker):
    response = worker.get("/api/v1/config/")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_pipeline" and "'builtin'" in error["message"]


# --- create with idempotency ------------------------------------------------------------------


def test_create_queues_a_remote_job(active_revision, worker):
    response = create(worker, {"prompt": "  Harbour traffic briefing  "})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued" and body["backend"] == "remote"
    assert body["prompt"] == "Harbour traffic briefing" and body["lease"] is None
    assert body["revision"] == active_revision.number
    assert body["pipeline"] == "builtin" and body["params"] == active_revision.params


def test_the_same_idempotency_key_returns_the_same_generation(active_revision, worker):
    first = create(worker, {"prompt": "Harbour traffic"}, key="key-1")
    again = create(worker, {"prompt": "Harbour traffic"}, key="key-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Generation.objects.count() == 1


@pytest.mark.parametrize(
    "different", [{"prompt": "Something else"}, {"prompt": "Harbour traffic", "backend": "gpu"}]
)
def test_the_same_key_with_a_different_body_is_409(active_revision, worker, different):
    create(worker, {"prompt": "Harbour traffic"}, key="key-1")
    response = create(worker, different, key="key-1")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Generation.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 129, "has space", "naïve"])
def test_a_malformed_idempotency_key_is_400(active_revision, worker, key):
    response = worker.post(
        "/api/v1/generations/", {"prompt": "p"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="the in-memory SQLite test database (shared cache) answers 'table is locked' instead "
    "of waiting; tests/generation/test_remote_worker_e2e.py races a live server on an SQLite "
    "file instead",
)
def test_concurrent_posts_with_one_idempotency_key_make_one_row(active_revision):
    _, key = worker_token_create(name="racer", pipelines=["builtin"])
    statuses: list[int] = []
    ids: set[str] = set()
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        try:
            barrier.wait()
            response = create(client, {"prompt": "Only once"}, key="same-key")
            statuses.append(response.status_code)
            ids.add(response.json()["id"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(statuses) == [200] * 5 + [201]
    assert len(ids) == 1
    assert Generation.objects.filter(idempotency_key="same-key").count() == 1


def test_a_worker_can_create_and_claim_in_one_call(active_revision, worker):
    response = create(worker, {"prompt": "My own prompt", "claim": True}, key="k")
    body = response.json()
    assert response.status_code == 201
    assert body["status"] == "running" and body["lease"]["lease_id"]
    assert body["claimed_by"] == "gpu-1"
    retry = create(worker, {"prompt": "My own prompt", "claim": True}, key="k")
    assert retry.status_code == 200 and retry.json()["lease"] == body["lease"]


def test_only_a_worker_can_claim_on_create(active_revision, admin):
    response = create(admin, {"prompt": "p", "claim": True})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_claim"


def test_an_admin_can_queue_a_builtin_render(
    active_revision, admin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(admin, {"prompt": "Rendered on the server", "backend": "builtin"})
    assert response.status_code == 201
    generation = Generation.objects.get()
    assert generation.backend == "builtin" and generation.status == "succeeded"
    assert generation.requested_by.username == "boss"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": 5},
        {"prompt": "x" * 2001},
        {"prompt": "a\x00b"},
        {"prompt": "p", "backend": "no spaces allowed"},
        ["a list"],
    ],
)
def test_a_bad_create_body_is_400_and_writes_nothing(active_revision, worker, body):
    response = worker.post("/api/v1/generations/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid", "invalid_prompt"}
    assert Generation.objects.count() == 0


# --- list and detail ------------------------------------------------------------------------


@pytest.fixture
def listed(active_revision):
    old = FinishedGenerationFactory(prompt="Old harbour report", revision=active_revision)
    Generation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    FinishedGenerationFactory(prompt="Tram ridership")
    queue("Harbour queued")
    return active_revision


@pytest.mark.parametrize(
    ("query", "prompts"),
    [
        ("", {"Old harbour report", "Tram ridership", "Harbour queued"}),
        ("?status=queued", {"Harbour queued"}),
        ("?q=harbour", {"Old harbour report", "Harbour queued"}),
        ("?status=succeeded&q=HARBOUR", {"Old harbour report"}),
        ("?backend=remote", {"Harbour queued"}),
    ],
)
def test_list_filters_by_status_prompt_text_and_backend(listed, worker, query, prompts):
    response = worker.get(f"/api/v1/generations/{query}")
    assert response.status_code == 200
    assert {g["prompt"] for g in response.json()["results"]} == prompts


def test_list_filters_by_revision_and_date_range(listed, worker):
    by_revision = worker.get(f"/api/v1/generations/?revision={listed.number}").json()
    assert {g["prompt"] for g in by_revision["results"]} == {"Old harbour report", "Harbour queued"}
    week_ago = (timezone.now() - timedelta(days=7)).date().isoformat()
    recent = worker.get(f"/api/v1/generations/?created_after={week_ago}").json()
    assert {g["prompt"] for g in recent["results"]} == {"Tram ridership", "Harbour queued"}
    older = worker.get(f"/api/v1/generations/?created_before={week_ago}T00:00:00Z").json()
    assert [g["prompt"] for g in older["results"]] == ["Old harbour report"]


def test_list_is_paginated_newest_first(listed, worker):
    first = worker.get("/api/v1/generations/?page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"]
    assert first["results"][0]["prompt"] == "Harbour queued"
    second = worker.get(first["next"]).json()
    assert [g["prompt"] for g in second["results"]] == ["Old harbour report"]


@pytest.mark.parametrize("page", ["99", "0", "-1", "99999999999999999999999"])
def test_a_page_out_of_range_is_a_json_404(listed, worker, page):
    response = worker.get(f"/api/v1/generations/?page={page}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "query",
    ["page=", "page=abc", "page=1e9", "page=last", "page_size=0", "page_size=201", "page_size=x"],
)
def test_a_page_or_page_size_that_is_not_a_number_in_range_is_400(listed, worker, query):
    response = worker.get(f"/api/v1/generations/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    "query",
    [
        "status=exploded",
        "revision=abc",
        "revision=-3",
        "created_after=yesterday",
        "created_before=2024-13-45",
    ],
)
def test_bad_list_filters_are_400(listed, worker, query):
    response = worker.get(f"/api/v1/generations/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_detail_has_script_and_metrics_by_source(active_revision, worker):
    generation = FinishedGenerationFactory(script={"title": "T", "scenes": []})
    metric_store(generation=generation, values={"sharpness": 0.7}, version=3, source="server")
    metric_store(generation=generation, values={"sharpness": 0.9}, version=1, source="worker")
    body = worker.get(f"/api/v1/generations/{generation.id}/").json()
    assert body["script"] == {"title": "T", "scenes": []}
    assert body["metrics"] == {"server": {"sharpness": 0.7}, "worker": {"sharpness": 0.9}}
    assert body["video_url"].endswith(f"/videos/{generation.id}.mp4")


@pytest.mark.parametrize(
    "generation_id", ["not-a-uuid", "5b0a7c1e-0000-4000-8000-000000000000", "%00", "1" * 300]
)
def test_unknown_or_malformed_generation_ids_are_a_json_404(worker, generation_id):
    response = worker.get(f"/api/v1/generations/{generation_id}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_generation"


# --- worker metrics -------------------------------------------------------------------------


def test_worker_metrics_are_stored_beside_the_servers_and_never_over_them(active_revision, worker):
    generation = FinishedGenerationFactory()
    metric_store(generation=generation, values={"sharpness": 0.5}, version=2, source="server")
    url = f"/api/v1/generations/{generation.id}/metrics/"
    response = worker.post(url, {"metrics": {"sharpness": 0.99, "clip_score": 31.5}}, format="json")
    assert response.status_code == 201
    assert response.json() == {
        "generation": str(generation.id),
        "source": "worker",
        "version": 1,
        "metrics": {"sharpness": 0.99, "clip_score": 31.5},
    }
    worker.post(url, {"metrics": {"sharpness": 0.1}, "version": 2}, format="json")
    rows = set(MetricValue.objects.values_list("name", "value", "version", "source"))
    assert rows == {("sharpness", 0.5, 2, "server"), ("sharpness", 0.1, 2, "worker")}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metrics": {}},
        {"metrics": {"a": "high"}},
        {"metrics": {"a": None}},
        {"metrics": [1]},
        {"metrics": {"x" * 65: 1}},
        {"metrics": {"a": 1}, "version": 0},
    ],
)
def test_bad_worker_metrics_are_400(active_revision, worker, body):
    generation = FinishedGenerationFactory()
    response = worker.post(f"/api/v1/generations/{generation.id}/metrics/", body, format="json")
    assert response.status_code == 400
    assert MetricValue.objects.count() == 0


def test_metrics_for_an_unfinished_generation_are_409(active_revision, worker):
    generation = queue("queued")
    response = worker.post(
        f"/api/v1/generations/{generation.id}/metrics/", {"metrics": {"a": 1}}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_finished"


# --- feedback, summary, improvements ------------------------------------------------------------


def test_a_reviewer_records_feedback_and_the_summary_shows_it(active_revision, reviewer_api):
    generation = FinishedGenerationFactory()
    response = reviewer_api.post(
        f"/api/v1/generations/{generation.id}/feedback/",
        {
            "ratings": {"visual_quality": 4, "content_relevance": 5},
            "comments": "Crisp",
            "issues": [{"category": "blur", "start_s": 1.0, "end_s": 2.0, "severity": 2}],
        },
        format="json",
    )
    assert response.status_code == 201
    review = Review.objects.get(pk=response.json()["review_id"])
    assert review.reviewer.username == "rita" and review.comments == "Crisp"
    assert review.issues.get().category == "blur"
    summary = reviewer_api.get("/api/v1/feedback/summary/").json()
    assert summary["avg_visual_quality"] == 4 and summary["total_reviews"] == 1
    assert summary["issue_counts"]["blur"] == 1


def test_a_second_review_of_the_same_generation_is_409(active_revision, reviewer_api):
    generation = FinishedGenerationFactory()
    url = f"/api/v1/generations/{generation.id}/feedback/"
    reviewer_api.post(url, {"ratings": {"visual_quality": 4}}, format="json")
    response = reviewer_api.post(url, {"ratings": {"visual_quality": 2}}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_reviewed"


@pytest.mark.parametrize(
    ("ratings", "code"),
    [
        ({"visual_quality": 6}, "invalid_rating"),
        ({"visual_quality": "4"}, "invalid_rating"),
        ({"sparkle": 3}, "unknown_dimension"),
        ({}, "invalid"),
        ("nope", "invalid"),
    ],
)
def test_bad_ratings_are_400_with_a_code(active_revision, reviewer_api, ratings, code):
    generation = FinishedGenerationFactory()
    response = reviewer_api.post(
        f"/api/v1/generations/{generation.id}/feedback/", {"ratings": ratings}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert Review.objects.count() == 0


def test_feedback_on_an_unfinished_generation_is_400(active_revision, reviewer_api):
    generation = queue("queued")
    response = reviewer_api.post(
        f"/api/v1/generations/{generation.id}/feedback/",
        {"ratings": {"visual_quality": 3}},
        format="json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "not_finished"


def test_the_summary_has_the_same_keys_as_get_feedback_summary(active_revision, worker):
    assert worker.get("/api/v1/feedback/summary/").json() == feedback_summary()


def test_the_improvement_log_is_the_seeds(active_revision, worker):
    pipeline = active_revision.pipeline
    revision_create(
        pipeline=pipeline,
        params={**active_revision.params, "crf": 20},
        parent=active_revision,
        rationale="sharper",
    )
    body = worker.get("/api/v1/improvements/?limit=1").json()
    assert body == improvement_log(pipeline=pipeline, limit=1)
    assert body[0]["rationale"] == "sharper"
    everything = worker.get("/api/v1/improvements/").json()
    assert len(everything) == ConfigRevision.objects.filter(pipeline=pipeline).count() == 3
    assert worker.get("/api/v1/improvements/?pipeline=builtin&limit=1").json() == body
    assert worker.get("/api/v1/improvements/?limit=0").status_code == 400
    unknown = worker.get("/api/v1/improvements/?pipeline=nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_pipeline"


# --- errors ---------------------------------------------------------------------------------


def test_malformed_json_is_400_parse_error(active_revision, worker):
    response = worker.post("/api/v1/generations/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_deeply_nested_json_is_400_not_500(active_revision, worker):
    body = "[" * 100_000 + "]" * 100_000
    response = worker.post("/api/v1/generations/", body, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_of_an_unsupported_type_is_415(active_revision, worker, content_type):
    response = worker.post("/api/v1/generations/", "prompt=x", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_the_upload_endpoint_takes_json_only_with_storage_keys_and_no_other_type(
    active_revision, worker
):
    """JSON completes a job whose files went to object storage (upload-url/); it must name
    them. A body of another type is 415."""
    job = queue("queued")
    url = f"/api/v1/jobs/{job.id}/complete/"
    response = worker.post(url, {}, format="json")
    assert response.status_code == 400
    assert {"lease_id", "video_key"} <= set(response.json()["error"]["details"])
    assert worker.post(url, "video", content_type="text/plain").status_code == 415
    job.refresh_from_db()
    assert job.status == "queued"


def test_a_json_body_over_the_limit_is_413(active_revision, worker, settings):
    settings.API_MAX_JSON_BYTES = 100
    response = worker.post("/api/v1/generations/", {"prompt": "x" * 200}, format="json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_an_oversized_multipart_form_field_is_413_not_500(active_revision, worker, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    job = queue("queued")
    response = worker.post(
        f"/api/v1/jobs/{job.id}/complete/",
        {"lease_id": "x", "script": "y" * 5000},
        format="multipart",
    )
    assert response.status_code == 413


def test_unknown_api_paths_and_wrong_methods_answer_json(worker):
    missing = worker.get("/api/v1/nothing-here/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    no_slash = worker.post("/api/v1/jobs/claim", {}, format="json")
    assert no_slash.status_code == 404
    wrong = worker.delete("/api/v1/config/")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_requests_past_the_rate_are_429_with_retry_after(active_revision, worker, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "worker": "3/min"}
    statuses = [worker.get("/api/v1/config/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = worker.get("/api/v1/config/")
    assert throttled.json()["error"]["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0


def test_the_rate_is_counted_per_token(active_revision, worker, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "worker": "2/min"}
    _, other_key = worker_token_create(name="gpu-2", pipelines=["*"])
    other = Client(HTTP_AUTHORIZATION=f"Token {other_key}")
    assert [worker.get("/api/v1/config/").status_code for _ in range(3)] == [200, 200, 429]
    assert other.get("/api/v1/config/").status_code == 200


@pytest.mark.parametrize("kind", ["fields", "files"])
def test_a_multipart_body_with_too_many_parts_is_400_not_500(active_revision, worker, kind):
    job = queue("queued")
    if kind == "fields":
        body = {f"f{i}": "x" for i in range(1100)}
    else:
        body = {f"f{i}": SimpleUploadedFile(f"{i}.bin", b"x") for i in range(120)}
    response = worker.post(f"/api/v1/jobs/{job.id}/complete/", body, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
