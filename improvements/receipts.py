"""Idempotent admin actions: an ``Idempotency-Key`` makes a repeat return the first answer.

Approve, reject and roll back change a pipeline's configuration: an admin whose answer was lost
(a timeout, a proxy error, a double click) must be able to send the same request again without
acting twice. With a key:

- the first request claims the key (an ActionReceipt row, inserted in the action's own
  transaction) and, when it succeeds, keeps its status and body on the receipt;
- a repeat with the same key, action, target, body and person gets that status and body again
  (with ``Idempotent-Replayed: true``) and changes nothing; one sent while the first is still
  running waits for it (the key's unique index) and then gets its answer;
- the same key for anything else is 409 ``idempotency_key_reused``;
- an action that fails (400, 404, 409) keeps no receipt: its key may be sent again.

Without a key each request acts; the services make the same state a no-op where that is the
meaning (a second rollback to the same target while the first's result is active returns it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from feedbackloop.errors import Conflict
from feedbackloop.roles import acting_user
from generation.apis import idempotency_key_of
from improvements.models import ActionReceipt

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    pattern=r"^[!-~]{1,128}$",
    description="1-128 printable ASCII characters, no spaces. A repeat with the same key "
    "returns the first successful answer (same status and body, header Idempotent-Replayed: "
    "true) and changes nothing; the same key for another action, revision or body is 409 "
    "idempotency_key_reused.",
)
REPLAYED = "Idempotent-Replayed"


def request_digest(data: Any) -> str:
    try:
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        canonical = repr(data)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def idempotent(
    request: Request, *, action: str, target: str, perform: Callable[[], Response]
) -> Response:
    """Run ``perform`` (the action, answering a Response) once per Idempotency-Key."""
    key = idempotency_key_of(request)
    if key is None:
        return perform()
    actor = acting_user(request)
    digest = request_digest(request.data)
    first = ActionReceipt.objects.filter(key=key).first()
    if first is not None:
        return _replay(first, action=action, target=target, digest=digest, actor=actor)
    try:
        with transaction.atomic():
            # Claims the key: a concurrent request with it waits here until this one ends.
            receipt = ActionReceipt.objects.create(
                key=key,
                action=action,
                target=target,
                request_digest=digest,
                actor=actor,
                status_code=0,
                body={},
            )
            response = perform()
            if not 200 <= response.status_code < 300:
                transaction.set_rollback(True)  # failures keep no receipt
                return response
            receipt.status_code = response.status_code
            receipt.body = response.data
            receipt.save(update_fields=["status_code", "body"])
    except IntegrityError:
        first = ActionReceipt.objects.filter(key=key).first()
        if first is None:
            raise  # not the key: the action's own integrity error
        return _replay(first, action=action, target=target, digest=digest, actor=actor)
    return response


def _replay(
    receipt: ActionReceipt, *, action: str, target: str, digest: str, actor: Any
) -> Response:
    actor_id = actor.pk if actor is not None else None
    if (receipt.action, receipt.target, receipt.request_digest, receipt.actor_id) != (
        action,
        target,
        digest,
        actor_id,
    ):
        raise Conflict(
            f"this Idempotency-Key was already used for {receipt.action} of {receipt.target}"
            + (" with another body" if (receipt.action, receipt.target) == (action, target) else "")
            + "; use a new key for a new request",
            code="idempotency_key_reused",
        )
    return Response(receipt.body, status=receipt.status_code, headers={REPLAYED: "true"})
