"""The two ERP database roles docker-compose creates (docker/erp-db-init), run against a real
PostgreSQL with psql as the postgres image's entrypoint runs them: the sync's read-write role and
the monitor's SELECT-only role, which the sync grants read access to the sync log."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from devtools.local_postgres import _embedded_install_dir
from legacy_sync import erp_db, ledger
from legacy_sync.monitor import queries

pytestmark = pytest.mark.integration

INIT_DIR = Path(__file__).resolve().parents[2] / "docker" / "erp-db-init"
SYNC_SCHEMAS = ("legacy_staging", "legacy_transform", "erp", "legacy_sync", "legacy_diff")


def _as(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{quote(role)}:{quote(password)}@{parts.hostname}:{parts.port}"))


def test_init_scripts_create_a_sync_role_and_a_select_only_monitor_role(
    pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.create_database("roles")
    parts = urlsplit(url)
    sync_role, monitor_role = f"ls_{uuid.uuid4().hex[:8]}", f"lsm_{uuid.uuid4().hex[:8]}"
    passwords = {sync_role: uuid.uuid4().hex, monitor_role: uuid.uuid4().hex}
    env = {
        **os.environ,
        "PATH": f"{_embedded_install_dir() / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGPASSWORD": parts.password or "",
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_DB": parts.path.lstrip("/"),
        "ERP_DB_USER": sync_role,
        "ERP_DB_PASSWORD": passwords[sync_role],
        "ERP_DB_MONITOR_USER": monitor_role,
        "ERP_DB_MONITOR_PASSWORD": passwords[monitor_role],
    }
    try:
        for script in sorted(INIT_DIR.glob("*.sh")):  # the order docker-entrypoint-initdb.d uses
            done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{script.name}: {done.stderr}"
        # The sync's first task, as the sync's role: creates the tables and grants the monitor its part.
        monkeypatch.setenv(erp_db.MONITOR_ROLE_ENV, monitor_role)
        with psycopg.connect(_as(url, sync_role, passwords[sync_role]), autocommit=True) as conn:
            ledger.apply_schema(conn)
            conn.execute(
                "insert into legacy_sync.fourd_session (conn_id, cookie_name, cookie_value)"
                " values ('legacy_4d_default', 'WASID4D', 'encrypted')"
            )
        monitor_url = _as(url, monitor_role, passwords[monitor_role])
        with queries.read_only(monitor_url) as conn:
            queries.check_select_only(conn)
            assert queries.list_logs(conn, queries.LogFilter()).total == 0
        with psycopg.connect(monitor_url, autocommit=True) as conn:
            assert conn.execute("show default_transaction_read_only").fetchone() == ("on",)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select cookie_value from legacy_sync.fourd_session")
        # The sync's own role would be refused as the monitor's: it can write.
        with (
            queries.read_only(_as(url, sync_role, passwords[sync_role])) as conn,
            pytest.raises(queries.MonitorRoleError, match="writes"),
        ):
            queries.check_select_only(conn)
    finally:
        pg_server.drop_database(url)
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            for role in (monitor_role, sync_role):
                conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


def test_the_suites_run_the_pipeline_as_the_sync_role_which_can_do_nothing_more(
    erp_db_url: str, erp_admin_url: str
) -> None:
    """``erp_db_url`` (what every integration test hands the pipeline) is the init script's role:
    enough for the sync's own schemas, no superuser and no rights beyond them."""
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        flags = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication, rolinherit"
            " from pg_roles where rolname = current_user"
        ).fetchone()
        assert flags == (False,) * 6, "the tests must not run the sync as an admin"
        owners = dict(
            conn.execute(
                "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname = any(%s)",
                (list(SYNC_SCHEMAS),),
            ).fetchall()
        )
        assert set(owners) == set(SYNC_SCHEMAS)
        assert set(owners.values()) == {conn.info.user}, "the init script gives it the five schemas"
        ledger.apply_schema(conn)  # what the sync's first task does: allowed
    with psycopg.connect(erp_admin_url, autocommit=True) as admin:
        admin.execute("create schema erp_app")
        admin.execute("create table erp_app.payroll (salary numeric)")
        admin.execute("create table public.other_app (x int)")
    refused = [
        "select * from erp_app.payroll",
        "create table erp_app.planted (x int)",
        "create table public.planted (x int)",
        "insert into public.other_app values (1)",
        "create role intruder",
        "create database intruder",
        "set role postgres",
        "select pg_read_file('postgresql.conf')",
        "alter role current_user superuser",
    ]
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
