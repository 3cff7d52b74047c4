"""Celery tasks: webhook deliveries with backoff, their redispatch, approvers' email."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from integrations.notifications import proposal_email_send
from integrations.webhooks import deliveries_redispatch, delivery_attempt

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=None,
    soft_time_limit=120,
    time_limit=150,
)
def webhook_deliver_task(self, delivery_id: str) -> str | None:
    """One attempt; a failed one is tried again after the delivery's backoff. The attempts are
    counted on the row (WEBHOOK_MAX_ATTEMPTS), not by Celery, so a redispatched task and a
    retried one share one budget."""
    delay = delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        raise self.retry(countdown=delay, max_retries=settings.WEBHOOK_MAX_ATTEMPTS * 2)
    return delivery_id


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def webhooks_redispatch_task() -> int:
    """Periodic (beat): deliveries whose task was lost are sent again."""
    return deliveries_redispatch()


@shared_task(
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, ConnectionError, OSError),
    retry_backoff=30,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def proposal_email_task(revision_id: int) -> int:
    return proposal_email_send(revision_id=revision_id)
