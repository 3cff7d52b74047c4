"""The reviewer role is remembered between requests, and forgotten the moment it changes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

from feedbackloop.roles import is_reviewer
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def fresh(user):
    return type(user).objects.get(pk=user.pk)  # a new request's user object


def test_a_reviewer_removed_from_the_group_loses_the_role_at_once():
    group = Group.objects.create(name="reviewer")
    user = UserFactory(username="rae")
    user.groups.add(group)
    assert is_reviewer(fresh(user))
    user.groups.remove(group)
    assert not is_reviewer(fresh(user))


def test_a_role_given_from_the_groups_side_applies_at_once():
    group = Group.objects.create(name="reviewer")
    user = UserFactory(username="ray")
    assert not is_reviewer(fresh(user))
    group.user_set.add(user)
    assert is_reviewer(fresh(user))


def test_the_review_permission_given_or_taken_applies_at_once():
    user = UserFactory(username="rex")
    perm = Permission.objects.get(codename="add_review")
    assert not is_reviewer(fresh(user))
    user.user_permissions.add(perm)
    assert is_reviewer(fresh(user))
    user.user_permissions.remove(perm)
    assert not is_reviewer(fresh(user))


def test_a_deactivated_account_is_no_reviewer(django_assert_num_queries):
    group = Group.objects.create(name="reviewer")
    user = UserFactory(username="roy")
    user.groups.add(group)
    assert is_reviewer(fresh(user))
    with django_assert_num_queries(1):  # the user row only: the role is remembered
        assert is_reviewer(fresh(user))
    user.is_active = False
    user.save()
    assert not is_reviewer(fresh(user))
