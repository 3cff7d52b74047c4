"""Django's PostgreSQL backend with a health check that needs no round trip when none is due.

With CONN_HEALTH_CHECKS, Django sends ``SELECT 1`` before the first query of every request that
reuses a persistent connection, so that a connection the server closed (a restart, an idle
timeout, pg_terminate_backend) is replaced instead of failing the request. On the review
submission that is one of two round trips to PostgreSQL (benchmarks/ratings_load.py).

A server that closes a connection sends its goodbye (a FATAL message, then end of file) on the
socket, so an idle connection whose socket has nothing to read was not closed by the server:
it is usable without asking. When the socket is readable (the goodbye, or a notice), the check
is Django's own ``SELECT 1``. A connection lost silently (a cable, a firewall) is found by
neither check before the query; the request fails and Django closes the connection after it,
as without health checks.

ENGINE ``feedbackloop.postgresql`` in settings.DATABASES (chosen for every PostgreSQL URL).
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.info.transaction_status == pq.TransactionStatus.IDLE:
            try:
                readable, _, _ = select.select([connection.fileno()], [], [], 0)
            except (OSError, ValueError):
                return False
            if not readable:
                return True
        return super().is_usable()
