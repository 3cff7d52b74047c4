"""Reviewer accounts the library records feedback under: one per named reviewer."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, transaction

from feedbackloop.errors import InvalidInput

LIBRARY_REVIEWER = "library"
REVIEWER_GROUP = "reviewer"


def reviewer_named(reviewer: Any) -> AbstractBaseUser:
    """The reviewer to record feedback under: a user as given, or the account with this
    username (created in the reviewer group, without a usable password, when missing), or the
    shared "library" account when no one is named."""
    if isinstance(reviewer, AbstractBaseUser):
        return reviewer
    name = LIBRARY_REVIEWER if reviewer is None else reviewer
    if not isinstance(name, str) or not name.strip() or len(name) > 150:
        raise InvalidInput("reviewer must be a user or a name of 1 to 150 characters")
    User = get_user_model()
    user = User.objects.filter(username=name.strip()).first()
    if user is not None:
        return user
    try:
        with transaction.atomic():
            user = User(username=name.strip(), is_active=name != LIBRARY_REVIEWER)
            user.set_unusable_password()
            user.save()
            group, _ = Group.objects.get_or_create(name=REVIEWER_GROUP)
            user.groups.add(group)
            return user
    except IntegrityError:
        return User.objects.get(username=name.strip())  # created concurrently
