"""FeedbackLoopClient: the site's REST API (``/api/v1/``) over HTTP, with retries.

Retries: connection errors, timeouts, 5xx and 429 are retried with exponential backoff
(honouring Retry-After) for calls that are safe to repeat: reads, the idempotent PUT of a
pipeline declaration, writes that carry an Idempotency-Key (made once per call and reused on
every retry) or a lease id (heartbeat, complete, fail), and claims (a job leased by a lost
answer returns to the queue when its lease runs out: delayed, never lost). A call that still
fails raises ApiError (ApiUnavailable when the site never answered).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from feedbackloop_client import __version__
from feedbackloop_client.errors import ApiError, ApiUnavailable

logger = logging.getLogger("feedbackloop_client")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
Timeout = float | tuple[float, float]


@dataclass
class Job:
    """A leased generation job. ``lease_id`` proves the lease: send it with every job call."""

    id: str
    prompt: str
    pipeline: str
    revision: int
    params: dict[str, Any]
    lease_id: str
    lease_expires_at: str = ""
    experiment_arm: str = ""
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_generation(cls, data: Mapping[str, Any]) -> Job:
        """A job from the API's generation body (the answer to a claim, or a claimed create)."""
        lease = data.get("lease") or {}
        return cls(
            id=str(data["id"]),
            prompt=data["prompt"],
            pipeline=data.get("pipeline") or "",
            revision=data["revision"],
            params=dict(data.get("params") or {}),
            lease_id=lease.get("lease_id") or "",
            lease_expires_at=lease.get("lease_expires_at") or "",
            experiment_arm=data.get("experiment_arm") or "",
            data=dict(data),
        )


def _segment(value: str) -> str:
    """One URL path segment: a slug or id, quoted so that it cannot reach another route."""
    return quote(str(value), safe="")


