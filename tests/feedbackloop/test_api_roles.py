"""Who may call what: the role × endpoint table, worker tokens, the admin and the command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from generation.models import WorkerToken
from generation.services.leases import job_claim
from generation.services.requests import generation_request
from generation.services.tokens import worker_token_create, worker_token_revoke
from pipelines.builtin.renderer import render_video
from pipelines.selectors import pipeline_default
from tests.factories import FinishedGenerationFactory

User = get_user_model()


def person(username: str, **flags) -> User:
    """A user without a password: hashing one costs half a second per user."""
    return User.objects.create(username=username, **flags)


pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "worker", "reviewer", "admin", "no_role")

# endpoint → expected status for: anonymous, worker, reviewer, admin, signed in without a role.
# Allowed roles send a valid request, so their status is the operation's success code.
TABLE = {
    "GET config": (401, 200, 200, 200, 403),
    "GET pipelines": (401, 200, 200, 200, 403),
    "GET pipelines/{slug}": (401, 200, 200, 200, 403),
    "GET pipelines/{slug}/config": (401, 200, 200, 200, 403),
    "PUT pipelines/{slug}": (401, 200, 403, 200, 403),
    "POST jobs/claim": (401, 200, 403, 403, 403),
    "POST jobs/{id}/heartbeat": (401, 200, 403, 403, 403),
    "POST jobs/{id}/complete": (401, 200, 403, 403, 403),
    "POST jobs/{id}/fail": (401, 200, 403, 403, 403),
    "GET generations": (401, 200, 200, 200, 403),
    "POST generations": (401, 201, 403, 201, 403),
    "GET generations/{id}": (401, 200, 200, 200, 403),
    "POST generations/{id}/metrics": (401, 201, 403, 403, 403),
    "POST generations/{id}/feedback": (401, 403, 201, 201, 403),
    "GET feedback/summary": (401, 200, 200, 200, 403),
    "GET improvements": (401, 200, 200, 200, 403),
    "GET /api/schema/": (200, 200, 200, 200, 200),
    "GET /api/docs/": (200, 200, 200, 200, 200),
    "GET /admin/": (302, 403, 302, 200, 302),
    "GET /admin/generation/workertoken/add/": (302, 403, 302, 200, 302),
}
CASES = [
    pytest.param(endpoint, role, expected, id=f"{endpoint} as {role} -> {expected}")
    for endpoint, codes in TABLE.items()
    for role, expected in zip(ROLES, codes, strict=True)
]


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("render")
    result = render_video(
        prompt="Role table clip",
        params={
            "width": 160,
            "height": 90,
            "fps": 8,
            "seconds_per_scene": 0.5,
            "preset": "ultrafast",
            "model_variant": "draft",
        },
        output_path=folder / "v.mp4",
        poster_path=folder / "p.jpg",
    )
    return Path(result.output_path).read_bytes()


@pytest.fixture
def world(active_revision, video_bytes) -> dict:
    token, key = worker_token_create(name="gpu-1", pipelines=["builtin"])
    pipeline = pipeline_default()
    generation_request(pipeline=pipeline, prompt="waiting job", backend="remote")
    leased = job_claim(worker=token)
    generation_request(pipeline=pipeline, prompt="another waiting job", backend="remote")
    reviewer = person("rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    clients = {
        "anonymous": APIClient(),
        "worker": APIClient(HTTP_AUTHORIZATION=f"Token {key}"),
        "reviewer": APIClient(),
        "admin": APIClient(),
        "no_role": APIClient(),
    }
    clients["reviewer"].force_login(reviewer)
    clients["admin"].force_login(person("boss", is_staff=True, is_superuser=True))
    clients["no_role"].force_login(person("visitor"))
    return {
        "clients": clients,
        "leased": leased,
        "finished": FinishedGenerationFactory(),
        "video": video_bytes,
    }


def builtin_declaration() -> dict:
    """The builtin pipeline's registration body as it stands (a PUT of it changes nothing)."""
    from feedbackloop.config import BUILTIN_ENTRY
    from pipelines.builtin.declaration import DECLARATION

    return {
        "name": BUILTIN_ENTRY["name"],
        "description": BUILTIN_ENTRY["description"],
        "parameters": DECLARATION,
    }


