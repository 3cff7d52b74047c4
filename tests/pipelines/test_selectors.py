"""Reads of pipelines: a slug that cannot exist is a clear NotFound, never a database error."""

from __future__ import annotations

import pytest

from feedbackloop.errors import NotFound
from pipelines.selectors import pipeline_get
from tests.factories import PipelineFactory


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["\x00", "Not A Slug", "x" * 200])
def test_a_string_no_slug_can_be_is_not_found_naming_the_known_pipelines(slug):
    PipelineFactory()
    with pytest.raises(NotFound, match="known pipelines: builtin"):
        pipeline_get(slug=slug)


@pytest.mark.django_db
def test_a_nul_byte_in_the_summary_filter_is_a_json_404(client, django_user_model):
    PipelineFactory()
    staff = django_user_model.objects.create_user("boss", password="x", is_staff=True)
    client.force_login(staff)
    response = client.get("/api/v1/feedback/summary/", {"pipeline": "\x00"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_pipeline"