class FeedbackLoopClient:
    """One site. ``token`` is a worker token; ``username``/``password`` sign in a reviewer or
    admin through the site's login form (session + CSRF). Safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: Timeout = (5.0, 30.0),
        upload_timeout: Timeout = (5.0, 600.0),
        retries: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 20.0,
        login_path: str = "/accounts/login/",
        user_agent: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.login_path = login_path
        self.user_agent = user_agent or f"feedbackloop-client/{__version__}"
        self._cookies = requests.cookies.RequestsCookieJar()
        self._local = threading.local()  # one requests.Session per thread (lease keepers)
        self._configs: dict[str, tuple[str | None, dict[str, Any]]] = {}
        self._configs_lock = threading.Lock()
        self._direct_upload: bool | None = None  # does the site offer presigned uploads?
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
            session.headers["User-Agent"] = self.user_agent
            if self.token:
                session.headers["Authorization"] = f"Token {self.token}"
            self._local.session = session
        return session

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _sleep_before_retry(self, attempt: int, response: requests.Response | None) -> None:
        delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
        retry_after = response.headers.get("Retry-After", "") if response is not None else ""
        if retry_after.isdigit():
            delay = min(self.max_backoff_seconds, float(retry_after))
        time.sleep(delay * (0.8 + 0.4 * random.random()))

    def _request(
        self,
        method: str,
        path: str,
        *,
        retry: bool = True,
        ok: tuple[int, ...] = (200,),
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Callable[[], dict[str, Any]] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | None = None,
    ) -> requests.Response:
        """One API call, retried as the module docstring says; the answer if its status is
        in ``ok``, else ApiError (with ``attempts``)."""
        headers = dict(headers or {})
        if method not in ("GET", "HEAD", "OPTIONS") and self._cookies.get("csrftoken"):
            headers["X-CSRFToken"] = self._cookies["csrftoken"]
        attempts = self.retries + 1 if retry else 1
        for attempt in range(1, attempts + 1):
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
                if attempt >= attempts:
                    raise ApiUnavailable(f"{method} {path}: {exc}", attempts=attempt) from exc
                logger.warning("%s %s: %s; retrying", method, path, exc)
                self._sleep_before_retry(attempt - 1, None)
                continue
            finally:
                for value in (opened or {}).values():
                    handle = value[1] if isinstance(value, tuple) else value
                    if hasattr(handle, "close"):
                        handle.close()
            if response.status_code in ok:
                return response
            if response.status_code in RETRYABLE_STATUS and attempt < attempts:
                logger.warning("%s %s: HTTP %s; retrying", method, path, response.status_code)
                self._sleep_before_retry(attempt - 1, response)
                continue
            raise ApiError.from_response(response, attempts=attempt)
        raise AssertionError("unreachable")

    # --- sign-in for reviewers and admins ---------------------------------------------------

    def login(self, username: str, password: str) -> None:
        """Start a session as a reviewer or admin (the site's login form, with its CSRF token)."""
        login_url = self._url(self.login_path)
        try:
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
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ApiUnavailable(f"sign-in at {login_url}: {exc}") from exc
        if response.status_code != 302 or "sessionid" not in self._cookies:
            raise ApiError(401, "login_failed", f"could not sign in as {username!r}")

    # --- pipelines --------------------------------------------------------------------------

    def register_pipeline(
        self, slug: str, name: str, parameters: Mapping[str, Any], description: str = ""
    ) -> dict[str, Any]:
        """Declare a pipeline and its parameter space (a JSON Schema object with
        ``properties``); returns the pipeline with its schema version and active revision.

        Idempotent: the same declaration again changes nothing. A changed ``parameters`` makes
        a new schema version. Refusals are ApiError: 400 ``invalid_parameters`` (``details``
        names each key), 400 ``breaks_active_revision``, 403 ``pipeline_not_allowed``.
        """
        body = {"name": name, "description": description, "parameters": dict(parameters)}
        for attempt in range(2):
            try:
                response = self._request(
                    "PUT", f"/api/v1/pipelines/{_segment(slug)}/", ok=(200, 201), json_body=body
                )
            except ApiError as exc:
                # Two first registrations of one slug at once: the loser is told to retry,
                # and its retry is the idempotent case.
                if exc.status == 409 and exc.code == "conflict" and attempt == 0:
                    continue
                raise
            return response.json()
        raise AssertionError("unreachable")

    def pipeline(self, slug: str) -> dict[str, Any]:
        """One pipeline: slug, name, description, schema_version, parameters, active_revision."""
        return self._request("GET", f"/api/v1/pipelines/{_segment(slug)}/").json()

    def pipelines(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v1/pipelines/").json()

    def config(self, pipeline: str | None = None) -> dict[str, Any]:
        """The configuration a new generation of ``pipeline`` (default: the site's default
        pipeline) uses: {pipeline, revision, schema_version, params, experiment_arm, etag}.

        Sends the last ETag, so an unchanged configuration costs a bodiless 304.
        """
        key = pipeline or ""
        path = f"/api/v1/pipelines/{_segment(pipeline)}/config/" if pipeline else "/api/v1/config/"
        with self._configs_lock:
            etag, cached = self._configs.get(key, (None, None))
        headers = {"If-None-Match": etag} if etag and cached is not None else {}
        response = self._request("GET", path, ok=(200, 304), headers=headers)
        if response.status_code == 304 and cached is not None:
            return cached
        body = response.json()
        with self._configs_lock:
            self._configs[key] = (response.headers.get("ETag"), body)
        return body

    # --- jobs -------------------------------------------------------------------------------

    def claim(
        self, pipelines: Sequence[str] | None = None, lease_seconds: int | None = None
    ) -> Job | None:
        """Lease the oldest waiting job of ``pipelines`` (default: every pipeline the token
        may serve), or None when none waits. A pipeline the token may not serve is ApiError
        403."""
        body: dict[str, Any] = {}
        if pipelines is not None:
            if isinstance(pipelines, str):
                raise TypeError("pipelines is a list of slugs, not one string")
            body["pipelines"] = list(pipelines)
        if lease_seconds:
            body["lease_seconds"] = lease_seconds
        response = self._request("POST", "/api/v1/jobs/claim/", ok=(200, 204), json_body=body)
        if response.status_code == 204:
            return None
        return Job.from_generation(response.json())

    def heartbeat(
        self,
        job_id: str,
        lease_id: str,
        *,
        progress: float | None = None,
        lease_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Extend the lease from now and report ``progress`` (0 to 1); returns the job.

        ApiError 409 (``lease_lost`` / ``lease_expired``) or 404 means the job is gone.
        """
        body: dict[str, Any] = {"lease_id": lease_id}
        if progress is not None:
            body["progress"] = max(0.0, min(1.0, float(progress)))
        if lease_seconds:
            body["lease_seconds"] = lease_seconds
        return self._request(
            "POST", f"/api/v1/jobs/{_segment(job_id)}/heartbeat/", json_body=body
        ).json()

    def complete(
        self,
        job_id: str,
        lease_id: str,
        video_path: str | Path,
        poster_path: str | Path | None = None,
        script: Mapping[str, Any] | None = None,
        *,
        generation_seconds: float | None = None,
        cpu_seconds: float | None = None,
        peak_rss_bytes: int | None = None,
        direct: bool | None = None,
    ) -> dict[str, Any]:
        """Upload the video (and poster, script) and finish the job; returns the generation.

        Where the site keeps media in object storage, the files go straight to the bucket with
        the presigned URLs the API hands out (``upload-url/``), and the job completes with
        their keys: the bytes never pass through the web host. Elsewhere (local disk) they go
        to ``complete/`` as a multipart upload. ``direct=None`` picks whichever the site
        offers; ``True`` insists on the bucket; ``False`` always uploads to the site.

        The lease id makes a retry safe: if an earlier attempt got through, the retry's 409
        (``job_finished``) is resolved by reading the job back.
        """
        timings = {
            "generation_seconds": generation_seconds,
            "cpu_seconds": cpu_seconds,
            "peak_rss_bytes": peak_rss_bytes,
        }
        if direct or (direct is None and self._direct_upload is not False):
            try:
                targets = self.upload_urls(job_id, lease_id)
            except ApiError as exc:
                if direct or exc.code != "direct_upload_unavailable":
                    raise
                self._direct_upload = False  # local disk: ask no more
            else:
                self._direct_upload = True
                self._put(targets["video"]["url"], video_path, "video/mp4")
                body: dict[str, Any] = {"lease_id": lease_id, "video_key": targets["video"]["key"]}
                if poster_path is not None:
                    kind = (
                        "image/png" if str(poster_path).lower().endswith(".png") else "image/jpeg"
                    )
                    self._put(targets["poster"]["url"], poster_path, kind)
                    body["poster_key"] = targets["poster"]["key"]
                if script is not None:
                    body["script"] = dict(script)
                body.update({k: v for k, v in timings.items() if v is not None})
                return self._finish(job_id, json_body=body)
        data: dict[str, Any] = {"lease_id": lease_id}
        if script is not None:
            data["script"] = json.dumps(dict(script))
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
                kind = "image/png" if str(poster_path).lower().endswith(".png") else "image/jpeg"
                opened["poster"] = (Path(poster_path).name, poster, kind)
            return opened

        return self._finish(job_id, data=data, files=files)

    def _finish(self, job_id: str, **body: Any) -> dict[str, Any]:
        try:
            response = self._request(
                "POST",
                f"/api/v1/jobs/{_segment(job_id)}/complete/",
                timeout=self.upload_timeout,
                **body,
            )
        except ApiError as exc:
            if exc.code == "job_finished" and exc.attempts > 1:
                generation = self.generation(job_id)
                if generation["status"] == "succeeded":
                    return generation
            raise
        return response.json()

    def upload_urls(self, job_id: str, lease_id: str) -> dict[str, Any]:
        """Presigned PUT URLs and object keys for a leased job's video and poster (object
        storage only; on local disk an ApiError with code ``direct_upload_unavailable``)."""
        return self._request(
            "POST",
            f"/api/v1/jobs/{_segment(job_id)}/upload-url/",
            json_body={"lease_id": lease_id},
        ).json()

    def _put(self, url: str, path: str | Path, content_type: str) -> None:
        """PUT a file to a presigned URL: no credentials of the site go with it (the URL is
        its own authorisation), retried like any other call."""
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                with open(path, "rb") as handle:
                    response = requests.put(
                        url,
                        data=handle,
                        headers={"Content-Type": content_type},
                        timeout=self.upload_timeout,
                    )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= attempts:
                    raise ApiUnavailable(f"PUT to storage: {exc}", attempts=attempt) from exc
                self._sleep_before_retry(attempt - 1, None)
                continue
            if response.ok:
                return
            if response.status_code in RETRYABLE_STATUS and attempt < attempts:
                self._sleep_before_retry(attempt - 1, response)
                continue
            raise ApiError(
                response.status_code,
                "storage_upload_failed",
                f"PUT to storage: HTTP {response.status_code} {response.text[:200]}",
                attempts=attempt,
            )

    def fail(
        self, job_id: str, lease_id: str, error: str, *, requeue: bool = False
    ) -> dict[str, Any]:
        """Give the job up with ``error`` (or put it back in the queue with ``requeue``)."""
        body = {"lease_id": lease_id, "error": error[:5000] or "failed", "requeue": requeue}
        return self._request(
            "POST", f"/api/v1/jobs/{_segment(job_id)}/fail/", json_body=body
        ).json()

    # --- generations ------------------------------------------------------------------------

    def queue_generation(
        self,
        prompt: str,
        *,
        pipeline: str | None = None,
        backend: str = "remote",
        claim: bool = False,
        lease_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue a generation of ``pipeline`` (default: the site's default pipeline): a job for
        remote workers, or ``backend="builtin"`` for the server's own renderer.

        The idempotency key (a fresh one unless given) is sent on every retry, so a lost answer
        never makes a second generation. With ``claim`` the new job is leased to this worker.
        """
        key = idempotency_key or str(uuid.uuid4())
        body: dict[str, Any] = {"prompt": prompt, "backend": backend, "claim": claim}
        if pipeline:
            body["pipeline"] = pipeline
        if lease_seconds:
            body["lease_seconds"] = lease_seconds
        return self._request(
            "POST",
            "/api/v1/generations/",
            ok=(200, 201),
            json_body=body,
            headers={"Idempotency-Key": key},
        ).json()

    def generation(self, generation_id: str) -> dict[str, Any]:
        """One generation with its script and metrics ({"server": {…}, "worker": {…}})."""
        return self._request("GET", f"/api/v1/generations/{_segment(generation_id)}/").json()

    def generations(self, **filters: Any) -> dict[str, Any]:
        """One page: filters pipeline, status, revision, backend, created_after, created_before,
        q, page, page_size. Returns {count, next, previous, results}."""
        return self._request("GET", "/api/v1/generations/", params=filters).json()

    def upload_metrics(
        self, generation_id: str, metrics: Mapping[str, float], version: int = 1
    ) -> dict[str, Any]:
        """Store the worker's own metrics (source=worker; the server's are never touched).
        A new post replaces this generation's earlier worker metrics, so a retry is safe."""
        return self._request(
            "POST",
            f"/api/v1/generations/{_segment(generation_id)}/metrics/",
            ok=(201,),
            json_body={"metrics": dict(metrics), "version": version},
        ).json()

    def generate_video(
        self,
        prompt: str,
        render: Callable[[str, dict[str, Any], Path, Path], Mapping[str, Any] | None],
        workdir: str | Path,
        *,
        pipeline: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """The seed's generate_video over HTTP, with your own renderer.

        Queues a generation leased to this worker, calls ``render(prompt, params, video_path,
        poster_path)`` (it may return a script dict), uploads the result and returns
        {generation_id, status, config_revision, output_path}. A render error fails the job.
        """
        job = Job.from_generation(
            self.queue_generation(
                prompt, pipeline=pipeline, claim=True, idempotency_key=idempotency_key
            )
        )
        if not job.lease_id:
            raise ApiError(409, "lease_lost", f"generation {job.id} is not leased to this worker")
        video_path = Path(workdir) / f"{job.id}.mp4"
        poster_path = Path(workdir) / f"{job.id}.jpg"
        try:
            script = render(job.prompt, job.params, video_path, poster_path)
        except Exception as exc:
            self.fail(job.id, job.lease_id, f"{type(exc).__name__}: {exc}")
            raise
        generation = self.complete(
            job.id,
            job.lease_id,
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

    # --- feedback ---------------------------------------------------------------------------

    def record_human_feedback(
        self,
        generation_id: str,
        ratings: Mapping[str, int],
        comments: str = "",
        issues: Sequence[Mapping[str, Any]] | None = None,
    ) -> str | None:
        """Record the signed-in reviewer's ratings; returns the review id.

        One review per reviewer and generation: if a retried call finds its own first attempt
        already recorded (409 already_reviewed on a retry), it returns None.
        """
        body: dict[str, Any] = {"ratings": dict(ratings), "comments": comments}
        if issues:
            body["issues"] = [dict(issue) for issue in issues]
        try:
            response = self._request(
                "POST",
                f"/api/v1/generations/{_segment(generation_id)}/feedback/",
                ok=(201,),
                json_body=body,
            )
        except ApiError as exc:
            if exc.code == "already_reviewed" and exc.attempts > 1:
                return None
            raise
        return response.json()["review_id"]

    def get_feedback_summary(self) -> dict[str, Any]:
        return self._request("GET", "/api/v1/feedback/summary/").json()

    def get_improvement_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The improvement log, newest revision first (the seed's get_improvement_log)."""
        return self._request("GET", "/api/v1/improvements/", params={"limit": limit}).json()
