"""The PostgreSQL health check: an idle connection is trusted without a round trip, and one the
server closed is still found and replaced (against a real PostgreSQL)."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from tests.conftest import skip_or_fail
from tests.faults.conftest import database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        skip_or_fail("the health check is PostgreSQL's (set DATABASE_URL)")


def last_query_of(backend_pid: int, settings) -> str:
    with psycopg.connect(database_url(settings), autocommit=True) as other:
        row = other.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s", (backend_pid,)
        ).fetchone()
    return row[0] if row else ""


def test_an_idle_connection_is_usable_without_asking_the_server(settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement'")
    pid = connection.connection.info.backend_pid
    assert connection.is_usable()
    assert last_query_of(pid, settings) == "SELECT 'the last statement'"


def test_a_connection_the_server_closed_is_found_and_replaced(settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pid = connection.connection.info.backend_pid
    with psycopg.connect(database_url(settings), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)  # the server's goodbye reaches the socket
    assert not connection.is_usable()
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
    assert connection.connection.info.backend_pid != pid


def test_a_connection_inside_a_transaction_is_checked_by_the_server(settings):
    connection.set_autocommit(False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 'in a transaction'")
        pid = connection.connection.info.backend_pid
        assert connection.is_usable()
        assert last_query_of(pid, settings) == "SELECT 1"
    finally:
        connection.rollback()
        connection.set_autocommit(True)
