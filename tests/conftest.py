"""Shared fixtures.

Tests that need a real service (PostgreSQL + Redis, or Chromium) call `require_*` helpers:
without the service they skip with a reason, and in CI (CI=true) that skip is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.factories import UserFactory

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


def require_chromium() -> str:
    if not Path(CHROMIUM).exists():
        skip_or_fail("Chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("playwright is not installed")
    return CHROMIUM


def chromium_launch_args() -> dict:
    return {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
        ],
    }


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache (remembered roles, throttle counts); with Redis the
    cache is its own database, so this never touches the broker's queues."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _eager_celery():
    """Unit tests run tasks in-process; the pipeline test starts a real worker instead."""
    from feedbackloop.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def small_params() -> dict:
    """Parameters that render a tiny video quickly (the default would take seconds)."""
    return {
        "width": 192,
        "height": 108,
        "fps": 12,
        "seconds_per_scene": 0.75,
        "transition_seconds": 0.2,
        "preset": "ultrafast",
        "model_variant": "draft",
    }


@pytest.fixture
def builtin_pipeline(db):
    """The built-in pipeline, registered from its declaration as `make run` does."""
    from feedbackloop.config import BUILTIN_ENTRY
    from pipelines.builtin.declaration import DECLARATION
    from pipelines.services.registration import pipeline_register

    entry = {k: v for k, v in BUILTIN_ENTRY.items() if k != "declaration"}
    return pipeline_register(parameters=DECLARATION, registered_by="test", **entry).pipeline


@pytest.fixture
def active_revision(builtin_pipeline, small_params):
    """An active builtin revision that renders tiny videos (it replaces the defaults' r1)."""
    from pipelines.selectors import revision_active
    from pipelines.services.revisions import revision_approve_and_activate, revision_create

    active = revision_active(pipeline=builtin_pipeline)
    if active.params == {**active.params, **small_params}:
        return active
    revision = revision_create(pipeline=builtin_pipeline, params=small_params, parent=active)
    return revision_approve_and_activate(revision=revision)


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita")


@pytest.fixture
def rating_dimensions(db):
    """The seeded rating dimensions, for transactional tests: a flush between such tests wipes
    the data migration's rows (serialized_rollback would restore them, but it collides with the
    content types that post_migrate recreates after another transactional test's flush)."""
    import importlib

    from reviews.models import RatingDimension

    seed = importlib.import_module("reviews.migrations.0002_seed_rating_dimensions")
    for slug, label, description, order in seed.DIMENSIONS:
        RatingDimension.objects.get_or_create(
            slug=slug, defaults={"label": label, "description": description, "order": order}
        )
    return list(RatingDimension.objects.all())


@pytest.fixture
def output_dir(request) -> Path:
    """A folder under test-output/ named after the test, for screenshots and artefacts."""
    path = Path("test-output") / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path
