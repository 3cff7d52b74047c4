"""Who is calling the API, and what their role lets them do.

Three roles: a *worker* (a request carrying a WorkerToken: ``Authorization: Token <key>`` or
``Bearer <key>``), a *reviewer* (a signed-in user in the reviewer group, or with the
reviews.add_review permission) and an *admin* (a signed-in staff user). Views name the roles
they allow; anyone else gets 403, and a request with no credentials 401.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

WORKER = "worker"
REVIEWER = "reviewer"
ADMIN = "admin"
TOKEN_KEYWORDS = (b"token", b"bearer")


class WorkerPrincipal:
    """``request.user`` for a worker-token request: signed in, but no Django user and no perms."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: Any) -> None:
        self.token = token
        self.username = f"worker:{token.name}"

    def __str__(self) -> str:
        return self.username

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, app_label: str) -> bool:
        return False


class WorkerTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer <key>``) → the worker that owns the key."""

    def authenticate(self, request: Any) -> tuple[WorkerPrincipal, Any] | None:
        from generation import selectors, services

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
        token = selectors.worker_token_by_key(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("unknown or revoked token")
        services.worker_token_touch(token=token)
        return WorkerPrincipal(token), token

    def authenticate_header(self, request: Any) -> str:
        return 'Token realm="api"'


def role_of(user: Any) -> str | None:
    if isinstance(user, WorkerPrincipal):
        return WORKER
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_staff:
        return ADMIN
    if user.has_perm("reviews.add_review") or user.groups.filter(name=REVIEWER).exists():
        return REVIEWER
    return None


def acting_user(request: Any) -> AbstractBaseUser | None:
    """The Django user behind a request (None for a worker token)."""
    user = request.user
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def acting_worker(request: Any) -> Any:
    """The WorkerToken behind a request (None for a person)."""
    user = request.user
    return user.token if isinstance(user, WorkerPrincipal) else None


class RolePermission(BasePermission):
    roles: frozenset[str] = frozenset()
    message = "your role may not do this"

    def has_permission(self, request: Any, view: Any) -> bool:
        role = role_of(request.user)
        if role is None or role not in self.roles:
            self.message = (
                f"this operation is for {' or '.join(sorted(self.roles))} callers; "
                f"you are {'a ' + role if role else 'signed in without a role'}"
            )
            return False
        return True


def allow(*roles: str) -> type[RolePermission]:
    """A permission class letting only the given roles through: ``allow(WORKER, ADMIN)``."""
    return type(
        f"Allow{''.join(r.title() for r in roles)}", (RolePermission,), {"roles": frozenset(roles)}
    )


class IsSignedInPerson(RolePermission):
    """The API default: a reviewer or an admin; a worker token only where a view allows it."""

    roles = frozenset({REVIEWER, ADMIN})


class PerCallerThrottle(SimpleRateThrottle):
    """One request budget per worker token, per signed-in user, per IP for anonymous calls.

    Rates come from settings.API_THROTTLE_RATES (read per request, so they can change).
    """

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
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()


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
