"""Webhooks: events out of the loop to configured URLs, signed, retried, never lost.

Events (integrations.models.Event) come from the lower apps' signals: a new improver proposal,
an experiment arm decided (promoted, dropped, rolled back or aborted), a generation failed.

1. The receiver writes one WebhookDelivery per subscribed endpoint in the transaction that made
   the event (so a rolled-back step sends nothing) and hands a delivery task to the broker once
   it commits.
2. The task POSTs the body with a signature (below); a 2xx ends it as succeeded, anything else
   is retried with exponential backoff until WEBHOOK_MAX_ATTEMPTS, then marked failed.
3. The delivery row exists before the first attempt: a task lost with its broker or worker is
   sent again by ``deliveries_redispatch`` (a periodic task), so no event is lost.

Signature (docs/webhooks.md): ``X-Feedbackloop-Signature: v1=<hex>`` where ``<hex>`` is the
HMAC-SHA256, keyed with the endpoint's secret, of ``<timestamp>.<raw body>`` and ``<timestamp>``
is the ``X-Feedbackloop-Timestamp`` header (Unix seconds). A receiver recomputes it over the raw
bytes, compares in constant time and refuses a timestamp too far from its clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from feedbackloop.dispatch import send_on_commit
from integrations.models import Event, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Feedbackloop-Signature"
TIMESTAMP_HEADER = "X-Feedbackloop-Timestamp"
EVENT_HEADER = "X-Feedbackloop-Event"
DELIVERY_HEADER = "X-Feedbackloop-Delivery"
SIGNATURE_VERSION = "v1"
RESPONSE_KEEP_CHARS = 2000
D = WebhookDelivery.Status


# --- signing ----------------------------------------------------------------------------------


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signature_verify(
    *,
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature_header: str | None,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature matches the raw body and the time is recent."""
    if not timestamp or not signature_header:
        return False
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - stamp) > tolerance_seconds:
        return False
    expected = signature(secret=secret, timestamp=stamp, body=body)
    offered = [part.strip() for part in signature_header.split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


# --- events -----------------------------------------------------------------------------------


def _site_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def event_record(*, event: str, data: dict[str, Any], summary: str) -> list[WebhookDelivery]:
    """Write a delivery per active endpoint subscribed to ``event``; their tasks go out when
    the surrounding transaction commits. Never raises: a webhook problem must not undo the
    improver's step or a generation's failure (it is logged instead)."""
    try:
        with transaction.atomic():
            endpoints = [e for e in WebhookEndpoint.objects.filter(active=True) if e.wants(event)]
            if not endpoints:
                return []
            event_id = uuid.uuid4()
            payload = json.loads(
                json.dumps(
                    {
                        "id": str(event_id),
                        "event": event,
                        "occurred_at": timezone.now(),
                        "summary": summary,
                        "data": data,
                    },
                    cls=DjangoJSONEncoder,
                )
            )
            deliveries = WebhookDelivery.objects.bulk_create(
                WebhookDelivery(
                    endpoint=endpoint,
                    event=event,
                    event_id=event_id,
                    payload=payload,
                    next_attempt_at=timezone.now(),
                )
                for endpoint in endpoints
            )
    except Exception:  # noqa: BLE001 - logged; the caller's work goes on
        logger.exception("could not record the %s webhook event", event)
        return []
    for delivery in deliveries:
        delivery_dispatch(delivery_id=str(delivery.pk))
    return deliveries


def delivery_dispatch(*, delivery_id: str) -> None:
    from integrations.tasks import webhook_deliver_task

    def sent() -> None:
        WebhookDelivery.objects.filter(pk=delivery_id).update(dispatched_at=timezone.now())

    send_on_commit(webhook_deliver_task, delivery_id, on_sent=sent)


def _wanted(event: str) -> bool:
    """Is any active endpoint subscribed (a cheap look before the payload is built)?"""
    return any(e.wants(event) for e in WebhookEndpoint.objects.filter(active=True))


def _proposal_created(sender: Any, revision: Any, **kwargs: Any) -> None:
    from integrations.tasks import proposal_email_task
    from pipelines.models import ConfigRevision

    send_on_commit(proposal_email_task, revision.pk)
    if not _wanted(Event.PROPOSAL_CREATED):
        return

    revision = ConfigRevision.objects.select_related("pipeline", "parent").get(pk=revision.pk)
    label = f"{revision.pipeline.slug} r{revision.number}"
    changes = {k: {"from": old, "to": new} for k, (old, new) in revision.diff_from_parent().items()}
    data = {
        "pipeline": revision.pipeline.slug,
        "revision": revision.number,
        "parent": revision.parent.number if revision.parent else None,
        "status": revision.status,
        "source": revision.source,
        "rationale": revision.rationale,
        "changes": changes,
        "predicted_impact": revision.predicted_impact,
        "url": _site_url(reverse("admin:pipelines_configrevision_change", args=[revision.pk])),
    }
    why = revision.rationale.splitlines()[0] if revision.rationale else "no rationale given"
    summary = f"New proposal {label}: {why}"[:1000]
    event_record(event=Event.PROPOSAL_CREATED, data=data, summary=summary)


DECISIONS = {
    "promote": "promoted",
    "drop": "dropped",
    "rollback": "rolled_back",
    "abort": "aborted",
}


def _experiment_decided(sender: Any, arm: Any, outcome: Any, **kwargs: Any) -> None:
    if not _wanted(Event.EXPERIMENT_DECIDED):
        return
    revision = arm.revision
    decision = DECISIONS.get(outcome.kind, outcome.kind)
    data = {
        "pipeline": revision.pipeline.slug,
        "experiment": arm.experiment_id,
        "revision": revision.number,
        "decision": decision,
        "arm_status": arm.status,
        "reason": outcome.reason,
        "estimate": outcome.estimate,
        "lower": outcome.lower,
        "upper": outcome.upper,
        "n_candidate": outcome.n_candidate,
        "n_control": outcome.n_control,
        "url": _site_url(reverse("admin:improvements_experiment_change", args=[arm.experiment_id])),
    }
    summary = (
        f"Experiment #{arm.experiment_id}: {revision.pipeline.slug} r{revision.number} "
        f"{decision.replace('_', ' ')}: {outcome.reason}"
    )
    event_record(event=Event.EXPERIMENT_DECIDED, data=data, summary=summary[:1000])


def _generation_failed(sender: Any, generation_id: Any, error: str, **kwargs: Any) -> None:
    from generation.models import Generation

    if not _wanted(Event.GENERATION_FAILED):
        return

    generation = (
        Generation.objects.select_related("revision__pipeline").filter(pk=generation_id).first()
    )
    if generation is None:
        return
    data = {
        "generation_id": str(generation.pk),
        "pipeline": generation.revision.pipeline.slug,
        "revision": generation.revision.number,
        "backend": generation.backend,
        "attempts": generation.attempts,
        "prompt": generation.prompt[:500],
        "error": error,
        "url": _site_url(reverse("admin:generation_generation_change", args=[generation.pk])),
    }
    summary = (
        f"Generation failed ({generation.revision.pipeline.slug} r{generation.revision.number}, "
        f"{generation.backend}): {error.splitlines()[0] if error else 'no reason given'}"
    )
    event_record(event=Event.GENERATION_FAILED, data=data, summary=summary[:1000])


def receivers_connect() -> None:
    from generation.signals import generation_failed
    from improvements.signals import experiment_decided, proposal_created

    proposal_created.connect(_proposal_created, dispatch_uid="integrations.webhooks.proposal")
    experiment_decided.connect(_experiment_decided, dispatch_uid="integrations.webhooks.decision")
    generation_failed.connect(_generation_failed, dispatch_uid="integrations.webhooks.failure")


# --- delivering -------------------------------------------------------------------------------


def slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body: the summary as text, with a link to the page."""
    summary = payload.get("summary") or payload.get("event", "")
    url = (payload.get("data") or {}).get("url")
    text = f"{summary} <{url}|open>" if url else summary
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def body_of(delivery: WebhookDelivery) -> bytes:
    payload = slack_body(delivery.payload) if delivery.endpoint.slack else delivery.payload
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")


def retry_delay(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from the base, capped."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS
    return float(min(base * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX_SECONDS))


def _claim(delivery_id: Any) -> WebhookDelivery | None:
    """Hold a pending delivery for one attempt (one conditional UPDATE decides); None when it
    is finished or another attempt holds it."""
    now = timezone.now()
    held = WebhookDelivery.objects.filter(pk=delivery_id, status=D.PENDING).filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )
    lock = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 2 + 10)
    if not held.update(locked_until=lock):
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def delivery_attempt(*, delivery_id: Any) -> float | None:
    """POST a pending delivery once; returns the seconds to wait before the next attempt, or
    None when it is finished (succeeded, failed for good, or held by another attempt)."""
    import requests

    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    body = body_of(delivery)
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "feedbackloop-webhooks/1",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: signature(secret=delivery.endpoint.secret, timestamp=stamp, body=body),
    }
    started = time.perf_counter()
    code: int | None = None
    error = ""
    text = ""
    try:
        response = requests.post(
            delivery.endpoint.url,
            data=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
        code = response.status_code
        text = response.text[:RESPONSE_KEEP_CHARS]
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:RESPONSE_KEEP_CHARS]
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    return _record_attempt(delivery, code=code, error=error, text=text, elapsed_ms=elapsed_ms)


def _record_attempt(
    delivery: WebhookDelivery, *, code: int | None, error: str, text: str, elapsed_ms: int
) -> float | None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    entry = {"at": now.isoformat(), "status": code, "error": error, "ms": elapsed_ms}
    updates: dict[str, Any] = {
        "attempts": attempts,
        "response_status": code,
        "last_error": error or (text if code and code >= 300 else ""),
        "history": [*delivery.history, entry],
        "locked_until": None,
    }
    delay: float | None = None
    if not error:
        updates.update(status=D.SUCCEEDED, delivered_at=now, next_attempt_at=None)
    elif attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        updates.update(status=D.FAILED, next_attempt_at=None)
        logger.warning(
            "webhook %s to %s failed after %d attempts: %s",
            delivery.event,
            delivery.endpoint.url,
            attempts,
            error,
        )
    else:
        delay = retry_delay(attempts)
        updates["next_attempt_at"] = now + timedelta(seconds=delay)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**updates)
    return delay


def deliveries_redispatch() -> int:
    """Send again the pending deliveries whose task is overdue (lost with a broker or worker):
    due longer than WEBHOOK_REDISPATCH_SECONDS ago and not held by an attempt."""
    now = timezone.now()
    overdue = WebhookDelivery.objects.filter(
        status=D.PENDING,
        next_attempt_at__lt=now - timedelta(seconds=settings.WEBHOOK_REDISPATCH_SECONDS),
    ).filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
    ids = list(overdue.order_by("next_attempt_at").values_list("pk", flat=True)[:500])
    for pk in ids:
        # Pushed forward so the next sweep does not send it again while this task waits.
        WebhookDelivery.objects.filter(pk=pk, status=D.PENDING).update(next_attempt_at=now)
        delivery_dispatch(delivery_id=str(pk))
    return len(ids)


def endpoint_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A test delivery to one endpoint (from the admin), through the same path as any event."""
    payload = json.loads(
        json.dumps(
            {
                "id": str(uuid.uuid4()),
                "event": "ping",
                "occurred_at": timezone.now(),
                "summary": f"feedbackloop test delivery to {endpoint.name}",
                "data": {},
            },
            cls=DjangoJSONEncoder,
        )
    )
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event="ping",
            event_id=payload["id"],
            payload=payload,
            next_attempt_at=timezone.now(),
        )
        delivery_dispatch(delivery_id=str(delivery.pk))
    return delivery
