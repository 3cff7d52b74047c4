"""The errors the client raises: the API's JSON errors, typed."""

from __future__ import annotations

from typing import Any

import requests


class ApiError(Exception):
    """The API answered with an error.

    ``status`` is the HTTP status, ``code`` the machine-readable code (``lease_lost``,
    ``invalid_parameters``, …), ``message`` the human sentence and ``details`` the per-key
    problems the API sent (e.g. ``{"parameters.properties.steps.default": ["…"]}``).
    ``attempts`` is how many requests the call made before it gave up.
    """

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, attempts: int = 1
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.attempts = attempts

    @classmethod
    def from_response(cls, response: requests.Response, *, attempts: int = 1) -> ApiError:
        try:
            error = response.json()["error"]
            return cls(
                response.status_code,
                error["code"],
                error["message"],
                error.get("details"),
                attempts=attempts,
            )
        except (ValueError, KeyError, TypeError):
            text = response.text[:300].strip() or response.reason
            return cls(
                response.status_code, f"http_{response.status_code}", text, attempts=attempts
            )


class ApiUnavailable(ApiError):
    """No answer after every retry: the site is down or unreachable."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(0, "unavailable", message, attempts=attempts)


class LeaseLost(Exception):
    """The job's lease ran out or was taken over: stop working on it, someone else may have it."""

    def __init__(self, job_id: str, reason: str = "") -> None:
        super().__init__(f"job {job_id}: lease lost{': ' + reason if reason else ''}")
        self.job_id = job_id
        self.reason = reason
