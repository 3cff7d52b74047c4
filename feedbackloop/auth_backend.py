"""Signing in: Django's ModelBackend, with each signed-in user remembered in the cache.

Every request of a signed-in person loads their user row (``django.contrib.auth.get_user``) and
most API calls then ask their role (``roles.is_reviewer``). At hundreds of review submissions a
second the user SELECT was the largest single cost of a submission after the insert itself
(benchmarks/ratings_load.py's profile). ``CachedModelBackend.get_user`` reads the user and the
remembered role in one cache round trip and falls back to the database on a miss.

What keeps it right: a saved or deleted user is forgotten at once (signals in
feedbackloop.apps), so a password change, a deactivation or a new staff flag takes effect on the
next request; the session hash is still checked against the cached password hash. Only a change
that bypasses signals (``QuerySet.update``) can go unseen, for at most USER_CACHE_SECONDS.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend

from feedbackloop.roles import ROLE_CACHE_SECONDS, role_cache_key

USER_CACHE_SECONDS = ROLE_CACHE_SECONDS


def user_cache_key(user_id: Any) -> str:
    return f"auth:user:{user_id}"


class CachedModelBackend(ModelBackend):
    """ModelBackend whose ``get_user`` (every request of a signed-in person) uses the cache."""

    def get_user(self, user_id: Any) -> Any:
        from django.core.cache import cache

        user_key, role_key = user_cache_key(user_id), role_cache_key(user_id)
        found = cache.get_many([user_key, role_key])
        user = found.get(user_key)
        if user is None:
            user = super().get_user(user_id)
            if user is None:
                return None
            cache.set(user_key, user, USER_CACHE_SECONDS)
        elif not self.user_can_authenticate(user):
            return None
        if role_key in found:
            user._is_reviewer = found[role_key]
        return user


def forget_user(sender: Any, instance: Any = None, **kwargs: Any) -> None:
    """Signal receiver: a saved or deleted user is read from the database next time."""
    from django.core.cache import cache

    if instance is not None and instance.pk is not None:
        cache.delete(user_cache_key(instance.pk))
