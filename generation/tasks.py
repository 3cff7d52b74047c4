"""Celery tasks: load by id, call a service; retries only for transient failures."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from generation import services


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
    soft_time_limit=settings.GENERATION_TIME_LIMIT_SECONDS,
    time_limit=settings.GENERATION_TIME_LIMIT_SECONDS + 30,
)
def generation_run_task(self, generation_id: str) -> str:
    return services.generation_run(generation_id=generation_id).status


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
    soft_time_limit=settings.METRICS_TIME_LIMIT_SECONDS,
    time_limit=settings.METRICS_TIME_LIMIT_SECONDS + 30,
)
def metrics_compute_task(self, generation_id: str) -> str | None:
    run = services.metrics_compute(generation_id=generation_id)
    return run.status if run else None
