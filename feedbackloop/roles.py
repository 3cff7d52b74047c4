"""Who a caller is, for the API and the pages alike: a worker, a reviewer or an admin.

A *worker* is a request carrying a worker token (``request.user`` is a WorkerPrincipal); an
*admin* is an active staff user; a *reviewer* is an active user in the ``reviewer`` (or
``admin``) group or with the ``reviews.add_review`` permission. One definition, used by the API's
permission classes and the pages' decorators, so the two never disagree.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

WORKER = "worker"
REVIEWER = "reviewer"
ADMIN = "admin"
REVIEW_GROUPS = ("reviewer", "admin")


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


# How long a reviewer role is remembered in the cache; a change of groups or permissions clears it
# at once (signals in feedbackloop.apps), so this only bounds a missed change.
ROLE_CACHE_SECONDS = 30


def role_cache_key(user_id: Any) -> str:
    return f"role:reviewer:{user_id}"


def is_reviewer(user: Any) -> bool:
    """May this person review videos? Staff may. Remembered on the user object for the request
    and in the cache for ROLE_CACHE_SECONDS (every submission asks)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if isinstance(user, WorkerPrincipal):
        return False
    if user.is_staff:
        return True
    cached = getattr(user, "_is_reviewer", None)
    if cached is None:
        from django.core.cache import cache

        key = role_cache_key(user.pk)
        cached = cache.get(key)
        if cached is None:
            cached = user.groups.filter(name__in=REVIEW_GROUPS).exists() or user.has_perm(
                "reviews.add_review"
            )
            cache.set(key, cached, ROLE_CACHE_SECONDS)
        user._is_reviewer = cached
    return cached


def forget_role(sender: Any, instance: Any = None, **kwargs: Any) -> None:
    """Signal receiver: drop the remembered role of a user whose groups, permissions or account
    changed (for a change made from the group's side, of every user in ``pk_set``)."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache

    User = get_user_model()
    if isinstance(instance, User):
        cache.delete(role_cache_key(instance.pk))
    elif kwargs.get("pk_set"):
        cache.delete_many([role_cache_key(pk) for pk in kwargs["pk_set"]])


def role_of(user: Any) -> str | None:
    if isinstance(user, WorkerPrincipal):
        return WORKER
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_staff:
        return ADMIN
    return REVIEWER if is_reviewer(user) else None


def acting_user(request: Any) -> Any:
    """The Django user behind a request (None for a worker token or nobody)."""
    from feedbackloop.actors import person_or_none

    return person_or_none(request.user)


def acting_worker(request: Any) -> Any:
    """The worker token behind a request (None for a person)."""
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
