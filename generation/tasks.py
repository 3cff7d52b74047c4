"""Celery tasks: load by id, call a service; retries only for transient failures."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from generation.models import SERVER_BACKEND, Generation
from generation.services.metrics import metrics_compute
from generation.services.reconciler import reconcile
from generation.services.rendering import generation_run, lease_remaining_seconds


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
    soft_time_limit=settings.GENERATION_TIME_LIMIT_SECONDS,
    time_limit=settings.GENERATION_TIME_LIMIT_SECONDS + 30,
)
def generation_run_task(self, generation_id: str) -> str:
    generation = generation_run(generation_id=generation_id)
    if generation.status == Generation.Status.RUNNING and generation.backend == SERVER_BACKEND:
        # Another delivery holds it (a redelivery after a killed pool process, whose lease is
        # still running): look again once that lease has expired, and take it over if its
        # holder stopped heartbeating.
        raise self.retry(
            countdown=lease_remaining_seconds(generation) + 1,
            max_retries=settings.GENERATION_MAX_ATTEMPTS * 2,
        )
    return generation.status


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
    soft_time_limit=settings.METRICS_TIME_LIMIT_SECONDS,
    time_limit=settings.METRICS_TIME_LIMIT_SECONDS + 30,
)
def metrics_compute_task(self, generation_id: str) -> str | None:
    run = metrics_compute(generation_id=generation_id)
    return run.status if run else None


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def reconcile_task() -> dict[str, int]:
    """Periodic (beat): nothing waits for a human to unstick it."""
    return reconcile()
