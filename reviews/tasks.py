"""Celery tasks of the reviews app: load by id, call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from reviews.submissions import submission_record, submissions_redispatch


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def feedback_record_task(submission_id: str) -> str:
    return submission_record(submission_id=submission_id).status


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def submissions_reconcile_task() -> int:
    """Periodic (beat): feedback accepted but never written is sent again."""
    return submissions_redispatch()
