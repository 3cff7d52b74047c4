"""The signed-in user comes from the cache, and every change to the account still counts at once:
deactivation, a new password, deletion, a new role."""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from feedbackloop.auth_backend import user_cache_key

pytestmark = pytest.mark.usefixtures("builtin_pipeline")

FEEDBACK_SUMMARY = "/api/v1/feedback/summary/"


def reviewer(username: str = "rita"):
    user = get_user_model().objects.create_user(username=username, password="a long password")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password="a long password")
    return client


def user_selects(captured) -> int:
    table = connection.ops.quote_name(get_user_model()._meta.db_table)
    return sum(1 for q in captured.captured_queries if f"FROM {table}" in q["sql"])


def test_a_signed_in_user_is_read_from_the_database_once_then_from_the_cache():
    client = signed_in(reviewer())
    assert client.get(FEEDBACK_SUMMARY).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert client.get(FEEDBACK_SUMMARY).status_code == 200
    assert user_selects(captured) == 0


def deactivate(user) -> None:
    user.is_active = False


def new_password(user) -> None:
    user.set_password("another long password")


@pytest.mark.parametrize("change", [deactivate, new_password])
def test_an_account_change_ends_its_sessions_on_their_next_request(change):
    user = reviewer()
    client = signed_in(user)
    assert client.get(FEEDBACK_SUMMARY).status_code == 200
    change(user)
    user.save()
    assert client.get(FEEDBACK_SUMMARY).status_code in (401, 403)


def test_a_deleted_user_is_forgotten():
    user = reviewer()
    client = signed_in(user)
    assert client.get(FEEDBACK_SUMMARY).status_code == 200
    key = user_cache_key(user.pk)
    assert cache.get(key) is not None
    user.delete()
    assert cache.get(key) is None
    assert client.get(FEEDBACK_SUMMARY).status_code in (401, 403)


def test_a_reviewer_taken_out_of_the_group_loses_the_role_at_once():
    user = reviewer()
    client = signed_in(user)
    generation_url = "/api/v1/generations/00000000-0000-0000-0000-000000000000/feedback/"
    body = {"ratings": {"visual_quality": 4}}
    assert client.post(generation_url, body, content_type="application/json").status_code == 404
    user.groups.clear()
    response = client.post(generation_url, body, content_type="application/json")
    assert response.status_code == 403


def test_a_session_made_by_the_plain_model_backend_stays_signed_in():
    user = reviewer()
    client = signed_in(user)
    session = client.session
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session.save()
    assert client.get(FEEDBACK_SUMMARY).status_code == 200
