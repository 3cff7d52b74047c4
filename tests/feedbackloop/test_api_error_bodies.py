"""No error under /api/ is HTML: every one is {"error": {"code", "message", "details"}}, with
DEBUG on or off, whether DRF, Django's own middleware or a bug made it. Pages outside /api/
keep their HTML error pages."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from reviews import selectors
from tests.factories import FinishedGenerationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("debug", [False, True])]


@pytest.fixture(autouse=True)
def _debug(settings, debug):
    settings.DEBUG = debug
    cache.clear()  # throttle counts


def reviewer_client(**kwargs) -> Client:
    user = get_user_model().objects.create(username="rita")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    client = Client(**kwargs)
    client.force_login(user)
    return client


def error_of(response, status: int) -> dict:
    """The error object, after checking the status and that the body is the API's JSON."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].split(";")[0] == "application/json", response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_unexpected_exception_in_a_view_is_a_json_500(monkeypatch, debug, caplog, builtin_pipeline):
    def broken(**kwargs: object) -> dict:
        raise ZeroDivisionError("the summary divided by zero")

    monkeypatch.setattr(selectors, "feedback_summary", broken)
    client = reviewer_client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        error = error_of(client.get("/api/v1/feedback/summary/"), 500)
    assert error["code"] == "server_error"
    # Logged as Django logs a 500, with the traceback, DEBUG or not.
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    # Only a developer's DEBUG site says what failed.
    assert ("divided by zero" in json.dumps(error)) is debug


class ExplodingMiddleware:
    """A middleware that fails on every request: the failure is not a view's."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise RuntimeError("middleware failure")


def test_failure_inside_middleware_is_a_json_500(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.ExplodingMiddleware"]
    client = Client(raise_request_exception=False)
    assert error_of(client.get("/api/v1/config/"), 500)["code"] == "server_error"
    page = client.get("/accounts/login/")  # people still get an HTML page
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_unknown_api_path_is_a_json_404(method):
    response = getattr(Client(), method)("/api/v1/no-such-thing/")
    assert error_of(response, 404)["code"] == "not_found"
    assert error_of(Client().get("/api/"), 404)["code"] == "not_found"


def test_wrong_method_is_a_json_405_with_allow():
    response = reviewer_client().delete("/api/v1/feedback/summary/")
    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_bad_host_header_is_a_json_400():
    response = Client(HTTP_HOST="attacker.example").get("/api/v1/config/")
    assert error_of(response, 400)["code"] == "bad_request"
    page = Client(HTTP_HOST="attacker.example").get("/accounts/login/")
    assert page.status_code == 400 and not page["Content-Type"].startswith("application/json")


def test_body_over_djangos_memory_limit_is_a_json_413(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = "comments=" + "x" * 5000
    generation = FinishedGenerationFactory()
    form = "application/x-www-form-urlencoded"
    for path in (f"/api/v1/generations/{generation.pk}/feedback/", "/api/v1/no-such-thing/"):
        response = reviewer_client().post(path, body, content_type=form)
        assert error_of(response, 413)["code"] == "too_large"
        get_user_model().objects.filter(username="rita").delete()


def test_missing_csrf_token_is_a_json_403():
    client = reviewer_client(enforce_csrf_checks=True)
    generation = FinishedGenerationFactory()
    response = client.post(
        f"/api/v1/generations/{generation.pk}/feedback/",
        {"ratings": {"visual_quality": 4}},
        content_type="application/json",
    )
    error = error_of(response, 403)
    assert "CSRF" in error["message"]
    assert not generation.reviews.exists()


def test_browser_asking_for_html_still_gets_json_errors():
    anonymous = Client().get("/api/v1/config/", HTTP_ACCEPT="text/html")
    assert error_of(anonymous, 401)["code"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"] == 'Token realm="api"'
    missing = reviewer_client().get("/api/v1/generations/not-a-uuid/", HTTP_ACCEPT="text/html")
    assert error_of(missing, 404)["code"] == "unknown_generation"


def test_pages_outside_the_api_keep_html_error_pages():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
