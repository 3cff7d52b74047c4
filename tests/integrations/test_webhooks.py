"""Webhooks to a real local HTTP server: signed bodies, retries with backoff, failures kept,
lost tasks sent again; Slack bodies; approvers' email on a new proposal."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.test import Client
from django.utils import timezone

from generation.services.outcomes import generation_fail
from generation.services.requests import generation_request
from improvements.criteria import criteria_resolve
from improvements.experiments import ArmOutcome, arm_open, experiment_apply
from improvements.services import improvement_check
from improvements.signals import proposal_created
from integrations import webhooks
from integrations.models import WebhookDelivery, WebhookEndpoint
from pipelines.selectors import revision_active
from pipelines.services.revisions import revision_create, revision_reject
from reviews.models import Rating, RatingDimension, Review
from tests.factories import FinishedGenerationFactory, UserFactory
from tests.integrations.conftest import free_port

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook receiver on a free local port: records each request, answers with the next
    status of ``statuses`` (200 once they run out)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"not now")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def fast_retries(settings):
    """Retries at once. Eager tasks run a retry in place only when they do not propagate
    exceptions (a worker would schedule it on the broker after the countdown)."""
    from feedbackloop.celery import app

    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


@pytest.fixture
def endpoint(receiver) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(name="ops", url=receiver.url, secret="s3cret-key")


def verify(request: dict, secret: str) -> bool:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return webhooks.signature_verify(
        secret=secret,
        body=request["body"],
        timestamp=headers.get("x-feedbackloop-timestamp"),
        signature_header=headers.get("x-feedbackloop-signature"),
    )


def test_failed_generation_is_posted_signed_and_the_signature_verifies(
    builtin_pipeline, endpoint, receiver, fast_retries, django_capture_on_commit_callbacks
):
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="A", backend="remote")
    with django_capture_on_commit_callbacks(execute=True):
        generation_fail(generation_id=generation.pk, error="CUDA out of memory\ntrace…")

    (request,) = receiver.requests
    assert verify(request, "s3cret-key")
    assert not verify(request, "another-secret")
    assert not verify({**request, "body": request["body"].replace(b"CUDA", b"cuda")}, "s3cret-key")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-feedbackloop-event"] == "generation.failed"
    body = json.loads(request["body"])
    assert body["event"] == "generation.failed"
    assert body["data"]["generation_id"] == str(generation.pk)
    assert body["data"]["pipeline"] == "builtin" and body["data"]["backend"] == "remote"
    assert body["data"]["error"].startswith("CUDA out of memory")
    delivery = WebhookDelivery.objects.get()
    assert headers["x-feedbackloop-delivery"] == str(delivery.pk)
    assert delivery.status == "succeeded" and delivery.attempts == 1
    assert delivery.response_status == 200


def test_a_stale_timestamp_fails_verification_even_with_the_right_signature():
    body = b'{"event":"ping"}'
    old = int(time.time()) - 3600
    header = webhooks.signature(secret="k", timestamp=old, body=body)
    assert not webhooks.signature_verify(
        secret="k", body=body, timestamp=str(old), signature_header=header
    )
    assert webhooks.signature_verify(
        secret="k", body=body, timestamp=str(old), signature_header=header, now=old + 10
    )


def test_server_answering_500_then_200_is_retried_and_succeeds(
    builtin_pipeline, endpoint, receiver, fast_retries, django_capture_on_commit_callbacks
):
    receiver.statuses = [500]
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="B", backend="remote")
    with django_capture_on_commit_callbacks(execute=True):
        generation_fail(generation_id=generation.pk, error="boom")

    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first["body"] == second["body"], "a retry sends the same event"
    assert all(verify(r, "s3cret-key") for r in receiver.requests)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded" and delivery.attempts == 2
    assert [h["status"] for h in delivery.history] == [500, 200]


def test_an_endpoint_that_keeps_failing_is_retried_then_marked_failed(
    builtin_pipeline, endpoint, receiver, fast_retries, django_capture_on_commit_callbacks
):
    receiver.statuses = [503, 404, 500, 200]
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="C", backend="remote")
    with django_capture_on_commit_callbacks(execute=True):
        generation_fail(generation_id=generation.pk, error="boom")

    assert len(receiver.requests) == 3  # WEBHOOK_MAX_ATTEMPTS
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.attempts == 3
    assert [h["status"] for h in delivery.history] == [503, 404, 500]
    assert delivery.last_error == "HTTP 500" and delivery.payload["event"] == "generation.failed"


def test_retry_delays_double_and_are_capped(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.WEBHOOK_RETRY_MAX_SECONDS = 100
    assert [webhooks.retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_a_delivery_whose_task_was_lost_is_sent_by_the_redispatch(
    builtin_pipeline, endpoint, receiver, fast_retries, settings, django_capture_on_commit_callbacks
):
    # No commit callbacks run here: the task never reaches a broker, as when one is lost.
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="D", backend="remote")
    generation_fail(generation_id=generation.pk, error="lost in transit")
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 0 and not receiver.requests

    assert webhooks.deliveries_redispatch() == 0, "not overdue yet"
    WebhookDelivery.objects.update(
        next_attempt_at=timezone.now() - timedelta(seconds=settings.WEBHOOK_REDISPATCH_SECONDS + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.deliveries_redispatch() == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and len(receiver.requests) == 1
    assert json.loads(receiver.requests[0]["body"])["data"]["error"] == "lost in transit"


def test_experiment_decisions_are_posted_with_their_outcome(
    builtin_pipeline, endpoint, receiver, fast_retries, django_capture_on_commit_callbacks
):
    active = revision_active(pipeline=builtin_pipeline)
    candidate = revision_create(
        pipeline=builtin_pipeline, params={**active.params, "crf": 30}, parent=active
    )
    arm = arm_open(revision=candidate, share=0.3)
    outcome = ArmOutcome(candidate.pk, "drop", "worse than control", -0.4, -0.7, -0.1, 40, 41)
    with django_capture_on_commit_callbacks(execute=True):
        experiment_apply(experiment=arm.experiment, outcomes=[outcome])

    (body,) = receiver.bodies()
    assert body["event"] == "experiment.decided"
    data = body["data"]
    assert (data["pipeline"], data["revision"], data["decision"]) == (
        "builtin",
        candidate.number,
        "dropped",
    )
    assert data["reason"] == "worse than control" and data["upper"] == -0.1
    assert data["experiment"] == arm.experiment_id


def test_only_subscribed_active_endpoints_get_an_event(
    builtin_pipeline, receiver, fast_retries, django_capture_on_commit_callbacks
):
    WebhookEndpoint.objects.create(name="proposals", url=receiver.url, events=["proposal.created"])
    WebhookEndpoint.objects.create(name="off", url=receiver.url, active=False)
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="E", backend="remote")
    with django_capture_on_commit_callbacks(execute=True):
        generation_fail(generation_id=generation.pk, error="boom")
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()


def test_slack_endpoints_get_a_text_and_blocks_body(
    builtin_pipeline, receiver, fast_retries, django_capture_on_commit_callbacks
):
    WebhookEndpoint.objects.create(name="slack", url=receiver.url, slack=True, secret="x")
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="F", backend="remote")
    with django_capture_on_commit_callbacks(execute=True):
        generation_fail(generation_id=generation.pk, error="disk full")
    (body,) = receiver.bodies()
    assert set(body) == {"text", "blocks"}
    assert "Generation failed (builtin r1, remote): disk full" in body["text"]
    assert f"/admin/generation/generation/{generation.pk}/change/" in body["text"]
    assert verify(receiver.requests[0], "x")


@pytest.fixture
def approvers(db) -> list[str]:
    group = Group.objects.create(name="approvers")
    group.permissions.add(Permission.objects.get(codename="approve_configrevision"))
    UserFactory(username="ada", email="ada@example.com").groups.add(group)
    UserFactory(username="root", email="root@example.com", is_superuser=True)
    UserFactory(username="rita", email="rita@example.com")  # a reviewer: no email
    UserFactory(username="gone", email="gone@example.com", is_active=False).groups.add(group)
    return ["ada@example.com", "root@example.com"]


def rated(pipeline, n_generations: int = 12) -> None:
    """Mediocre ratings of the active revision, enough for the improver to act on."""
    active = revision_active(pipeline=pipeline)
    users = [UserFactory(username=f"judge{i}") for i in range(5)]
    dimensions = list(RatingDimension.objects.all())
    for g in range(n_generations):
        generation = FinishedGenerationFactory(revision=active, params=active.params)
        for i, user in enumerate(users):
            review = Review.objects.create(reviewer=user, generation=generation)
            Rating.objects.bulk_create(
                Rating(review=review, dimension=d, value=1 + (g + i) % 3) for d in dimensions
            )


def test_the_improvers_proposals_are_posted_and_approvers_get_one_email(
    builtin_pipeline,
    rating_dimensions,
    endpoint,
    receiver,
    approvers,
    fast_retries,
    django_capture_on_commit_callbacks,
):
    rated(builtin_pipeline)
    with django_capture_on_commit_callbacks(execute=True):
        proposals = improvement_check(
            pipeline=builtin_pipeline,
            min_feedback=1,
            require_approval=True,
            criteria=criteria_resolve().improvement_criteria,
            seed=1,
        )
    assert proposals, "the improver proposed nothing: the test's premise is gone"
    bodies = receiver.bodies()
    assert all(verify(r, "s3cret-key") for r in receiver.requests)
    assert [b["event"] for b in bodies] == ["proposal.created"] * len(proposals)
    assert sorted(b["data"]["revision"] for b in bodies) == sorted(p.number for p in proposals)
    first = next(b["data"] for b in bodies if b["data"]["revision"] == proposals[0].number)
    assert first["status"] == "proposed" and first["source"] == "improver"
    assert first["rationale"] == proposals[0].rationale and first["changes"]
    assert first["url"].endswith(f"/admin/pipelines/configrevision/{proposals[0].pk}/change/")

    # One email per approver for the whole step, listing every proposal.
    assert sorted(m.to[0] for m in mail.outbox) == approvers
    message = mail.outbox[0]
    assert "builtin" in message.subject and "await" in message.subject
    for proposal in proposals:
        assert f"builtin r{proposal.number}" in message.body
        assert f"/admin/pipelines/configrevision/{proposal.pk}/change/" in message.body


def test_a_proposal_decided_before_its_email_goes_out_is_left_out(
    builtin_pipeline, approvers, django_capture_on_commit_callbacks
):
    active = revision_active(pipeline=builtin_pipeline)
    proposal = revision_create(
        pipeline=builtin_pipeline,
        params={**active.params, "crf": 26},
        parent=active,
        source="improver",
        rationale="Smaller files at the same rated quality.",
    )
    revision_reject(revision=proposal, note="not now")
    with django_capture_on_commit_callbacks(execute=True):
        proposal_created.send(sender=type(proposal), revision=proposal)
    assert mail.outbox == []


def test_the_delivery_log_is_read_only_in_the_admin(
    builtin_pipeline, endpoint, receiver, fast_retries, django_capture_on_commit_callbacks
):
    generation, _ = generation_request(pipeline=builtin_pipeline, prompt="G", backend="remote")
    with django_capture_on_commit_callbacks(execute=True):
        generation_fail(generation_id=generation.pk, error="boom")
    delivery = WebhookDelivery.objects.get()
    client = Client()
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    listing = client.get("/admin/integrations/webhookdelivery/")
    assert listing.status_code == 200 and b"generation.failed" in listing.content
    page = client.get(f"/admin/integrations/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.get("/admin/integrations/webhookdelivery/add/").status_code == 403
    deleted = client.post(f"/admin/integrations/webhookdelivery/{delivery.pk}/delete/")
    assert deleted.status_code == 403 and WebhookDelivery.objects.filter(pk=delivery.pk).exists()
    assert client.get("/admin/integrations/webhookendpoint/add/").status_code == 200
    added = client.post(
        "/admin/integrations/webhookendpoint/add/",
        {
            "name": "slack",
            "url": "https://hooks.example.com/T0/B0",
            "events": ["proposal.created", "experiment.decided"],
            "slack": "on",
            "active": "on",
            "secret": "a-long-secret",
        },
    )
    assert added.status_code == 302, added.content[:2000]
    slack = WebhookEndpoint.objects.get(name="slack")
    assert slack.events == ["proposal.created", "experiment.decided"] and slack.slack
    assert client.get(f"/admin/integrations/webhookendpoint/{slack.pk}/change/").status_code == 200
