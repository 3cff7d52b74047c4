"""Who did something: the person to record on a row, if any."""

from __future__ import annotations

from typing import Any


def person_or_none(user: Any) -> Any:
    """The signed-in user to record as the actor, or None (anonymous, worker tokens, tasks)."""
    from django.contrib.auth.models import AbstractBaseUser

    if isinstance(user, AbstractBaseUser) and user.is_authenticated:
        return user
    return None
