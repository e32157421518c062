"""The 4D session cookie kept in the ERP database, so every task and run shares one licence.

The cookie is a credential: it is stored encrypted with Airflow's Fernet key when one is
configured, never logged, and a PostgreSQL advisory lock makes concurrent tasks wait for
one login instead of each opening a session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from legacy_sync.fourd.auth import Cookie


def _fernet() -> Any:
    try:
        from airflow.models.crypto import get_fernet

        return get_fernet()
    except Exception:  # no Airflow config (CLI outside Airflow): store as is, in our own table
        return None


class PostgresSessionStore:
    """Session cookie per 4D connection id in ``legacy_sync.fourd_session``."""

    def __init__(self, conninfo: str, conn_id: str) -> None:
        self._conninfo = conninfo
        self._conn_id = conn_id
        self._fernet = _fernet()

    def _encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode() if self._fernet else value

    def _decrypt(self, value: str) -> str:
        return self._fernet.decrypt(value.encode()).decode() if self._fernet else value

    def load(self) -> Cookie | None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            row = conn.execute(
                "update legacy_sync.fourd_session set last_used_at = now() where conn_id = %s"
                " returning cookie_name, cookie_value",
                (self._conn_id,),
            ).fetchone()
        if row is None:
            return None
        try:
            return row[0], self._decrypt(row[1])
        except Exception:  # key rotated or unreadable: behave as if there were no session
            return None

    def save(self, cookie: Cookie) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(
                "insert into legacy_sync.fourd_session (conn_id, cookie_name, cookie_value)"
                " values (%s, %s, %s)"
                " on conflict (conn_id) do update set cookie_name = excluded.cookie_name,"
                " cookie_value = excluded.cookie_value, created_at = now(), last_used_at = now()",
                (self._conn_id, cookie[0], self._encrypt(cookie[1])),
            )

    def discard(self, cookie: Cookie) -> None:
        if self.load() == cookie:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                conn.execute("delete from legacy_sync.fourd_session where conn_id = %s", (self._conn_id,))

    @contextlib.contextmanager
    def login_lock(self) -> Iterator[None]:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute("select pg_advisory_lock(hashtext(%s))", (f"legacy_4d_session:{self._conn_id}",))
            try:
                yield
            finally:
                conn.execute(
                    "select pg_advisory_unlock(hashtext(%s))", (f"legacy_4d_session:{self._conn_id}",)
                )