def send(endpoint: str, client: APIClient, world: dict):
    leased, finished = world["leased"], world["finished"]
    lease = {"lease_id": str(leased.lease_id)}
    v1 = "/api/v1/"
    requests = {
        "GET config": lambda: client.get(f"{v1}config/"),
        "GET pipelines": lambda: client.get(f"{v1}pipelines/"),
        "GET pipelines/{slug}": lambda: client.get(f"{v1}pipelines/builtin/"),
        "GET pipelines/{slug}/config": lambda: client.get(f"{v1}pipelines/builtin/config/"),
        "PUT pipelines/{slug}": lambda: client.put(
            f"{v1}pipelines/builtin/", builtin_declaration(), format="json"
        ),
        "POST jobs/claim": lambda: client.post(f"{v1}jobs/claim/", {}, format="json"),
        "POST jobs/{id}/heartbeat": lambda: client.post(
            f"{v1}jobs/{leased.id}/heartbeat/", lease, format="json"
        ),
        "POST jobs/{id}/complete": lambda: client.post(
            f"{v1}jobs/{leased.id}/complete/",
            {**lease, "video": SimpleUploadedFile("v.mp4", world["video"], "video/mp4")},
            format="multipart",
        ),
        "POST jobs/{id}/fail": lambda: client.post(
            f"{v1}jobs/{leased.id}/fail/", {**lease, "error": "boom"}, format="json"
        ),
        "GET generations": lambda: client.get(f"{v1}generations/"),
        "POST generations": lambda: client.post(
            f"{v1}generations/", {"prompt": "new one"}, format="json"
        ),
        "GET generations/{id}": lambda: client.get(f"{v1}generations/{finished.id}/"),
        "POST generations/{id}/metrics": lambda: client.post(
            f"{v1}generations/{finished.id}/metrics/", {"metrics": {"m": 1.0}}, format="json"
        ),
        "POST generations/{id}/feedback": lambda: client.post(
            f"{v1}generations/{finished.id}/feedback/",
            {"ratings": {"visual_quality": 4}, "comments": "ok"},
            format="json",
        ),
        "GET feedback/summary": lambda: client.get(f"{v1}feedback/summary/"),
        "GET improvements": lambda: client.get(f"{v1}improvements/"),
    }
    if endpoint in requests:
        return requests[endpoint]()
    return client.get(endpoint.removeprefix("GET "))


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_role_table(world, endpoint, role, expected):
    response = send(endpoint, world["clients"][role], world)
    assert response.status_code == expected, response.content[:300]
    if endpoint.startswith(("GET /", "GET /admin")) or expected < 400:
        return
    error = response.json()["error"]
    assert error["code"] in {"not_authenticated", "permission_denied"} and error["message"]


def test_an_unauthenticated_answer_names_the_token_scheme(world):
    response = world["clients"]["anonymous"].get("/api/v1/config/")
    assert response["WWW-Authenticate"] == 'Token realm="api"'


