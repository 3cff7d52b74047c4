"""Periodic improver work, run by django-celery-beat on queue `improver`."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from improvements import services
from improvements.criteria import criteria_resolve


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=600,
    time_limit=660,
)
def improver_run_task() -> list[int]:
    """Analyse feedback once the threshold is met; propose revisions for an admin."""
    feedback = criteria_resolve()
    revisions = services.improvement_check(
        min_feedback=feedback.min_feedback_for_analysis,
        require_approval=feedback.require_approval,
        criteria=feedback.improvement_criteria,
    )
    return [r.number for r in revisions]


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=120,
    time_limit=150,
)
def experiments_evaluate_task() -> list[str]:
    """Look at the running canary: promote, roll back or keep it running (idempotent)."""
    from improvements.experiments import experiments_evaluate

    return [decision.kind for decision in experiments_evaluate()]
