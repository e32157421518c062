"""The monitor's database side: its own SELECT-only role, timeouts, bounded pages, a CSV export that
holds no transaction while the client reads. Real PostgreSQL; the HTTP side is in
tests/e2e/monitor/test_monitor_access.py."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from legacy_sync import erp_db, ledger
from legacy_sync.monitor import app as monitor_app
from legacy_sync.monitor import queries

pytestmark = pytest.mark.integration

MONITOR_APP_NAME = "legacy-erp-sync-monitor"


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(role)}:{quote(password)}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def monitor_role(
    pg_server: Any, erp_db_url: str, erp_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A login role as docker/erp-db-init creates it; the sync's apply_schema grants it the rest."""
    role, password = f"lsm_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    dbname = urlsplit(erp_db_url).path.lstrip("/")
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create role {} login password {} nosuperuser nocreatedb nocreaterole noinherit").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("grant connect on database {} to {}").format(sql.Identifier(dbname), sql.Identifier(role))
        )
    monkeypatch.setenv(erp_db.MONITOR_ROLE_ENV, role)
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        ledger.apply_schema(conn)
    try:
        yield as_role(erp_db_url, role, password)
    finally:
        with psycopg.connect(erp_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def seed_rejects(url: str, count: int, payload_bytes: int = 300) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        ledger.apply_schema(conn)
        log_id = conn.execute(
            "insert into legacy_sync.sync_log (run_id, table_name, mode, status, records_failed)"
            " values ('manual__1', 'Customers', 'incremental', 'PARTIALLY_COMPLETED', %s) returning id",
            (count,),
        ).fetchone()[0]
        with conn.cursor().copy(
            "copy legacy_sync.sync_error (sync_log_id, record_id, error_message, record_data) from stdin"
        ) as copy:
            for k in range(count):
                record = {
                    "__KEY": str(k),
                    "EmailAddress": f"customer{k}@example.com",
                    "Notes": "x" * payload_bytes,
                }
                copy.write_row((log_id, str(k), "EmailAddress is not valid", Jsonb(record)))
    with queries.read_only(url) as conn:
        entry = queries.get_log(conn, log_id)
    assert entry is not None
    return entry


def test_the_monitor_role_reads_the_sync_log_and_nothing_else(erp_db_url: str, monitor_role: str) -> None:
    seed_rejects(erp_db_url, 3)
    with queries.read_only(monitor_role) as conn:
        queries.check_select_only(conn)  # accepted
        assert conn.execute("select count(*) as n from legacy_sync.sync_error").fetchone() == {"n": 3}
    with psycopg.connect(monitor_role, autocommit=True) as conn:
        for forbidden in (
            "select * from legacy_sync.fourd_session",
            "select * from legacy_sync.sync_state",
            "insert into legacy_sync.sync_log (run_id, table_name, mode) values ('x', 'y', 'full')",
            "delete from legacy_sync.sync_error",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)


def test_a_role_that_can_do_more_is_refused(erp_db_url: str, erp_admin_url: str, monitor_role: str) -> None:
    with queries.read_only(erp_admin_url) as conn, pytest.raises(queries.MonitorRoleError, match="admin"):
        queries.check_select_only(conn)  # a superuser
    with queries.read_only(erp_db_url) as conn, pytest.raises(queries.MonitorRoleError, match="writes"):
        queries.check_select_only(conn)  # the sync's own role
    role = urlsplit(monitor_role).username
    for grant, power in (
        ("grant select on legacy_sync.fourd_session to {}", "reads_session"),
        ("grant insert on legacy_sync.sync_log to {}", "writes"),
        ("grant create on schema legacy_sync to {}", "creates"),
    ):
        with psycopg.connect(erp_db_url, autocommit=True) as owner:  # the sync's role owns the tables
            owner.execute(sql.SQL(grant).format(sql.Identifier(role)))
        with queries.read_only(monitor_role) as conn, pytest.raises(queries.MonitorRoleError, match=power):
            queries.check_select_only(conn)
        with psycopg.connect(erp_db_url, autocommit=True) as owner:
            owner.execute(
                sql.SQL(grant.replace("grant", "revoke").replace(" to ", " from ")).format(
                    sql.Identifier(role)
                )
            )


def test_connecting_gives_up_after_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that accepts TCP connections but never answers (a hung host, a full backlog).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    monkeypatch.setattr(queries, "CONNECT_TIMEOUT_S", 2, raising=False)
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            with queries.read_only(f"host=127.0.0.1 port={port} dbname=erp user=monitor"):
                outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(15)
    listener.close()
    assert not worker.is_alive(), "the monitor waited for the database without a connect timeout"
    assert isinstance(outcome[0], psycopg.OperationalError)
    assert time.monotonic() - started < 10


def test_an_absurd_page_number_is_bounded_not_a_database_error(erp_db_url: str) -> None:
    seed_rejects(erp_db_url, 2)
    with queries.read_only(erp_db_url) as conn:
        page = queries.list_logs(conn, queries.LogFilter(page=10**20))
        assert page.rows == [] and page.page == queries.MAX_PAGE
        entry = queries.list_logs(conn, queries.LogFilter()).rows[0]
        assert queries.log_errors(conn, entry["id"], None, 10**20, 50).rows == []


def _monitor_sessions(url: str) -> list[tuple[str, str | None]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "select state, backend_xid::text from pg_stat_activity where application_name = %s",
            (MONITOR_APP_NAME,),
        ).fetchall()


def test_a_slow_csv_download_holds_no_transaction_open(
    erp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = seed_rejects(erp_db_url, 600)  # ~250 KB of CSV
    monkeypatch.setattr(queries, "CSV_BATCH", 100, raising=False)
    stream = monitor_app._csv_rows(erp_db_url, entry)
    assert next(stream).startswith("\ufefftable,".encode())
    chunk = next(stream)  # the client has a first part of the rows and is slow to ask for more
    assert b"customer" in chunk
    assert _monitor_sessions(erp_db_url) == [], "nothing of the export stays open between batches"
    rest = b"".join(stream)
    lines = (chunk + rest).decode().splitlines()
    assert len(lines) == 600 and len({line.split(",")[2] for line in lines}) == 600, "every record once"


def test_the_csv_without_raw_records_has_keys_and_reasons_only(erp_db_url: str) -> None:
    entry = seed_rejects(erp_db_url, 3)
    body = b"".join(monitor_app._csv_rows(erp_db_url, entry, include_raw=False)).decode()
    assert body.splitlines()[0] == "\ufefftable,run_id,record_id,reasons,rejected_at"
    assert "EmailAddress is not valid" in body and "example.com" not in body