@pytest.mark.parametrize(
    "header", ["Token flw_wrong", "Bearer flw_wrong", "Token", "Token a b", "Token caf\u00e9"]
)
def test_a_bad_token_is_401(active_revision, header):
    response = APIClient(HTTP_AUTHORIZATION=header).get("/api/v1/config/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_bearer_token_works_too(active_revision):
    _, key = worker_token_create(name="gpu-1", pipelines=["builtin"])
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/config/").status_code == 200


def test_a_revoked_token_is_401(active_revision):
    token, key = worker_token_create(name="gpu-1", pipelines=["builtin"])
    worker_token_revoke(token=token)
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/config/").status_code == 401


def test_a_worker_token_is_refused_outside_the_api(active_revision):
    _, key = worker_token_create(name="gpu-1", pipelines=["builtin"])
    for path in ["/admin/", "/admin/login/", "/"]:
        response = Client(HTTP_AUTHORIZATION=f"Token {key}").get(path)
        assert response.status_code == 403, path


def test_only_the_hash_of_a_key_is_stored(db):
    token, key = worker_token_create(name="gpu-1", pipelines=["builtin"])
    assert key.startswith("flw_") and len(key) > 40
    assert token.key_hash == WorkerToken.hash_key(key) and key not in token.key_hash
    assert token.prefix == key[:12]


def test_using_a_token_records_when_it_was_last_used(active_revision):
    token, key = worker_token_create(name="gpu-1", pipelines=["builtin"])
    assert token.last_used_at is None
    APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/config/")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_one_live_token_per_worker_name_and_a_new_one_after_revoking(db):
    token, _ = worker_token_create(name="gpu-1", pipelines=["builtin"])
    with pytest.raises(Exception, match="already has a live token"):
        worker_token_create(name="gpu-1", pipelines=["builtin"])
    worker_token_revoke(token=token)
    assert worker_token_create(name="gpu-1", pipelines=["builtin"])[0].pk != token.pk


def test_the_command_prints_a_working_key_once(active_revision):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_worker_token", "gpu-7", stdout=out, stderr=err)  # default pipeline
    key = out.getvalue().strip()
    assert key.startswith("flw_") and "\n" not in key
    assert "not be shown again" in err.getvalue()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/config/").status_code == 200
    token = WorkerToken.objects.get()
    assert token.name == "gpu-7" and token.pipelines == ["builtin"]


def test_the_command_gives_a_token_the_pipelines_it_names(db):
    out = io.StringIO()
    call_command(
        "create_worker_token",
        "gpu-8",
        "--pipelines",
        "diffusers-*, wan",
        stdout=out,
        stderr=io.StringIO(),
    )
    token = WorkerToken.objects.get()
    assert token.pipelines == ["diffusers-*", "wan"]
    assert token.may_serve("diffusers-cog") and token.may_serve("wan")
    assert not token.may_serve("builtin")


def test_the_admin_shows_a_new_key_once(db):
    admin = Client()
    admin.force_login(person("boss", is_staff=True, is_superuser=True))
    response = admin.post(
        "/admin/generation/workertoken/add/",
        {"name": "gpu-9", "pipelines": "builtin, diffusers-*"},
        follow=True,
    )
    page = response.content.decode()
    token = WorkerToken.objects.get()
    assert "not be shown again" in page and f"<code>{token.prefix}" in page
    key = page.split("<code>", 1)[1].split("</code>", 1)[0]
    assert WorkerToken.hash_key(key) == token.key_hash and token.created_by.username == "boss"
    assert token.pipelines == ["builtin", "diffusers-*"]
    listing = admin.get("/admin/generation/workertoken/").content.decode()
    assert key not in listing and token.prefix in listing


def test_the_admin_refuses_a_second_live_token_with_the_same_name(db):
    worker_token_create(name="gpu-9", pipelines=["builtin"])
    admin = Client()
    admin.force_login(person("boss", is_staff=True, is_superuser=True))
    response = admin.post(
        "/admin/generation/workertoken/add/", {"name": "gpu-9", "pipelines": "builtin"}
    )
    assert response.status_code == 200 and WorkerToken.objects.count() == 1


def test_the_admin_revokes_tokens(active_revision):
    token, key = worker_token_create(name="gpu-1", pipelines=["builtin"])
    admin = Client()
    admin.force_login(person("boss", is_staff=True, is_superuser=True))
    admin.post(
        "/admin/generation/workertoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/config/").status_code == 401


def test_an_admin_queues_a_remote_job_in_the_admin(active_revision):
    admin = Client()
    admin.force_login(person("boss", is_staff=True, is_superuser=True))
    admin.post(
        "/admin/generation/generation/add/",
        {"pipeline": active_revision.pipeline.pk, "prompt": "From the admin", "backend": "remote"},
    )
    token, _ = worker_token_create(name="gpu-1", pipelines=["builtin"])
    job = job_claim(worker=token)
    assert job is not None and job.prompt == "From the admin"


def test_a_reviewer_with_the_permission_but_not_the_group_may_give_feedback(active_revision):
    from django.contrib.auth.models import Permission

    user = person("perm-only")
    user.user_permissions.add(Permission.objects.get(codename="add_review"))
    client = APIClient()
    client.force_login(user)
    generation = FinishedGenerationFactory()
    response = client.post(
        f"/api/v1/generations/{generation.id}/feedback/",
        {"ratings": {"visual_quality": 3}},
        format="json",
    )
    assert response.status_code == 201


@pytest.mark.parametrize("action", ["approve", "reject", "rollback"])
def test_a_worker_token_cannot_approve_reject_or_roll_back(world, action, active_revision):
    """The approval endpoints are issue 6's (their full table:
    tests/improvements/test_apis_experiments.py);
    here only that a worker, a reviewer and a role-less user are refused."""
    url = f"/api/v1/revisions/{active_revision.number}/{action}/"
    for role in ("worker", "reviewer", "no_role"):
        response = world["clients"][role].post(url, {}, format="json")
        assert response.status_code == 403, (role, response.content[:200])
    assert world["clients"]["anonymous"].post(url, {}, format="json").status_code == 401
