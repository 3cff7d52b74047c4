"""The review submission's fast path answers every request exactly as the API view does: the same
status and JSON body for a good submission and for each refusal (it hands those to the view)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from generation.models import Generation
from generation.services.tokens import worker_token_create
from reviews import submission_fast_path
from reviews.models import Review
from tests.factories import FIVE, FinishedGenerationFactory

pytestmark = pytest.mark.usefixtures("rating_dimensions")


def reviewer(name: str):
    user = get_user_model().objects.create(username=name)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def signed_in(user, csrf: bool = True) -> Client:
    """A browser: session cookie, and the CSRF cookie + header unless `csrf` is False."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/review/")  # sets the CSRF cookie, as the review page does
    token = client.cookies["csrftoken"].value if csrf else "missing"
    client.defaults["HTTP_X_CSRFTOKEN"] = token
    return client


def post(client: Client, generation_id, body) -> tuple[int, dict]:
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        f"/api/v1/generations/{generation_id}/feedback/", raw, content_type="application/json"
    )
    payload = response.json()
    if response.status_code == 201:
        assert Review.objects.filter(pk=payload.pop("review_id")).exists()
    return response.status_code, payload


def run(case: str, n: int) -> tuple[int, dict]:
    """One request of the given kind, against a world of its own (`n` keeps names apart)."""
    user, generation = reviewer(f"r{n}"), FinishedGenerationFactory()
    client = signed_in(user)
    gid = generation.pk
    body: object = {"ratings": FIVE, "comments": "fine", "seconds_spent": 12.5}
    if case == "out of range":
        body = {"ratings": {**FIVE, "visual_quality": 6}}
    elif case == "unknown dimension":
        body = {"ratings": {"sharpness": 3}}
    elif case == "NaN":
        body = '{"ratings": {"visual_quality": 4}, "seconds_spent": NaN}'
    elif case == "not JSON":
        body = "{ratings"
    elif case == "an array":
        body = [FIVE]
    elif case == "unknown generation":
        gid = "00000000-0000-0000-0000-000000000000"
        # the same id in both runs, so the bodies compare
    elif case == "already reviewed":
        post(client, gid, body)
    elif case == "not finished":
        gid = FinishedGenerationFactory(status=Generation.Status.QUEUED, video="").pk
    elif case == "worker token":
        _, key = worker_token_create(name=f"gpu-{n}", pipelines=["*"])
        client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    elif case == "no CSRF token":
        client = signed_in(user, csrf=False)
    elif case == "signed out":
        client = Client()
    status, payload = post(client, gid, body)
    if payload.get("generation_id") == str(gid):
        payload["generation_id"] = "<the generation>"
    if "error" in payload:  # names this run's generation and reviewer
        message = payload["error"]["message"].replace(str(gid), "<id>")
        payload["error"]["message"] = message.replace(f"r{n} ", "<reviewer> ")
    return status, payload


CASES = [
    "good",
    "out of range",
    "unknown dimension",
    "NaN",
    "not JSON",
    "an array",
    "unknown generation",
    "already reviewed",
    "not finished",
    "worker token",
    "no CSRF token",
    "signed out",
]


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES)
def test_the_fast_path_answers_as_the_api_view_does(case, monkeypatch):
    fast = run(case, 1)
    monkeypatch.setattr(submission_fast_path, "_submit", lambda request, generation_id: None)
    view = run(case, 2)
    assert fast == view
    assert (fast[0] == 201) == (case == "good")


@pytest.mark.django_db
def test_a_good_submission_takes_the_fast_path():
    calls = []
    original = submission_fast_path._submit

    def spy(request, generation_id):
        response = original(request, generation_id)
        calls.append(response is not None)
        return response

    submission_fast_path._submit = spy
    try:
        status, _ = run("good", 1)
    finally:
        submission_fast_path._submit = original
    assert status == 201 and calls == [True]


@pytest.mark.django_db
def test_past_the_rate_the_answer_is_the_api_views_429(settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "2/min"}
    client = signed_in(reviewer("busy"))
    statuses = [
        post(client, FinishedGenerationFactory().pk, {"ratings": FIVE})[0] for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    response = client.post(
        f"/api/v1/generations/{FinishedGenerationFactory().pk}/feedback/",
        json.dumps({"ratings": FIVE}),
        content_type="application/json",
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
