"""Approve / reject / roll back over the API, and the current experiment: who may call what."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from rest_framework.test import APIClient

from generation.services.tokens import worker_token_create
from improvements.experiments import arm_open, experiment_settle
from improvements.models import Experiment
from pipelines.models import ConfigRevision
from pipelines.services.registration import pipeline_register
from pipelines.services.revisions import (
    revision_create,
    revision_rollback_to,
    revision_transition,
)

User = get_user_model()
pytestmark = pytest.mark.django_db
S = ConfigRevision.Status

ROLES = ("anonymous", "worker", "reviewer", "admin", "no_role", "staff_without_perm", "approver")

# endpoint → expected status for each role above. "admin" is a superuser; "approver" is a
# non-superuser in the admin group (which holds pipelines.approve_configrevision).
TABLE = {
    "POST revisions/{proposal}/approve": (401, 403, 403, 201, 403, 403, 201),
    "POST revisions/{proposal}/reject": (401, 403, 403, 200, 403, 403, 200),
    "POST revisions/{earlier}/rollback": (401, 403, 403, 201, 403, 403, 201),
    "GET experiments/current": (401, 403, 403, 200, 403, 200, 200),
}
CASES = [
    pytest.param(endpoint, role, expected, id=f"{endpoint} as {role} -> {expected}")
    for endpoint, codes in TABLE.items()
    for role, expected in zip(ROLES, codes, strict=True)
]


def person(username: str, **flags):
    return User.objects.create(username=username, **flags)


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


@pytest.fixture
def world(active_revision) -> dict:
    """The default (builtin) pipeline: the earlier revision retired, a newer one active, two
    proposals, and a canary that was stopped by a rollback to the active revision."""
    pipeline = active_revision.pipeline
    r2 = revision_create(
        pipeline=pipeline, params={**active_revision.params, "crf": 30}, parent=active_revision
    )
    revision_transition(revision=r2, to_status=S.APPROVED)
    revision_transition(revision=r2, to_status=S.ACTIVE)
    proposal = revision_create(
        pipeline=pipeline, params={**r2.params, "crf": 20}, parent=r2, rationale="sharper"
    )
    other = revision_create(pipeline=pipeline, params={**r2.params, "grain": 0.0}, parent=r2)
    r5 = revision_create(pipeline=pipeline, params={**r2.params, "fps": 12}, parent=r2)
    arm_open(revision=r5)
    revision_rollback_to(target=r2, actor=None)  # stops that canary; r2 stays active
    experiment_settle(pipeline=pipeline)  # as the API and the admin do after a rollback

    _, key = worker_token_create(name="gpu-1", pipelines=["*"])
    reviewer = person("rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    admin_group = Group.objects.get_or_create(name="admin")[0]
    admin_group.permissions.add(
        Permission.objects.get(
            content_type__app_label="pipelines", codename="approve_configrevision"
        )
    )
    approver = person("ada", is_staff=True)
    approver.groups.add(admin_group)
    clients = {role: APIClient() for role in ROLES}
    clients["worker"] = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    clients["reviewer"].force_login(reviewer)
    clients["admin"].force_login(person("boss", is_staff=True, is_superuser=True))
    clients["no_role"].force_login(person("visitor"))
    clients["staff_without_perm"].force_login(person("sam", is_staff=True))
    clients["approver"].force_login(approver)
    return {
        "clients": clients,
        "earlier": active_revision,
        "active": r2,
        "proposal": proposal,
        "other": other,
        "stopped": r5,
    }


def send(endpoint: str, client: APIClient, world: dict):
    v1 = "/api/v1/"
    proposal, earlier = world["proposal"].number, world["earlier"].number
    requests = {
        "POST revisions/{proposal}/approve": lambda: client.post(
            f"{v1}revisions/{proposal}/approve/", {"share": 0.25}, format="json"
        ),
        "POST revisions/{proposal}/reject": lambda: client.post(
            f"{v1}revisions/{proposal}/reject/", {"note": "not now"}, format="json"
        ),
        "POST revisions/{earlier}/rollback": lambda: client.post(
            f"{v1}revisions/{earlier}/rollback/", {}, format="json"
        ),
        "GET experiments/current": lambda: client.get(f"{v1}experiments/current/"),
    }
    return requests[endpoint]()


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_role_table(world, endpoint, role, expected):
    response = send(endpoint, world["clients"][role], world)
    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        error = response.json()["error"]
        assert error["code"] in {"not_authenticated", "permission_denied"} and error["message"]


def test_approve_opens_an_arm_with_the_given_share(world):
    response = send("POST revisions/{proposal}/approve", world["clients"]["approver"], world)
    body = response.json()
    assert body["pipeline"] == "builtin" and body["control"] == world["active"].number
    assert body["status"] == "running" and body["decisions"] == []
    [arm] = body["arms"]
    assert (arm["revision"], arm["share"], arm["status"]) == (
        world["proposal"].number,
        0.25,
        "running",
    )
    world["proposal"].refresh_from_db()
    assert world["proposal"].status == S.CANARY and world["proposal"].rollout_share == 0.25
    current = world["clients"]["admin"].get("/api/v1/experiments/current/").json()
    assert current["id"] == body["id"]


def test_a_rollback_over_the_api_stops_the_experiment_at_once(world):
    admin = world["clients"]["admin"]
    assert send("POST revisions/{proposal}/approve", admin, world).status_code == 201
    active = world["active"].number
    response = admin.post(f"/api/v1/revisions/{active}/rollback/", {}, format="json")
    assert response.status_code == 200 and response.json()["number"] == active
    current = admin.get("/api/v1/experiments/current/").json()
    assert current["status"] == "finished"
    assert [a["status"] for a in current["arms"]] == ["aborted"]


def test_a_second_approval_joins_the_running_experiment_as_another_arm(world):
    admin = world["clients"]["admin"]
    first = send("POST revisions/{proposal}/approve", admin, world).json()
    response = admin.post(f"/api/v1/revisions/{world['other'].number}/approve/", {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == first["id"]
    assert [(a["revision"], a["status"]) for a in body["arms"]] == [
        (world["proposal"].number, "running"),
        (world["other"].number, "running"),
    ]


def test_an_approval_that_leaves_no_share_for_the_control_is_409(world):
    admin = world["clients"]["admin"]
    response = admin.post(
        f"/api/v1/revisions/{world['proposal'].number}/approve/", {"share": 0.6}, format="json"
    )
    assert response.status_code == 201
    response = admin.post(
        f"/api/v1/revisions/{world['other'].number}/approve/", {"share": 0.5}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_share_left"
    world["other"].refresh_from_db()
    assert world["other"].status == S.PROPOSED


def test_a_batch_of_proposals_is_approved_and_the_refused_are_named(world):
    admin = world["clients"]["admin"]
    numbers = [world["proposal"].number, world["other"].number, world["stopped"].number]
    response = admin.post(
        "/api/v1/pipelines/builtin/proposals/approve/", {"revisions": numbers}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["opened"] == numbers[:2]
    assert list(body["refused"]) == [str(world["stopped"].number)]


def test_revisions_of_another_pipeline_are_reached_under_its_slug(world):
    other = pipeline_register(
        slug="diffusers",
        name="Diffusers",
        parameters={
            "properties": {
                "steps": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
            }
        },
    ).pipeline
    r1 = other.revisions.get()
    proposal = revision_create(pipeline=other, params={"steps": 30}, parent=r1)
    assert proposal.number == 2  # numbered within its own pipeline
    admin = world["clients"]["admin"]
    response = admin.post(
        f"/api/v1/pipelines/diffusers/revisions/{proposal.number}/approve/", {}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["pipeline"] == "diffusers"
    proposal.refresh_from_db()
    assert proposal.status == S.CANARY
    default_pipeline_revision = ConfigRevision.objects.get(
        pipeline__slug="builtin", number=proposal.number
    )
    assert default_pipeline_revision.status != S.CANARY  # the old route's r2 was not touched
    current = admin.get("/api/v1/pipelines/diffusers/experiments/current/").json()
    assert current["pipeline"] == "diffusers" and current["control"] == r1.number
    missing = admin.post("/api/v1/pipelines/nope/revisions/1/reject/", {}, format="json")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_pipeline"


@pytest.mark.parametrize("share", [0, 1.5, "lots"])
def test_approve_with_a_bad_share_is_400(world, share):
    response = world["clients"]["admin"].post(
        f"/api/v1/revisions/{world['proposal'].number}/approve/", {"share": share}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert not Experiment.objects.filter(status="running").exists()
    world["proposal"].refresh_from_db()
    assert world["proposal"].status == S.PROPOSED


@pytest.mark.parametrize("number", ["999", "abc"])
def test_an_unknown_revision_is_404(world, number):
    response = world["clients"]["admin"].post(
        f"/api/v1/revisions/{number}/reject/", {}, format="json"
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_revision"


def test_reject_records_the_note_and_rejecting_twice_is_409(world):
    admin = world["clients"]["admin"]
    body = send("POST revisions/{proposal}/reject", admin, world).json()
    assert body["status"] == "rejected"
    assert world["proposal"].transitions.last().note == "not now"
    assert send("POST revisions/{proposal}/reject", admin, world).status_code == 409


def test_rollback_creates_a_rollback_revision(world):
    body = send("POST revisions/{earlier}/rollback", world["clients"]["admin"], world).json()
    assert body["source"] == "rollback" and body["status"] == "active"
    assert body["parent"] == world["active"].number
    assert body["rationale"] == f"roll back to r{world['earlier'].number}"


def test_rollback_to_a_never_active_revision_is_409(world):
    response = world["clients"]["admin"].post(
        f"/api/v1/revisions/{world['other'].number}/rollback/", {}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "never_active"


def test_current_experiment_is_404_before_any(active_revision):
    client = APIClient()
    client.force_login(person("boss", is_staff=True, is_superuser=True))
    response = client.get("/api/v1/experiments/current/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_experiment"


def test_the_schema_documents_the_new_operations(world):
    schema = world["clients"]["anonymous"].get("/api/schema/?format=json").json()
    operations = {
        op["operationId"]
        for path in schema["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert {
        "revision_approve",
        "revision_reject",
        "revision_rollback",
        "experiment_current",
        "proposals_approve_batch",
    } <= operations
