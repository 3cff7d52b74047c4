"""The seed's Python API in one import, usable from a plain script.

    from feedbackloop.seed import VideoGenerator

Importing this module sets Django up (settings from DJANGO_SETTINGS_MODULE, default
feedbackloop.settings) if the caller has not, and checks that the database is migrated.
"""

from __future__ import annotations

import os

import django
from django.apps import apps

if not apps.ready:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackloop.settings")
    django.setup()


def _check_migrated() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise RuntimeError(
            "the database has unapplied migrations: run `python manage.py migrate` first"
        )


_check_migrated()

from seed.feedback_collector import FeedbackCollector  # noqa: E402
from seed.feedback_integration import FeedbackIntegration  # noqa: E402
from seed.model_improver import ModelImprover  # noqa: E402
from seed.video_generator import VideoGenerator  # noqa: E402

__all__ = ["FeedbackCollector", "FeedbackIntegration", "ModelImprover", "VideoGenerator"]
