"""Pipelines in the admin: create one from its declaration, see its versions and revisions."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from pipelines.models import ConfigRevision, Pipeline, SchemaVersion
from pipelines.selectors import revision_active
from tests.pipelines.conftest import DIFFUSERS, declaration

pytestmark = pytest.mark.django_db
ADD = "/admin/pipelines/pipeline/add/"


@pytest.fixture
def boss(client):
    client.force_login(
        get_user_model().objects.create(username="boss", is_staff=True, is_superuser=True)
    )
    return client


def form(parameters: dict, **fields: str) -> dict:
    return {
        "slug": fields.get("slug", "diffusers"),
        "name": fields.get("name", "Diffusers"),
        "description": fields.get("description", ""),
        "parameters": json.dumps(parameters),
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }


def test_an_admin_creates_a_pipeline_with_version_1_and_an_active_revision(boss):
    response = boss.post(ADD, form(DIFFUSERS))
    assert response.status_code == 302, response.content.decode()[:3000]
    pipeline = Pipeline.objects.get()
    assert pipeline.slug == "diffusers" and pipeline.registered_by == "user:boss"
    assert pipeline.versions.get().number == 1
    assert revision_active(pipeline=pipeline).number == 1


def test_a_bad_declaration_in_the_admin_names_each_key_and_saves_nothing(boss):
    bad = declaration(negative_prompt={"type": "string", "default": ""})
    response = boss.post(ADD, form(bad))
    assert response.status_code == 200
    page = response.content.decode()
    assert "parameters.properties.negative_prompt" in page
    assert not Pipeline.objects.exists() and not SchemaVersion.objects.exists()
    assert not ConfigRevision.objects.exists()


def test_the_pipeline_page_lists_its_versions_and_links_its_revisions(boss):
    boss.post(ADD, form(DIFFUSERS))
    pipeline = Pipeline.objects.get()
    wider = declaration(fps={"type": "integer", "minimum": 4, "maximum": 30, "default": 8})
    response = boss.post(f"/admin/pipelines/pipeline/{pipeline.pk}/change/", form(wider))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(pipeline.versions.values_list("number", flat=True)) == [2, 1]
    page = boss.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/").content.decode()
    assert "1 revisions" in page and f"pipeline__id__exact={pipeline.pk}" in page
    assert "fps" in page  # the newest version's parameters
    listing = boss.get("/admin/pipelines/pipeline/").content.decode()
    assert "remote workers" in listing and "v2" in listing and "r1" in listing
    versions = boss.get("/admin/pipelines/schemaversion/").content.decode()
    assert "diffusers schema v2" in versions and "diffusers schema v1" in versions
