"""Production settings: HTTPS, cookies, HSTS, the proxy header and the Content-Security-Policy
come from the environment, with production defaults when DEBUG is off; `check --deploy` is
clean under config/production.env.example; every page works under the CSP."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "production.env.example"
OWN_PREFIXES = ("DJANGO_", "CSP_", "DATABASE_URL", "REDIS_URL", "VIDEO_ACCEL")


def example_values() -> dict[str, str]:
    values = {}
    for raw in EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def site_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """This machine's environment without the site's own variables, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env.update(
        {
            "FEEDBACKLOOP_VAR_DIR": str(tmp_path / "var"),
            "MEDIA_ROOT": str(tmp_path / "media"),
            "STATIC_ROOT": str(tmp_path / "static"),
        }
    )
    env.update(values)
    return env


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    values = example_values()
    values["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)  # the one value left to fill in
    values.update(overrides)
    return site_env(tmp_path, **values)


def settings_under(env: dict[str, str], *names: str) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"values = {{n: getattr(settings, n, None) for n in {list(names)!r}}}; "
        "print(json.dumps(values, default=repr))"
    )
    env = {**env, "DJANGO_SETTINGS_MODULE": "feedbackloop.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


SECURITY = (
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_REDIRECT_EXEMPT",
)


def test_check_deploy_prints_no_warning_under_the_production_example(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNINGS" not in output and "ERRORS" not in output, output
    assert "System check identified no issues (0 silenced)." in output


def test_without_debug_every_https_setting_defaults_to_production(tmp_path):
    values = settings_under(
        site_env(tmp_path, DJANGO_DEBUG="false", DJANGO_SECRET_KEY=secrets.token_urlsafe(50)),
        *SECURITY,
    )
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_REDIRECT_EXEMPT": ["^healthz$"],
    }


def test_with_debug_the_defaults_suit_a_laptop_on_plain_http(tmp_path):
    values = settings_under(site_env(tmp_path, DJANGO_DEBUG="true"), *SECURITY)
    assert values["DEBUG"] is True
    assert values["SECURE_SSL_REDIRECT"] is False and values["SECURE_HSTS_SECONDS"] == 0
    assert not values["SESSION_COOKIE_SECURE"] and not values["CSRF_COOKIE_SECURE"]
    assert not values["SECURE_HSTS_PRELOAD"] and not values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SECURE_PROXY_SSL_HEADER"] is None


def test_each_security_setting_is_read_from_its_own_variable(tmp_path):
    env = production_env(
        tmp_path,
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        DJANGO_SECURE_HSTS_PRELOAD="false",
        DJANGO_SESSION_COOKIE_SECURE="false",
        DJANGO_CSRF_COOKIE_SECURE="false",
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Scheme: https",
        DJANGO_SECURE_REDIRECT_EXEMPT="^healthz$,^status/",
    )
    values = settings_under(env, *SECURITY)
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_SCHEME", "https"],
        "SECURE_REDIRECT_EXEMPT": ["^healthz$", "^status/"],
    }
    no_proxy = settings_under(
        production_env(tmp_path, DJANGO_SECURE_PROXY_SSL_HEADER=""), "SECURE_PROXY_SSL_HEADER"
    )
    assert no_proxy == {"SECURE_PROXY_SSL_HEADER": None}


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(tmp_path, DJANGO_SECRET_KEY=""),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false" in done.stderr


def test_a_malformed_proxy_header_setting_is_refused_with_its_expected_form(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(tmp_path, DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "must look like 'X-Forwarded-Proto: https'" in done.stderr


def test_media_origins_from_the_environment_join_media_and_image_sources(tmp_path):
    origin = "https://media.example-bucket.test"
    env = production_env(tmp_path, CSP_MEDIA_ORIGINS=origin)
    directives = settings_under(env, "CONTENT_SECURITY_POLICY")["CONTENT_SECURITY_POLICY"][
        "DIRECTIVES"
    ]
    assert directives["media-src"] == ["'self'", origin]
    assert directives["img-src"] == ["'self'", "data:", origin]
    assert directives["script-src"] == ["'self'"]


def test_report_only_mode_sends_the_policy_without_enforcing_it(tmp_path):
    values = settings_under(
        production_env(tmp_path, CSP_REPORT_ONLY="true"),
        "CONTENT_SECURITY_POLICY",
        "CONTENT_SECURITY_POLICY_REPORT_ONLY",
    )
    assert values["CONTENT_SECURITY_POLICY"] is None
    assert values["CONTENT_SECURITY_POLICY_REPORT_ONLY"]["DIRECTIVES"]["script-src"] == ["'self'"]


# --- the policy on real responses ----------------------------------------------------------


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


@pytest.mark.django_db
def test_pages_allow_only_same_origin_scripts_and_no_inline_script(client):
    policy = _policy(client.get("/accounts/login/"))
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert policy["media-src"] == ["'self'"]


@pytest.mark.django_db
def test_api_docs_page_alone_may_use_inline_styles_and_data_images(client):
    response = client.get("/api/docs/")
    policy = _policy(response)
    assert response.status_code == 200
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" in policy["style-src"] and "data:" in policy["img-src"]
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
    assert "'unsafe-inline'" not in _policy(client.get("/accounts/login/"))["style-src"]


# --- every page in a real browser ------------------------------------------------------------

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("rating_dimensions")
def test_every_page_works_under_the_content_security_policy(live_server, monkeypatch):
    from django.contrib.auth.models import Group
    from django.db import connections

    from tests.conftest import chromium_launch_args, require_chromium
    from tests.factories import FinishedGenerationFactory, UserFactory

    require_chromium()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    generation = FinishedGenerationFactory()
    UserFactory(username="boss", is_staff=True, is_superuser=True)
    reviewer = UserFactory(username="rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    journeys = {
        None: ["/accounts/login/", "/no-such-page/"],
        "boss": [
            "/",
            "/generations/",
            f"/generations/{generation.pk}/",
            "/dashboard/",
            "/reviewers/",
            f"/reviewers/{reviewer.pk}/",
            "/admin/",
            "/admin/auth/user/add/",
            f"/admin/generation/generation/{generation.pk}/change/",
            f"/admin/pipelines/configrevision/{generation.revision.pk}/change/",
            "/api/docs/",
        ],
        "rita": ["/review/", f"/review/{generation.pk}/", "/compare/"],
    }
    expected_status = {"/no-such-page/": 404}
    problems: dict[str, list[str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium_launch_args())
        try:
            for username, paths in journeys.items():
                context = browser.new_context()
                context.add_init_script(RECORD_VIOLATIONS)
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                if username:
                    page.goto(f"{live_server.url}/accounts/login/")
                    page.fill("input[name=username]", username)
                    page.fill("input[name=password]", "pass-12345")
                    page.click("[type=submit]")
                    page.wait_for_load_state("networkidle")
                for path in paths:
                    errors.clear()
                    response = page.goto(f"{live_server.url}{path}")
                    page.wait_for_load_state("networkidle")
                    found = page.evaluate("window.__cspViolations") + errors
                    status = response.status if response else None
                    if status != expected_status.get(path, 200):
                        found.append(f"status {status}")
                    if found:
                        problems[path] = found
                    if path == "/api/docs/":  # Swagger UI drew the operations from its script
                        page.wait_for_selector(".opblock", timeout=10_000)
                context.close()
        finally:
            browser.close()
            connections.close_all()
    assert not problems, problems
