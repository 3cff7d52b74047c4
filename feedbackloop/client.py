"""A Python client for the feedbackloop REST API: the seed's operations over HTTP.

A remote generator worker (token from ``manage.py create_worker_token NAME``)::

    from feedbackloop.client import FeedbackLoopClient

    api = FeedbackLoopClient("https://feedbackloop.example.com", token="flw_…")
    config = api.get_config()            # ETag-cached: unchanged config costs one 304
    job = api.claim_job()                # None when the queue is empty
    if job is not None:
        ...                              # render job.prompt with job.params, your own model
        api.heartbeat(job)               # while rendering, before the lease runs out
        api.complete_job(job, "out.mp4", poster_path="out.jpg", script={...})
        api.upload_metrics(job.id, {"render_seconds": 12.5})

A reviewer signs in with a username and password (the API's session authentication)::

    reviewer = FeedbackLoopClient("https://…", username="rita", password="…")
    reviewer.record_human_feedback(generation_id, {"visual_quality": 4}, "crisp text")
    reviewer.get_feedback_summary()

Retries: connection errors, 5xx and 429 are retried with exponential backoff (honouring
Retry-After) for calls that are safe to repeat: reads, and writes that carry an
Idempotency-Key (made once per call and reused on every retry) or a lease id (heartbeat,
complete, fail). A call that still fails raises ApiError (or ApiUnavailable).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class ApiError(Exception):
    """The API answered with an error: ``status``, machine-readable ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        try:
            error = response.json()["error"]
            return cls(response.status_code, error["code"], error["message"], error.get("details"))
        except (ValueError, KeyError, TypeError):
            text = response.text[:300].strip() or response.reason
            return cls(response.status_code, f"http_{response.status_code}", text)


