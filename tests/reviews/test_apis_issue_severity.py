"""Issue severity over the API: the names the review page shows, or the numbers 1-3."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from reviews.models import IssueReport
from tests.factories import FinishedGenerationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    user = UserFactory(username="rita")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    client = APIClient()
    client.force_authenticate(user)
    return client


def _post(api: APIClient, severity):
    generation = FinishedGenerationFactory()
    issue = {"category": "flicker", "start_s": 1.0, "end_s": 2.0}
    if severity is not None:
        issue["severity"] = severity
    return api.post(
        f"/api/v1/generations/{generation.id}/feedback/",
        {"ratings": {"visual_quality": 3}, "issues": [issue]},
        format="json",
    )


@pytest.mark.parametrize(
    ("given", "stored"),
    [("minor", 1), ("major", 2), ("critical", 3), ("Major", 2), (1, 1), (3, 3), (None, 1)],
)
def test_severity_is_accepted_by_name_or_number(api, given, stored):
    response = _post(api, given)
    assert response.status_code == 201, response.json()
    assert IssueReport.objects.get().severity == stored


@pytest.mark.parametrize("given", ["severe", 0, 4, True, 2.0, "2", ""])
def test_a_bad_severity_is_a_400_that_lists_the_valid_values(api, given):
    response = _post(api, given)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "severity" in message
    for valid in ['"minor" or 1', '"major" or 2', '"critical" or 3']:
        assert valid in message
    assert not IssueReport.objects.exists()


def test_the_schema_documents_both_forms_of_severity(api):
    schema = APIClient().get("/api/schema/?format=json").json()
    issue = next(v for k, v in schema["components"]["schemas"].items() if k.startswith("Issue"))
    severity = issue["properties"]["severity"]
    assert {"type": "string", "enum": ["minor", "major", "critical"]} in severity["oneOf"]
    assert {"type": "integer", "enum": [1, 2, 3]} in severity["oneOf"]
