"""The 4D session cookie kept in the ERP database, so every task and run shares one licence.

The cookie is a credential. It is stored only encrypted, with Airflow's Fernet key
(``[core] fernet_key``). Without a usable key (none configured, a malformed one, or no Airflow
configuration at all) nothing is written to the database: the cookie stays in this process's
memory for the run, the log says so once, and each task process logs in to 4D on its own (more
licences used, never a credential in clear). A PostgreSQL advisory lock makes concurrent tasks
wait for one login instead of each opening a session.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import psycopg

from legacy_sync.fourd.auth import Cookie, MemorySessionStore

log = logging.getLogger(__name__)

_warned_no_key = False


def _fernet() -> tuple[Any | None, str]:
    """Airflow's Fernet cipher when it really encrypts, else ``(None, why not)``."""
    try:
        from airflow.models.crypto import get_fernet

        fernet = get_fernet()
    except Exception as exc:  # malformed key (AirflowException), or no Airflow configuration
        return None, f"Airflow's Fernet key is unusable ({type(exc).__name__})"
    if not getattr(fernet, "is_encrypted", False):  # Airflow's no-op cipher for an empty key
        return None, "Airflow has no Fernet key ([core] fernet_key is empty)"
    return fernet, ""


def _warn_once(reason: str) -> None:
    global _warned_no_key
    if not _warned_no_key:
        _warned_no_key = True
        log.warning(
            "%s: the 4D session cookie is kept in memory for this run only and never stored in the "
            "database, so each task logs in to 4D again (a client licence each until idle). Set "
            "AIRFLOW__CORE__FERNET_KEY to a key from "
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.',
            reason,
        )


class PostgresSessionStore:
    """Session cookie per 4D connection id in ``legacy_sync.fourd_session``, encrypted."""

    def __init__(self, conninfo: str, conn_id: str) -> None:
        self._conninfo = conninfo
        self._conn_id = conn_id
        fernet, reason = _fernet()
        self._fernet: Any = fernet
        self._memory: MemorySessionStore | None = None
        if self._fernet is None:
            _warn_once(reason)
            self._memory = MemorySessionStore()

    @property
    def encrypted(self) -> bool:
        """Whether the cookie is shared through the database (encrypted) or kept in memory."""
        return self._memory is None

    def load(self) -> Cookie | None:
        if self._memory is not None:
            return self._memory.load()
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            row = conn.execute(
                "update legacy_sync.fourd_session set last_used_at = now() where conn_id = %s"
                " returning cookie_name, cookie_value",
                (self._conn_id,),
            ).fetchone()
            if row is None:
                return None
            try:
                return row[0], self._fernet.decrypt(row[1].encode()).decode()
            except Exception:
                # Not readable with our key: written by an older version in clear, or under a key
                # since rotated away. Useless either way, and a clear one must not linger.
                conn.execute(
                    "delete from legacy_sync.fourd_session where conn_id = %s and cookie_value = %s",
                    (self._conn_id, row[1]),
                )
                log.warning("discarded a stored 4D session that this Fernet key cannot decrypt")
                return None

    def save(self, cookie: Cookie) -> None:
        if self._memory is not None:
            self._memory.save(cookie)
            return
        encrypted = self._fernet.encrypt(cookie[1].encode()).decode()
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(
                "insert into legacy_sync.fourd_session (conn_id, cookie_name, cookie_value)"
                " values (%s, %s, %s)"
                " on conflict (conn_id) do update set cookie_name = excluded.cookie_name,"
                " cookie_value = excluded.cookie_value, created_at = now(), last_used_at = now()",
                (self._conn_id, cookie[0], encrypted),
            )

    def discard(self, cookie: Cookie) -> None:
        if self._memory is not None:
            self._memory.discard(cookie)
            return
        if self.load() == cookie:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                conn.execute("delete from legacy_sync.fourd_session where conn_id = %s", (self._conn_id,))

    @contextlib.contextmanager
    def login_lock(self) -> Iterator[None]:
        if self._memory is not None:
            with self._memory.login_lock():
                yield
            return
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute("select pg_advisory_lock(hashtext(%s))", (f"legacy_4d_session:{self._conn_id}",))
            try:
                yield
            finally:
                conn.execute(
                    "select pg_advisory_unlock(hashtext(%s))", (f"legacy_4d_session:{self._conn_id}",)
                )
