"""Approve, reject and roll back over the API with an Idempotency-Key: a repeat returns the first
answer and changes nothing; the key for anything else is 409. Without a key, a second rollback
to the same target while the first's result is active creates nothing new, even when four
arrive at once (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from improvements.models import ActionReceipt, ExperimentArm
from pipelines.models import ConfigRevision, RevisionTransition
from pipelines.services.revisions import revision_create
from tests.conftest import skip_or_fail

User = get_user_model()
S = ConfigRevision.Status
V1 = "/api/v1"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


def approver(username: str) -> APIClient:
    group = Group.objects.get_or_create(name="admin")[0]
    group.permissions.add(
        Permission.objects.get(
            content_type__app_label="pipelines", codename="approve_configrevision"
        )
    )
    user = User.objects.create(username=username, is_staff=True)
    user.groups.add(group)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def world(active_revision) -> dict:
    """r1 (retired: was active), r2 active, proposals r3 and r4; an approver named ada."""
    pipeline = active_revision.pipeline
    return {
        "pipeline": pipeline,
        "earlier": ConfigRevision.objects.get(pipeline=pipeline, number=1),
        "active": active_revision,
        "proposal": revision_create(
            pipeline=pipeline, params={**active_revision.params, "crf": 20}, parent=active_revision
        ),
        "other": revision_create(
            pipeline=pipeline,
            params={**active_revision.params, "grain": 0.0},
            parent=active_revision,
        ),
        "ada": approver("ada"),
    }


def post(client: APIClient, path: str, body: dict | None = None, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(f"{V1}{path}", body or {}, format="json", **headers)


def state() -> tuple[int, int, int, int]:
    """What an action could change: revisions, transitions, arms, receipts."""
    return (
        ConfigRevision.objects.count(),
        RevisionTransition.objects.count(),
        ExperimentArm.objects.count(),
        ActionReceipt.objects.count(),
    )


# --- a repeat with the same key ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "body", "first_status"),
    [
        ("approve", {"share": 0.25}, 201),
        ("reject", {"note": "not now"}, 200),
    ],
)
def test_a_repeat_with_the_same_key_returns_the_first_answer_and_changes_nothing(
    world, action, body, first_status
):
    path = f"/revisions/{world['proposal'].number}/{action}/"
    first = post(world["ada"], path, body, key="k-1")
    assert first.status_code == first_status, first.content
    after_first = state()

    repeat = post(world["ada"], path, body, key="k-1")
    assert repeat.status_code == first_status
    assert repeat.json() == first.json()
    assert repeat["Idempotent-Replayed"] == "true"
    assert state() == after_first
    # Without the key the same request acts again, and the revision is no longer proposed.
    assert post(world["ada"], path, body).status_code == 409


@pytest.mark.django_db
def test_a_repeated_rollback_with_the_same_key_answers_201_again_with_the_same_revision(world):
    path = f"/revisions/{world['earlier'].number}/rollback/"
    first = post(world["ada"], path, key="rollback-1")
    assert first.status_code == 201 and first.json()["source"] == "rollback"
    after_first = state()

    repeat = post(world["ada"], path, key="rollback-1")
    assert (repeat.status_code, repeat.json()) == (201, first.json())
    assert state() == after_first


@pytest.mark.django_db
def test_a_repeated_batch_approval_with_the_same_key_opens_no_further_arm(world):
    path = f"/pipelines/{world['pipeline'].slug}/proposals/approve/"
    body = {"revisions": [world["proposal"].number, world["other"].number]}
    first = post(world["ada"], path, body, key="batch-1")
    assert first.status_code == 200
    assert sorted(first.json()["opened"]) == sorted(body["revisions"])
    after_first = state()

    repeat = post(world["ada"], path, body, key="batch-1")
    assert (repeat.status_code, repeat.json()) == (200, first.json())
    assert state() == after_first
    assert ExperimentArm.objects.count() == 2


# --- the same key for something else -----------------------------------------------------------


@pytest.mark.django_db
def test_the_same_key_for_another_action_target_body_or_person_is_409_and_changes_nothing(world):
    proposal, other = world["proposal"].number, world["other"].number
    assert (
        post(world["ada"], f"/revisions/{proposal}/approve/", {"share": 0.2}, "k").status_code
        == 201
    )
    before = state()
    refused = [
        post(world["ada"], f"/revisions/{proposal}/reject/", {}, "k"),  # another action
        post(world["ada"], f"/revisions/{other}/approve/", {"share": 0.2}, "k"),  # another target
        post(world["ada"], f"/revisions/{proposal}/approve/", {"share": 0.3}, "k"),  # another body
        post(approver("bob"), f"/revisions/{proposal}/approve/", {"share": 0.2}, "k"),  # person
    ]
    for response in refused:
        assert response.status_code == 409, response.content
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert state()[:3] == before[:3]
    assert ConfigRevision.objects.get(pk=world["other"].pk).status == S.PROPOSED


@pytest.mark.django_db
def test_a_failed_action_keeps_no_receipt_and_its_key_can_be_sent_again(world):
    path = f"/revisions/{world['active'].number}/approve/"  # not a proposal: 409
    first = post(world["ada"], path, {"share": 0.2}, key="retry-me")
    assert first.status_code == 409 and first.json()["error"]["code"] != "idempotency_key_reused"
    assert not ActionReceipt.objects.exists()
    path = f"/revisions/{world['proposal'].number}/approve/"
    assert post(world["ada"], path, {"share": 0.2}, key="retry-me").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "naïve"])
def test_a_malformed_key_is_400(world, key):
    response = post(world["ada"], f"/revisions/{world['proposal'].number}/reject/", {}, key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert ConfigRevision.objects.get(pk=world["proposal"].pk).status == S.PROPOSED


@pytest.mark.django_db
def test_the_schema_documents_the_key_on_each_admin_action(world):
    schema = APIClient().get("/api/schema/?format=json").json()
    operations = [
        op
        for methods in schema["paths"].values()
        for op in methods.values()
        if isinstance(op, dict)
        and op.get("operationId", "").startswith(
            ("revision_approve", "revision_reject", "revision_rollback", "proposals_approve")
        )
    ]
    assert len(operations) >= 4
    for op in operations:
        assert "Idempotency-Key" in [p["name"] for p in op.get("parameters", [])], op["operationId"]
        assert "409" in op["responses"], op["operationId"]


# --- rollbacks without a key --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_second_rollback_to_the_same_target_creates_nothing_and_answers_with_the_first(world):
    path = f"/revisions/{world['earlier'].number}/rollback/"
    first = post(world["ada"], path)
    assert first.status_code == 201
    after_first = state()
    second = post(world["ada"], path)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert state() == after_first


def _at_once(clients: list[APIClient], path: str, keys: list[str | None]) -> list:
    barrier = threading.Barrier(len(clients))
    answers: list = [None] * len(clients)

    def send(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            answers[index] = post(clients[index], path, key=keys[index])
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL (DATABASE_URL): concurrent transactions and row locks")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("with_key", [False, True], ids=["without a key", "with one key"])
def test_four_simultaneous_rollbacks_to_one_target_make_exactly_one_revision(
    world, rating_dimensions, with_key
):
    _require_postgresql()
    path = f"/revisions/{world['earlier'].number}/rollback/"
    clients = [world["ada"], *(approver(f"admin{n}") for n in range(3))]
    if with_key:
        clients = [world["ada"]] * 4  # one admin's retries
    before = ConfigRevision.objects.filter(pipeline=world["pipeline"]).count()

    answers = _at_once(clients, path, ["same-rollback" if with_key else None] * 4)

    assert all(a is not None for a in answers)
    rollbacks = ConfigRevision.objects.filter(
        pipeline=world["pipeline"], source=ConfigRevision.Source.ROLLBACK
    )
    assert ConfigRevision.objects.filter(pipeline=world["pipeline"]).count() == before + 1
    assert rollbacks.count() == 1
    assert ConfigRevision.objects.filter(pipeline=world["pipeline"], status=S.ACTIVE).count() == 1
    numbers = {a.json()["number"] for a in answers}
    assert numbers == {rollbacks.get().number}
    codes = sorted(a.status_code for a in answers)
    assert codes == ([201] * 4 if with_key else [200, 200, 200, 201])
