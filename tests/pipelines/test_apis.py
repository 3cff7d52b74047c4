"""The pipelines API — declare, read, configuration with ETags — and the job API per pipeline:
what a worker may register and claim, and what its jobs carry."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from generation.models import Generation
from generation.services.requests import generation_request
from pipelines.declarations import defaults_of
from pipelines.models import ConfigRevision, Pipeline, SchemaVersion
from pipelines.selectors import pipeline_get, revision_active
from pipelines.services.revisions import revision_approve_and_activate, revision_create
from tests.pipelines.conftest import DIFFUSERS, body, declaration, worker

pytestmark = pytest.mark.django_db
URL = "/api/v1/pipelines/diffusers/"


def snapshot() -> tuple:
    return (
        list(Pipeline.objects.values_list("slug", "name", "description", "updated_at")),
        list(SchemaVersion.objects.values_list("pipeline__slug", "number", "digest")),
        list(ConfigRevision.objects.values_list("pipeline__slug", "number", "status")),
    )


@pytest.fixture
def declared(gpu):
    response = gpu.put(URL, body(), format="json")
    assert response.status_code == 201, response.content
    return pipeline_get(slug="diffusers")


def queue(slug: str, prompt: str) -> Generation:
    return generation_request(pipeline=pipeline_get(slug=slug), prompt=prompt, backend="remote")[0]


# --- declaring --------------------------------------------------------------------------------


def test_the_first_declaration_is_201_with_revision_1_from_the_defaults_active(gpu):
    response = gpu.put(URL, body(), format="json")
    assert response.status_code == 201
    data = response.json()
    assert (data["slug"], data["name"], data["runs_on"]) == ("diffusers", "Diffusers", "remote")
    assert data["registered_by"] == "worker:gpu-1" and data["schema_version"] == 1
    assert data["parameters"]["properties"] == DIFFUSERS["properties"]
    assert data["active_revision"] == {
        "number": 1,
        "status": "active",
        "schema_version": 1,
        "params": defaults_of(DIFFUSERS),
    }


def test_the_same_body_again_is_200_and_changes_nothing(gpu, declared):
    before = snapshot()
    first = gpu.get(URL).json()
    response = gpu.put(URL, body(), format="json")
    assert response.status_code == 200
    assert response.json() == first
    assert snapshot() == before


def test_changed_parameters_make_a_new_schema_version_and_old_revisions_keep_theirs(gpu, declared):
    wider = declaration(num_frames={"type": "integer", "minimum": 8, "maximum": 81, "default": 16})
    response = gpu.put(URL, body(wider), format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["schema_version"] == 2
    assert data["parameters"]["properties"]["num_frames"]["maximum"] == 81
    assert data["active_revision"]["number"] == 1 and data["active_revision"]["schema_version"] == 1
    assert list(declared.versions.values_list("number", flat=True)) == [2, 1]


def test_a_declaration_that_breaks_the_active_revision_is_400_naming_each_key(gpu, declared):
    active = revision_active(pipeline=declared)
    revision_approve_and_activate(
        revision=revision_create(
            pipeline=declared, params={**active.params, "num_frames": 40}, parent=active
        )
    )
    before = snapshot()
    narrower = declaration(
        num_frames={"type": "integer", "minimum": 8, "maximum": 24, "default": 16},
        guidance_scale=None,
    )
    response = gpu.put(URL, body(narrower, name="Renamed"), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "breaks_active_revision"
    assert set(error["details"]) == {"num_frames", "guidance_scale"}
    assert "num_frames" in error["message"] and "guidance_scale" in error["message"]
    assert snapshot() == before


def test_a_worker_may_declare_slugs_matching_its_patterns_only(gpu):
    assert gpu.put("/api/v1/pipelines/diffusers-cog/", body(), format="json").status_code == 201
    response = gpu.put("/api/v1/pipelines/wan/", body(), format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "pipeline_not_allowed" and "'wan'" in error["message"]
    assert list(Pipeline.objects.values_list("slug", flat=True)) == ["diffusers-cog"]


def test_a_worker_not_allowed_the_slug_cannot_change_an_existing_pipeline(declared):
    before = snapshot()
    other = worker("cpu-1", "builtin")
    response = other.put(URL, body(name="Hijacked"), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "pipeline_not_allowed"
    assert snapshot() == before


def test_an_admin_may_declare_any_pipeline_and_a_reviewer_none(admin_api, db):
    response = admin_api.put("/api/v1/pipelines/wan/", body(name="Wan"), format="json")
    assert response.status_code == 201 and response.json()["registered_by"] == "user:boss"
    reviewer = get_user_model().objects.create(username="rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    client = APIClient()
    client.force_login(reviewer)
    assert client.put("/api/v1/pipelines/ltx/", body(), format="json").status_code == 403
    assert APIClient().put("/api/v1/pipelines/ltx/", body(), format="json").status_code == 401
    assert not Pipeline.objects.filter(slug="ltx").exists()


@pytest.mark.parametrize(
    ("slug", "payload", "field"),
    [
        ("Diffusers", body(), None),
        ("diffusers", {"parameters": DIFFUSERS}, "name"),
        ("diffusers", {"name": "D", "parameters": DIFFUSERS, "description": 5}, "description"),
        ("diffusers", {"name": "D"}, "parameters"),
    ],
)
def test_a_malformed_declaration_request_is_400_and_writes_nothing(gpu, slug, payload, field):
    response = worker("any", "*").put(f"/api/v1/pipelines/{slug}/", payload, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    if field is None:
        assert error["code"] == "invalid_slug" and "'Diffusers'" in error["message"]
    else:
        assert field in error["details"]
    assert snapshot() == ([], [], [])


# --- reading ----------------------------------------------------------------------------------


def test_the_list_and_the_detail_show_each_pipeline(gpu, declared, builtin_pipeline):
    listed = gpu.get("/api/v1/pipelines/").json()
    assert [p["slug"] for p in listed] == ["builtin", "diffusers"]
    builtin = listed[0]
    assert builtin["runs_on"] == "server" and builtin["active_revision"]["number"] == 1
    assert "crf" in builtin["parameters"]["properties"]
    assert gpu.get(URL).json() == listed[1]


def test_an_unknown_pipeline_is_a_json_404_naming_it(gpu, builtin_pipeline):
    for path in ("/api/v1/pipelines/nope/", "/api/v1/pipelines/nope/config/"):
        response = gpu.get(path)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "unknown_pipeline"
        assert "'nope'" in error["message"] and "builtin" in error["message"]


# --- configuration ----------------------------------------------------------------------------


def test_a_pipelines_config_has_an_etag_and_answers_304_while_unchanged(gpu, declared):
    response = gpu.get(f"{URL}config/")
    assert response.status_code == 200
    data = response.json()
    assert (data["pipeline"], data["revision"], data["schema_version"]) == ("diffusers", 1, 1)
    assert data["params"] == defaults_of(DIFFUSERS) and data["experiment_arm"] == ""
    etag = response["ETag"]
    assert data["etag"] == etag
    unchanged = gpu.get(f"{URL}config/", HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""
    active = revision_active(pipeline=declared)
    newer = revision_approve_and_activate(
        revision=revision_create(
            pipeline=declared, params={**active.params, "num_frames": 24}, parent=active
        )
    )
    changed = gpu.get(f"{URL}config/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert (
        changed.json()["revision"] == newer.number and changed.json()["params"]["num_frames"] == 24
    )


def test_the_old_config_endpoint_is_the_default_pipelines(gpu, declared, active_revision):
    old = gpu.get("/api/v1/config/")
    new = gpu.get("/api/v1/pipelines/builtin/config/")
    assert old.status_code == new.status_code == 200
    assert old.json() == new.json() and old["ETag"] == new["ETag"]
    assert old.json()["pipeline"] == "builtin"
    assert old.json()["revision"] == active_revision.number
    assert gpu.get(f"{URL}config/")["ETag"] != old["ETag"]


def test_the_default_pipeline_is_a_setting(gpu, declared, settings):
    settings.FEEDBACKLOOP_DEFAULT_PIPELINE = "diffusers"
    assert gpu.get("/api/v1/config/").json()["pipeline"] == "diffusers"


# --- jobs -------------------------------------------------------------------------------------


def test_a_claim_for_named_pipelines_gets_only_their_jobs_with_pipeline_and_params(
    gpu, declared, active_revision
):
    queue("builtin", "older builtin job")
    job = queue("diffusers", "a diffusers job")
    omni = worker("omni", "*")
    response = omni.post("/api/v1/jobs/claim/", {"pipelines": ["diffusers"]}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["id"] == str(job.id) and data["pipeline"] == "diffusers"
    assert data["revision"] == 1 and data["params"] == defaults_of(DIFFUSERS)
    assert data["lease"]["lease_id"]
    assert (
        omni.post("/api/v1/jobs/claim/", {"pipelines": ["diffusers"]}, format="json").status_code
        == 204
    )


def test_a_claim_without_pipelines_draws_from_every_pipeline_the_token_may_serve(
    gpu, declared, active_revision
):
    queue("builtin", "not for this worker")
    job = queue("diffusers", "for this worker")
    response = gpu.post("/api/v1/jobs/claim/", {}, format="json")
    assert response.status_code == 200 and response.json()["id"] == str(job.id)
    assert gpu.post("/api/v1/jobs/claim/", {}, format="json").status_code == 204
    assert Generation.objects.get(prompt="not for this worker").status == "queued"


def test_claiming_a_pipeline_the_worker_may_not_serve_is_403_and_leases_nothing(
    gpu, declared, active_revision
):
    queue("builtin", "builtin job")
    response = gpu.post(
        "/api/v1/jobs/claim/", {"pipelines": ["diffusers", "builtin"]}, format="json"
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "pipeline_not_allowed" and "'builtin'" in error["message"]
    assert not Generation.objects.filter(status="running").exists()


def test_claiming_an_unknown_pipeline_is_404_naming_it(gpu, declared):
    response = gpu.post("/api/v1/jobs/claim/", {"pipelines": ["diffusers-nope"]}, format="json")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_pipeline" and "'diffusers-nope'" in error["message"]


def test_creating_and_claiming_in_one_call_is_403_for_a_pipeline_the_worker_may_not_serve(
    gpu, declared, active_revision
):
    response = gpu.post(
        "/api/v1/generations/", {"prompt": "p", "pipeline": "builtin", "claim": True}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "pipeline_not_allowed"
    assert not Generation.objects.exists()


def test_queuing_names_its_pipeline(gpu, declared, active_revision):
    response = gpu.post(
        "/api/v1/generations/", {"prompt": "A fox in snow", "pipeline": "diffusers"}, format="json"
    )
    assert response.status_code == 201
    data = response.json()
    assert data["pipeline"] == "diffusers" and data["revision"] == 1
    assert data["params"] == defaults_of(DIFFUSERS) and data["backend"] == "remote"
    old_style = gpu.post("/api/v1/generations/", {"prompt": "No pipeline named"}, format="json")
    assert old_style.status_code == 201 and old_style.json()["pipeline"] == "builtin"
    listed = gpu.get("/api/v1/generations/?pipeline=diffusers").json()["results"]
    assert [g["prompt"] for g in listed] == ["A fox in snow"]


def test_queuing_for_an_unknown_pipeline_is_404_and_writes_nothing(gpu, declared):
    response = gpu.post("/api/v1/generations/", {"prompt": "p", "pipeline": "nope"}, format="json")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_pipeline" and "'nope'" in error["message"]
    assert not Generation.objects.exists()


def test_a_server_render_of_a_remote_pipeline_is_400(admin_api, declared):
    response = admin_api.post(
        "/api/v1/generations/",
        {"prompt": "p", "pipeline": "diffusers", "backend": "builtin"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_backend"
    assert not Generation.objects.exists()


def test_the_old_job_endpoints_keep_working_for_the_default_pipeline(active_revision):
    old_worker = worker("legacy", "builtin")
    created = old_worker.post("/api/v1/generations/", {"prompt": "as before"}, format="json")
    assert created.status_code == 201
    claimed = old_worker.post("/api/v1/jobs/claim/", {}, format="json")
    assert claimed.status_code == 200 and claimed.json()["id"] == created.json()["id"]
    lease = {"lease_id": claimed.json()["lease"]["lease_id"], "progress": 0.5}
    beat = old_worker.post(f"/api/v1/jobs/{created.json()['id']}/heartbeat/", lease, format="json")
    assert beat.status_code == 200 and beat.json()["progress"] == 0.5


def test_the_feedback_summary_is_per_pipeline(db, builtin_pipeline):
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    client = APIClient()
    client.force_authenticate(UserFactory(username="summ", is_staff=True))
    default = client.get("/api/v1/feedback/summary/")
    assert default.status_code == 200 and default.json()["pipeline"] == "builtin"
    assert client.get("/api/v1/feedback/summary/?pipeline=builtin").json()["pipeline"] == "builtin"
    missing = client.get("/api/v1/feedback/summary/?pipeline=nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
