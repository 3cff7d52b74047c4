"""Worker tokens on the API: authentication, per-caller throttling, and tokens kept to /api/.

A request carrying ``Authorization: Token <key>`` (or ``Bearer <key>``) is the worker that owns
the key. The roles themselves (worker, reviewer, admin) are defined in feedbackloop.roles.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.throttling import SimpleRateThrottle

from feedbackloop.roles import WORKER, WorkerPrincipal

TOKEN_KEYWORDS = (b"token", b"bearer")


class WorkerTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer <key>``) → the worker that owns the key."""

    def authenticate(self, request: Any) -> tuple[WorkerPrincipal, Any] | None:
        from generation.selectors import worker_token_by_key
        from generation.services.tokens import worker_token_touch

        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in TOKEN_KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "malformed Authorization header; expected 'Token <key>'"
            )
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("the token contains invalid characters") from exc
        token = worker_token_by_key(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("unknown or revoked token")
        worker_token_touch(token=token)
        return WorkerPrincipal(token), token

    def authenticate_header(self, request: Any) -> str:
        return 'Token realm="api"'


class PerCallerThrottle(SimpleRateThrottle):
    """One request budget per worker token, per signed-in user, per IP for anonymous calls.

    Rates come from settings.API_THROTTLE_RATES (read per request, so they can change). On the
    Redis cache a caller's budget is a counter that starts with their first request and resets
    after the rate's period (one round trip a request, whatever the rate); on other caches it is
    DRF's sliding log of request times (a read and a write of the whole log a request).
    """

    _seconds_left: int | None = None

    def __init__(self) -> None:
        pass  # the rate depends on the caller, so it is chosen in allow_request

    def allow_request(self, request: Any, view: Any) -> bool:
        user = request.user
        if isinstance(user, WorkerPrincipal):
            scope, ident = WORKER, f"t{user.token.pk}"
        elif user is not None and user.is_authenticated:
            scope, ident = "user", f"u{user.pk}"
        else:
            scope, ident = "anon", self.get_ident(request)
        rate = settings.API_THROTTLE_RATES.get(scope)
        if not rate:
            return True
        self.scope = scope
        self.rate = rate
        self.num_requests, self.duration = self.parse_rate(rate)
        self.key = self.cache_format % {"scope": scope, "ident": ident}
        count_in_window = getattr(self.cache, "count_in_window", None)
        if count_in_window is not None:
            # Its own key: the sliding log under self.key is a list, this is a number.
            count, self._seconds_left = count_in_window(f"{self.key}:n", self.duration)
            return count <= self.num_requests
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()

    def wait(self) -> float | None:
        if self._seconds_left is not None:
            return max(self._seconds_left, 1)
        return super().wait()


class TokenOnlyForApiMiddleware:
    """A worker token opens /api/ only: the admin and the reviewer pages refuse it with 403."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.META.get("HTTP_AUTHORIZATION", "").split(maxsplit=1)
        if (
            header
            and header[0].lower().encode() in TOKEN_KEYWORDS
            and not request.path_info.startswith("/api/")
        ):
            return JsonResponse(
                {
                    "error": {
                        "code": "permission_denied",
                        "message": "API tokens are accepted under /api/ only",
                        "details": {},
                    }
                },
                status=403,
            )
        return self.get_response(request)
