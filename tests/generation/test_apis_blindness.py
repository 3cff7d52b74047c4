"""Reviewers compare blind over the API too: listing or opening generations shows them no
pipeline, revision, params, experiment arm, backend or worker; staff and workers see them all,
and filtering by what is blind is refused to reviewers."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from rest_framework.test import APIClient

from generation.models import Generation
from generation.serializers import GenerationSerializer
from generation.services.requests import generation_request
from generation.services.tokens import worker_token_create

pytestmark = pytest.mark.django_db
BLIND = {"pipeline", "revision", "params", "experiment_arm", "backend", "claimed_by"}


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


@pytest.fixture
def world(active_revision) -> dict:
    token, key = worker_token_create(name=f"gpu-{uuid.uuid4().hex[:6]}", pipelines=["*"])
    arm = f"arm{uuid.uuid4().hex[:8]}"  # a token no other field could contain by chance
    generation, _ = generation_request(
        pipeline=active_revision.pipeline, prompt="A blind briefing", enqueue=False
    )
    Generation.objects.filter(pk=generation.pk).update(experiment_arm=arm, claimed_by=token)
    reviewer = get_user_model().objects.create(username="rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    clients = {"reviewer": APIClient(), "staff": APIClient(), "worker": APIClient()}
    clients["reviewer"].force_login(reviewer)
    clients["staff"].force_login(get_user_model().objects.create(username="sam", is_staff=True))
    clients["worker"].credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return {
        "clients": clients,
        "generation": generation,
        "revision": active_revision,
        "arm": arm,
        "worker": token.name,
    }


def list_and_detail(client: APIClient, generation: Generation) -> list[dict]:
    listed = client.get("/api/v1/generations/")
    detail = client.get(f"/api/v1/generations/{generation.pk}/")
    assert listed.status_code == detail.status_code == 200
    [row] = [g for g in listed.json()["results"] if g["id"] == str(generation.pk)]
    return [row, detail.json()]


def test_the_blind_fields_are_the_serializers_own_list():
    assert set(GenerationSerializer.BLIND_FIELDS) == BLIND


def test_a_reviewer_sees_no_revision_arm_params_backend_or_worker_in_list_or_detail(world):
    client = world["clients"]["reviewer"]
    for body in list_and_detail(client, world["generation"]):
        assert BLIND.isdisjoint(body), sorted(BLIND & set(body))
        assert body["prompt"] == "A blind briefing" and body["status"] == "queued"
    for path in ("/api/v1/generations/", f"/api/v1/generations/{world['generation'].pk}/"):
        text = client.get(path).content.decode()
        assert world["arm"] not in text and world["worker"] not in text


@pytest.mark.parametrize("role", ["staff", "worker"])
def test_staff_and_workers_see_the_revision_arm_and_the_rest(world, role):
    for body in list_and_detail(world["clients"][role], world["generation"]):
        assert set(body) >= BLIND
        assert body["revision"] == world["revision"].number
        assert body["pipeline"] == world["revision"].pipeline.slug
        assert body["experiment_arm"] == world["arm"]
        assert body["params"] == world["revision"].params
        assert body["backend"] == "builtin" and body["claimed_by"] == world["worker"]


@pytest.mark.parametrize("query", ["pipeline=builtin", "revision=2", "backend=builtin"])
def test_a_reviewer_filtering_by_what_is_blind_is_refused(world, query):
    response = world["clients"]["reviewer"].get(f"/api/v1/generations/?{query}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "blind"
    assert world["clients"]["staff"].get(f"/api/v1/generations/?{query}").status_code == 200


def test_a_reviewer_may_still_filter_by_status_and_prompt(world):
    response = world["clients"]["reviewer"].get("/api/v1/generations/?status=queued&q=blind")
    assert response.status_code == 200
    assert [g["id"] for g in response.json()["results"]] == [str(world["generation"].pk)]
