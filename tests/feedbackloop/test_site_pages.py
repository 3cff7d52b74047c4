"""The site's frame: one navigation bar, styled error pages (JSON under /api/), the CSRF
failure page and the favicon."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _reviewer(username: str = "rosa"):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def _nav(html: str) -> str:
    start = html.index('<nav aria-label="Main"')
    return html[start : html.index("</nav>", start)]


def test_staff_see_review_and_staff_links_on_every_page_including_the_dashboard(
    client, builtin_pipeline
):
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    for url in ["/dashboard/", "/generations/", "/review/", "/reviewers/"]:
        nav = _nav(client.get(url).content.decode())
        for label in ["Review queue", "Compare", "Generations", "Dashboard", "Reviewers", "Admin"]:
            assert f">{label}</a>" in nav, (url, label)


def test_the_current_page_is_marked_in_the_navigation(client, builtin_pipeline):
    client.force_login(UserFactory(username="boss", is_staff=True))
    nav = _nav(client.get("/dashboard/").content.decode())
    assert 'href="/dashboard/" aria-current="page"' in nav
    assert 'href="/generations/" aria-current' not in nav


def test_reviewers_see_only_review_links(client):
    client.force_login(_reviewer())
    nav = _nav(client.get("/review/").content.decode())
    assert ">Review queue</a>" in nav and ">Compare</a>" in nav
    for label in ["Generations", "Dashboard", "Reviewers", "Admin"]:
        assert f">{label}</a>" not in nav


def test_a_reviewer_opening_a_staff_page_gets_a_styled_403(client):
    client.force_login(_reviewer())
    for url in ["/dashboard/", "/generations/", "/reviewers/"]:
        response = client.get(url)
        assert response.status_code == 403, url
        page = response.content.decode()
        assert "This page is not for your account" in page, url
        assert "css/site.css" in page and "rosa" in page, url


def test_an_unknown_page_is_a_styled_404(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Nothing here" in page and "/no/such/page/" in page and "css/site.css" in page


def test_unknown_api_paths_stay_json(client):
    response = client.get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.urls("tests.urls_failing")
def test_a_server_error_is_a_styled_500_for_people_and_json_for_the_api():
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and "css/site.css" in page
    response = client.get("/api/boom/")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"


def test_a_form_sent_without_the_csrf_cookie_gets_the_styled_csrf_page():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "did not send the security cookie" in page and "css/site.css" in page
    assert "Forbidden (403)" not in page  # not Django's debug page


def test_a_stale_csrf_token_is_explained_too():
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")  # sets the cookie
    response = client.post(
        "/accounts/login/", {"username": "x", "password": "y", "csrfmiddlewaretoken": "x" * 64}
    )
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()


def test_a_json_request_that_fails_csrf_gets_json(client):
    reviewer = _reviewer()
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(reviewer)
    response = csrf_client.post(
        "/review/00000000-0000-0000-0000-000000000000/draft/",
        data="{}",
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("favicon.ico")
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon"' in page and "favicon.svg" in page


def test_templates_carry_no_inline_styles_or_scripts():
    """The site runs under a Content-Security-Policy without 'unsafe-inline'."""
    from pathlib import Path

    offenders = []
    for path in Path("templates").rglob("*.html"):
        if "admin" in path.parts:
            continue  # the admin's own templates belong to the revision pages' owners
        text = path.read_text()
        if " style=" in text or "<style" in text:
            offenders.append(f"{path}: inline style")
        for chunk in text.split("<script")[1:]:
            head, _, rest = chunk.partition(">")
            if (
                "src=" not in head
                and "application/json" not in head
                and rest.strip()[:9] != "</script>"
            ):
                offenders.append(f"{path}: inline script")
    assert not offenders, offenders
