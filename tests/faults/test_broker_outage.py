"""Redis dies or restarts: a Redis server of the test's own (its own port, no persistence), with
gunicorn, Celery workers and celery beat on it, and PostgreSQL.

Settings (stack.FAULT_SETTINGS): the reconciler every 2 s; a queued generation whose task was
sent 10 s ago and never started is sent again; one never sent is sent once the broker is back.
The bounds asserted:

- Redis restarted (every queued message lost with it) while three generations wait: all three
  succeed, each exactly once, within 60 s of the restart;
- a POST /api/v1/generations/ while Redis is down answers a JSON 201 with the row queued within
  10 s (a repeat with its Idempotency-Key a JSON 200 with the same generation), no answer is
  HTML or a 5xx, and the generation succeeds exactly once within 60 s of Redis coming back.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from generation.models import Generation
from generation.services.tokens import worker_token_create
from tests.faults.helpers import builtin_pipeline_rendering, finished
from tests.faults.stack import wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
G = Generation.Status

# About 2-4 s a render: the first is still rendering when Redis restarts.
MEDIUM_RENDER = {
    "width": 320,
    "height": 180,
    "fps": 12,
    "seconds_per_scene": 2.0,
    "transition_seconds": 0.4,
    "preset": "medium",
    "model_variant": "hq",
}


class Api:
    """A client as a remote program would be: a worker token, JSON, behind a TLS proxy."""

    def __init__(self, base: str) -> None:
        _, key = worker_token_create(name="fault-client", pipelines=["*"])
        self.base = base
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Token {key}", "X-Forwarded-Proto": "https"})
        self.responses: list[requests.Response] = []

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, f"{self.base}{path}", timeout=30, **kwargs)
        self.responses.append(response)
        return response

    def create(self, prompt: str, key: str | None = None) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.call(
            "POST",
            "/api/v1/generations/",
            json={"prompt": prompt, "backend": "builtin"},
            headers=headers,
        )

    def assert_all_json(self) -> None:
        for response in self.responses:
            assert response.status_code < 500, response.text[:500]
            assert response.headers["Content-Type"].startswith("application/json"), (
                response.status_code,
                response.headers["Content-Type"],
                response.text[:300],
            )
            assert "<html" not in response.text.lower()


def no_server_errors(web_log: str) -> None:
    assert not re.search(r'HTTP/1\.[01]" 5\d\d ', web_log), web_log[-3000:]
    assert "Traceback" not in web_log, web_log[-3000:]


def test_generations_queued_when_redis_restarts_all_succeed_exactly_once_within_60s(
    own_redis, stack, reconciler_every_2s
):
    stack.redis_url = own_redis.url
    builtin_pipeline_rendering(MEDIUM_RENDER)
    stack.worker("render", ["generation"], wait=False)
    stack.worker("ops", ["default"], pool="solo", wait=False)
    stack.beat(wait=False)
    web, base = stack.web()
    api = Api(base)
    stack.wait_ready()

    created = [api.create(f"Queued before the restart, number {n}") for n in (1, 2, 3)]
    assert [r.status_code for r in created] == [201, 201, 201]
    generations = [Generation.objects.get(pk=r.json()["id"]) for r in created]
    broker = own_redis.client()
    wait_for(lambda: Generation.objects.filter(status=G.RUNNING).exists(), 60, "the first to start")
    waiting = broker.llen(stack.queue("generation"))
    assert waiting >= 1, "some generations wait in the broker"

    own_redis.stop()
    own_redis.start()
    restarted = time.monotonic()
    assert broker.llen(stack.queue("generation")) == 0, "the restart lost the queued messages"

    wait_for(
        lambda: (
            Generation.objects.filter(status=G.SUCCEEDED).count() == 3
            or Generation.objects.filter(status=G.FAILED).exists()
        ),
        60,
        "all three to succeed within 60 s of the restart",
    )
    print(f"redis restarted: all succeeded {time.monotonic() - restarted:.1f} s after it")
    for generation in generations:
        generation.refresh_from_db()
        assert generation.status == G.SUCCEEDED, generation.error
        assert generation.attempts == 1
        success = rf"generation {generation.pk} succeeded on attempt"
        wait_for(lambda s=success: stack.count_in_logs(s), 10, "the success in the log")
        assert stack.count_in_logs(success) == 1
    api.assert_all_json()
    no_server_errors(web.text())


def test_a_generation_posted_while_redis_is_down_is_queued_and_runs_once_redis_is_back(
    own_redis, stack, reconciler_every_2s
):
    stack.redis_url = own_redis.url
    builtin_pipeline_rendering(MEDIUM_RENDER)
    stack.worker("render", ["generation"], wait=False)
    stack.worker("ops", ["default"], pool="solo", wait=False)
    stack.beat(wait=False)
    web, base = stack.web()
    api = Api(base)
    stack.wait_ready()
    # One through the broker first: the web process now holds a pooled broker connection,
    # which the outage breaks under it.
    warm = Generation.objects.get(pk=api.create("Posted while the broker is up").json()["id"])
    wait_for(lambda: finished(warm), 60, "the first generation to run")

    own_redis.stop()
    started = time.monotonic()
    response = api.create("Posted while the broker is down", key="outage-1")
    answered_in = time.monotonic() - started
    print(f"POST while redis was down answered {response.status_code} in {answered_in:.2f} s")
    assert response.status_code == 201, response.text[:500]
    assert answered_in < 10, f"the POST took {answered_in:.1f} s"
    body = response.json()
    assert body["status"] == "queued"
    again = api.create("Posted while the broker is down", key="outage-1")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert api.call("GET", f"/api/v1/generations/{body['id']}/").json()["status"] == "queued"
    assert api.call("GET", "/api/v1/generations/not-a-generation/").status_code == 404
    generation = Generation.objects.get(pk=body["id"])
    assert generation.status == G.QUEUED and generation.dispatched_at is None

    time.sleep(3)  # a few reconciler periods without a broker
    own_redis.start()
    back = time.monotonic()
    wait_for(
        lambda: generation.refresh_from_db() or generation.status in (G.SUCCEEDED, G.FAILED),
        60,
        "the generation to run within 60 s of Redis coming back",
    )
    print(
        f"POST while redis was down: succeeded {time.monotonic() - back:.1f} s after it came back"
    )
    assert generation.status == G.SUCCEEDED, generation.error
    assert generation.attempts == 1
    success = rf"generation {generation.pk} succeeded on attempt"
    wait_for(lambda: stack.count_in_logs(success), 10, "the success in the log")
    assert stack.count_in_logs(success) == 1
    api.assert_all_json()
    no_server_errors(web.text())