class ApiUnavailable(ApiError):
    """No answer after every retry: the site is down or unreachable."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "unavailable", message)


@dataclass
class Job:
    """A leased generation job. ``lease_id`` proves the lease; keep it until you finish."""

    id: str
    prompt: str
    params: dict[str, Any]
    revision: int
    lease_id: str
    lease_expires_at: str
    experiment_arm: str = ""
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_generation(cls, data: Mapping[str, Any]) -> Job:
        lease = data.get("lease") or {}
        return cls(
            id=data["id"],
            prompt=data["prompt"],
            params=data["params"],
            revision=data["revision"],
            lease_id=lease.get("lease_id", ""),
            lease_expires_at=lease.get("lease_expires_at", ""),
            experiment_arm=data.get("experiment_arm", ""),
            data=dict(data),
        )


class FeedbackLoopClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        upload_timeout: float | tuple[float, float] = (5.0, 600.0),
        retries: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 20.0,
        login_path: str = "/accounts/login/",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.login_path = login_path
        self._cookies = requests.cookies.RequestsCookieJar()
        self._local = threading.local()  # one requests.Session per thread (heartbeat threads)
        self._config: dict[str, Any] | None = None
        self._config_etag: str | None = None
        if username is not None:
            self.login(username, password or "")

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.cookies = self._cookies
            session.headers["Accept"] = "application/json"
            if self.token:
                session.headers["Authorization"] = f"Token {self.token}"
            self._local.session = session
        return session

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _sleep_before_retry(self, attempt: int, response: requests.Response | None) -> None:
        delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
        if response is not None and response.headers.get("Retry-After", "").isdigit():
            delay = min(self.max_backoff_seconds, float(response.headers["Retry-After"]))
        time.sleep(delay * (0.8 + 0.4 * random.random()))

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        ok: tuple[int, ...] = (200,),
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Callable[[], dict[str, Any]] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> tuple[requests.Response, int]:
        """One API call with retries; returns (response, attempts made)."""
        headers = dict(headers or {})
        if method not in ("GET", "HEAD", "OPTIONS") and self._cookies.get("csrftoken"):
            headers["X-CSRFToken"] = self._cookies["csrftoken"]
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            opened = files() if files else None
            try:
                response = self.session.request(
                    method,
                    self._url(path),
                    json=json_body,
                    data=data,
                    files=opened,
                    params=params,
                    headers=headers,
                    timeout=timeout or self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt + 1 >= attempts:
                    raise ApiUnavailable(f"{method} {path}: {exc}") from exc
                logger.warning("%s %s: %s; retrying", method, path, exc)
                self._sleep_before_retry(attempt, None)
                continue
            finally:
                for value in (opened or {}).values():
                    handle = value[1] if isinstance(value, tuple) else value
                    if hasattr(handle, "close"):
                        handle.close()
            if response.status_code in ok:
                return response, attempt + 1
            if response.status_code in RETRYABLE_STATUS and attempt + 1 < attempts:
                logger.warning("%s %s: HTTP %s; retrying", method, path, response.status_code)
                self._sleep_before_retry(attempt, response)
                continue
            error = ApiError.from_response(response)
            error.attempts = attempt + 1  # type: ignore[attr-defined]
            raise error
        raise AssertionError("unreachable")

    # --- sign-in for reviewers --------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        """Start a session as a reviewer or admin (the site's login form, with its CSRF token)."""
        login_url = self._url(self.login_path)
        page = self.session.get(login_url, timeout=self.timeout)
        page.raise_for_status()
        response = self.session.post(
            login_url,
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self._cookies.get("csrftoken", ""),
            },
            headers={"Referer": login_url},
            timeout=self.timeout,
            allow_redirects=False,
        )
        if response.status_code != 302 or "sessionid" not in self._cookies:
            raise ApiError(401, "login_failed", f"could not sign in as {username!r}")

    # --- configuration ----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The revision new generations should use: {revision, params, model_variant, …}.

        Sends the last ETag, so an unchanged configuration is a bodiless 304.
        """
        headers = {"If-None-Match": self._config_etag} if self._config_etag else {}
        response, _ = self._request(
            "GET", "/api/v1/config/", retry=True, ok=(200, 304), headers=headers
        )
        if response.status_code == 304 and self._config is not None:
            return self._config
        self._config = response.json()
        self._config_etag = response.headers.get("ETag")
        return self._config

    # --- jobs -------------------------------------------------------------------------------

    def claim_job(self, lease_seconds: int | None = None) -> Job | None:
        """Lease the oldest waiting job, or None when none waits.

        Retried like a read: if an answer is lost, the job leased by the lost attempt goes back
        to the queue when its lease runs out — delayed, never lost.
        """
        body = {"lease_seconds": lease_seconds} if lease_seconds else {}
        response, _ = self._request(
            "POST", "/api/v1/jobs/claim/", retry=True, ok=(200, 204), json_body=body
        )
        if response.status_code == 204:
            return None
        return Job.from_generation(response.json())

    def heartbeat(
        self, job: Job, progress: float | None = None, lease_seconds: int | None = None
    ) -> dict[str, Any]:
        """Extend the lease; raises ApiError(409, "lease_lost" / "lease_expired") when gone."""
        body: dict[str, Any] = {"lease_id": job.lease_id}
        if progress is not None:
            body["progress"] = max(0.0, min(1.0, progress))
        if lease_seconds:
            body["lease_seconds"] = lease_seconds
        response, _ = self._request(
            "POST", f"/api/v1/jobs/{job.id}/heartbeat/", retry=True, json_body=body
        )
        data = response.json()
        job.lease_expires_at = (data.get("lease") or {}).get("lease_expires_at", "")
        return data

    def complete_job(
        self,
        job: Job,
        video_path: str | Path,
        poster_path: str | Path | None = None,
        script: Mapping[str, Any] | None = None,
        *,
        generation_seconds: float | None = None,
        cpu_seconds: float | None = None,
        peak_rss_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Upload the video (and poster, script) and finish the job; returns the generation.

        The lease id makes a retry safe: if an earlier attempt got through, the retry's 409
        (job_finished) is resolved by reading the job back.
        """
        data: dict[str, Any] = {"lease_id": job.lease_id}
        if script is not None:
            data["script"] = json.dumps(script)
        for key, value in (
            ("generation_seconds", generation_seconds),
            ("cpu_seconds", cpu_seconds),
            ("peak_rss_bytes", peak_rss_bytes),
        ):
            if value is not None:
                data[key] = str(value)

        def files() -> dict[str, Any]:
            # Opened afresh for every attempt; _request closes them after each one.
            video = open(video_path, "rb")  # noqa: SIM115
            opened = {"video": (Path(video_path).name, video, "video/mp4")}
            if poster_path is not None:
                poster = open(poster_path, "rb")  # noqa: SIM115
                opened["poster"] = (Path(poster_path).name, poster, "image/jpeg")
            return opened

        try:
            response, _ = self._request(
                "POST",
                f"/api/v1/jobs/{job.id}/complete/",
                retry=True,
                data=data,
                files=files,
                timeout=self.upload_timeout,
            )
        except ApiError as exc:
            if exc.code == "job_finished" and getattr(exc, "attempts", 1) > 1:
                generation = self.get_generation(job.id)
                if generation["status"] == "succeeded":
                    return generation
            raise
        return response.json()

    def fail_job(self, job: Job, error: str, *, requeue: bool = False) -> dict[str, Any]:
        """Give the job up with an error (or put it back in the queue with ``requeue``)."""
        response, _ = self._request(
            "POST",
            f"/api/v1/jobs/{job.id}/fail/",
            retry=True,
            json_body={
                "lease_id": job.lease_id,
                "error": error[:5000] or "failed",
                "requeue": requeue,
            },
        )
        return response.json()

    # --- generations ------------------------------------------------------------------------

    def create_generation(
        self,
        prompt: str,
        idempotency_key: str | None = None,
        *,
        backend: str = "remote",
        claim: bool = False,
        lease_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Queue a generation (a job for workers, or ``backend="builtin"`` for the server).

        The idempotency key (a fresh one unless given) is sent on every retry, so a lost answer
        never creates a second generation. With ``claim`` the new job is leased to this worker.
        """
        key = idempotency_key or str(uuid.uuid4())
        body: dict[str, Any] = {"prompt": prompt, "backend": backend, "claim": claim}
        if lease_seconds:
            body["lease_seconds"] = lease_seconds
        response, _ = self._request(
            "POST",
            "/api/v1/generations/",
            retry=True,
            ok=(200, 201),
            json_body=body,
            headers={"Idempotency-Key": key},
        )
        return response.json()

    def get_generation(self, generation_id: str) -> dict[str, Any]:
        response, _ = self._request("GET", f"/api/v1/generations/{generation_id}/", retry=True)
        return response.json()

    def list_generations(self, **filters: Any) -> dict[str, Any]:
        """One page: filters status, revision, backend, created_after, created_before, q, page,
        page_size. Returns {count, next, previous, results}."""
        response, _ = self._request("GET", "/api/v1/generations/", retry=True, params=filters)
        return response.json()

    def generate_video(
        self,
        prompt: str,
        render: Callable[[str, dict[str, Any], Path, Path], Mapping[str, Any] | None],
        workdir: str | Path,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """The seed's generate_video over HTTP, with your own renderer.

        Creates a generation leased to this worker, calls ``render(prompt, params, video_path,
        poster_path)`` (it may return a script dict), uploads the result and returns
        {generation_id, status, config_revision, output_path}. A render error fails the job.
        """
        job = Job.from_generation(self.create_generation(prompt, idempotency_key, claim=True))
        if not job.lease_id:
            raise ApiError(409, "lease_lost", f"generation {job.id} is not leased to this worker")
        video_path = Path(workdir) / f"{job.id}.mp4"
        poster_path = Path(workdir) / f"{job.id}.jpg"
        try:
            script = render(job.prompt, job.params, video_path, poster_path)
        except Exception as exc:
            self.fail_job(job, f"{type(exc).__name__}: {exc}")
            raise
        generation = self.complete_job(
            job,
            video_path,
            poster_path if poster_path.exists() else None,
            dict(script) if script else None,
        )
        return {
            "generation_id": generation["id"],
            "status": generation["status"],
            "config_revision": generation["revision"],
            "output_path": str(video_path),
        }

    def upload_metrics(
        self, generation_id: str, metrics: Mapping[str, float], version: int = 1
    ) -> dict[str, Any]:
        """Store the worker's own metrics (source=worker; the server's are never touched)."""
        response, _ = self._request(
            "POST",
            f"/api/v1/generations/{generation_id}/metrics/",
            retry=True,
            ok=(201,),
            json_body={"metrics": dict(metrics), "version": version},
        )
        return response.json()

    # --- feedback ---------------------------------------------------------------------------

    def record_human_feedback(
        self,
        generation_id: str,
        ratings: Mapping[str, int],
        comments: str = "",
        issues: list[Mapping[str, Any]] | None = None,
    ) -> str | None:
        """Record the signed-in reviewer's ratings; returns the review id.

        One review per reviewer and generation: if a retried call finds its own first attempt
        already recorded (409 already_reviewed on a retry), it returns None.
        """
        body: dict[str, Any] = {"ratings": dict(ratings), "comments": comments}
        if issues:
            body["issues"] = list(issues)
        try:
            response, _ = self._request(
                "POST",
                f"/api/v1/generations/{generation_id}/feedback/",
                retry=True,
                ok=(201,),
                json_body=body,
            )
        except ApiError as exc:
            if exc.code == "already_reviewed" and getattr(exc, "attempts", 1) > 1:
                return None
            raise
        return response.json()["review_id"]

    def get_feedback_summary(self) -> dict[str, Any]:
        response, _ = self._request("GET", "/api/v1/feedback/summary/", retry=True)
        return response.json()

    def get_improvements(self, limit: int = 100) -> list[dict[str, Any]]:
        """The improvement log, newest revision first (the seed's get_improvement_log)."""
        response, _ = self._request(
            "GET", "/api/v1/improvements/", retry=True, params={"limit": limit}
        )
        return response.json()

    get_improvement_log = get_improvements
