"""The periodic improver, run by django-celery-beat on queue `improver`."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from feedbackloop.config import load_config
from improvements import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3,
             soft_time_limit=600, time_limit=660)
def improver_run_task() -> list[int]:
    feedback = load_config(settings.FEEDBACKLOOP_CONFIG_PATH).feedback
    revisions = services.improvement_check(
        min_feedback=feedback.min_feedback_for_analysis,
        require_approval=settings.IMPROVER_REQUIRE_APPROVAL,
        criteria=feedback.improvement_criteria,
    )
    return [r.number for r in revisions]
