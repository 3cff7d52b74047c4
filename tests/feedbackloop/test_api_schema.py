"""The OpenAPI schema, the docs page, and schemathesis fuzzing every operation against it.

Schemathesis generates requests from /api/schema/ (valid and invalid ones) and sends them with a
worker token through the WSGI app in-process; every response must be a non-5xx that conforms
to the schema (status code, content type, headers and body).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core import signals
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

from generation.services.leases import job_claim
from generation.services.metrics import metric_store
from generation.services.requests import generation_request
from generation.services.tokens import worker_token_create
from tests.factories import FinishedGenerationFactory

pytestmark = pytest.mark.django_db

# Raise it for a longer hunt:
#   SCHEMATHESIS_MAX_EXAMPLES=1000 pytest tests/feedbackloop/test_api_schema.py
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "60"))


@pytest.fixture
def world(active_revision, settings) -> dict:
    """A worker token, and a world for it to see: jobs waiting, one leased, one finished."""
    settings.API_THROTTLE_RATES = {"worker": None, "user": None, "anon": None}
    cache.clear()
    token, key = worker_token_create(name="fuzzer", pipelines=["*"])
    for i in range(3):
        generation_request(
            pipeline=active_revision.pipeline, prompt=f"waiting job {i}", backend="remote"
        )
    leased = job_claim(worker=token)
    finished = FinishedGenerationFactory(revision=active_revision)
    metric_store(generation=finished, values={"sharpness": 0.5}, version=1, source="server")
    return {"key": key, "job": leased, "finished": finished}


@pytest.fixture
def worker_key(world) -> str:
    return world["key"]


@pytest.fixture
def wsgi_app() -> Iterator[WSGIHandler]:
    """The site's WSGI app, kept from closing the test's database connection after each
    request (Django's own test client does the same)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(worker_key, wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_schema_and_never_errors(case, worker_key):
    excluded = []
    if case.method == "PUT" and case.path == "/api/v1/pipelines/{slug}/":
        # A declaration must be a valid JSON Schema whose defaults fit their own bounds: rules
        # OpenAPI cannot state, so a schema-valid body may rightly be a 400 (checked by
        # tests/pipelines/test_declarations.py). Everything else is still checked.
        excluded = [positive_data_acceptance]
    case.call_and_validate(
        headers={"Authorization": f"Token {worker_key}"}, excluded_checks=excluded
    )


def _is_uuid(value: object) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_operations_on_real_objects_never_error_and_conform(case, world):
    """The same, aimed at a real leased job and a real finished generation (with the real lease
    id), so that the services behind validation get fuzzed too. The check that schema-valid
    input is accepted is left out here: real objects add rules no schema states (the upload
    must decode as a video, the lease must be current, metrics need a finished generation)."""
    if "generation_id" in (case.path_parameters or {}):
        target = world["job"] if case.path.startswith("/api/v1/jobs/") else world["finished"]
        case.path_parameters["generation_id"] = str(target.id)
    if isinstance(case.body, dict) and _is_uuid(case.body.get("lease_id")):
        case.body["lease_id"] = str(world["job"].lease_id)  # only where the case had a valid one
    case.call_and_validate(
        headers={"Authorization": f"Token {world['key']}"},
        excluded_checks=[positive_data_acceptance],
    )


def test_the_schema_is_openapi_3_and_lists_every_worker_api_operation(worker_key):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    operations = {
        f"{method.upper()} {path}" for path, methods in spec["paths"].items() for method in methods
    }
    assert operations >= {
        "GET /api/v1/config/",
        "GET /api/v1/pipelines/",
        "GET /api/v1/pipelines/{slug}/",
        "PUT /api/v1/pipelines/{slug}/",
        "GET /api/v1/pipelines/{slug}/config/",
        "POST /api/v1/jobs/claim/",
        "POST /api/v1/jobs/{generation_id}/heartbeat/",
        "POST /api/v1/jobs/{generation_id}/complete/",
        "POST /api/v1/jobs/{generation_id}/fail/",
        "GET /api/v1/generations/",
        "POST /api/v1/generations/",
        "GET /api/v1/generations/{generation_id}/",
        "POST /api/v1/generations/{generation_id}/metrics/",
        "POST /api/v1/generations/{generation_id}/feedback/",
        "GET /api/v1/feedback/summary/",
        "GET /api/v1/improvements/",
    }
    assert spec["components"]["securitySchemes"]["workerToken"]["in"] == "header"


def test_every_route_has_its_own_named_operation_id(db):
    """The default pipeline's short routes and the /pipelines/{slug}/ ones share views; each
    still gets a name of its own, not a numbered duplicate that generated clients would use."""
    spec = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    ids = [
        op["operationId"]
        for methods in spec["paths"].values()
        for op in methods.values()
        if isinstance(op, dict) and "operationId" in op
    ]
    assert len(ids) == len(set(ids))
    assert not [i for i in ids if re.search(r"_\d+$", i)], ids
    assert {
        "config_get",
        "pipelines_config",
        "revision_approve",
        "pipeline_revision_approve",
    } <= set(ids)


def test_the_docs_page_loads_its_assets_locally(db):
    page = APIClient().get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    # Swagger UI's own set-up script is served by the page itself (no inline script: CSP).
    own = [a for a in assets if a.startswith("/api/docs/?")]
    assert len(own) == 1 and APIClient().get(own[0]).status_code == 200, assets
    static = [a for a in assets if a not in own]
    assert static and all(a.startswith("/static/") for a in static), assets
    assert "cdn" not in page.lower()
    for asset in static:
        assert finders.find(asset.removeprefix("/static/")), asset
