"""The ERP database: connection settings from Airflow, and the tables the sync owns."""

from __future__ import annotations

import logging
import os
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from legacy_sync.registry import TABLES, LegacyTable

log = logging.getLogger(__name__)

ERP_CONN_ID = "erp_postgres_default"
MONITOR_CONN_ID = "erp_postgres_monitor"
"""The sync monitor's own connection: a SELECT-only role on ``legacy_sync.sync_log`` / ``sync_error``."""
MONITOR_ROLE_ENV = "LEGACY_SYNC_MONITOR_ROLE"
DEFAULT_MONITOR_ROLE = "legacy_sync_monitor"
MONITOR_TABLES = ("sync_log", "sync_error")


def conninfo_from_airflow(conn_id: str = ERP_CONN_ID, application_name: str = "legacy-erp-sync") -> str:
    """A libpq conninfo built from the Airflow connection (the only copy of the secret)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return psycopg.conninfo.make_conninfo(
        host=conn.host or "127.0.0.1",
        port=conn.port or 5432,
        user=conn.login or None,
        password=conn.password or None,
        dbname=conn.schema or "postgres",
        application_name=application_name,
    )


def dbt_env(conninfo: str) -> dict[str, str]:
    """Environment for dbt's profile (dbt_project/profiles.yml reads ERP_PG_*)."""
    params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(conninfo)
    return {
        "ERP_PG_HOST": str(params.get("host") or "127.0.0.1"),
        "ERP_PG_PORT": str(params.get("port") or 5432),
        "ERP_PG_USER": str(params.get("user") or "postgres"),
        "ERP_PG_PASSWORD": str(params.get("password") or ""),
        "ERP_PG_DBNAME": str(params.get("dbname") or "postgres"),
    }


def connect(conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(conninfo, **kwargs)


def raw_table_ddl(table: LegacyTable) -> sql.Composed:
    """The landing table of one legacy table: the 4D record as received, plus bookkeeping."""
    name = sql.Identifier("legacy_staging", table.raw_table)
    return sql.SQL(
        "create table if not exists {name} ("
        " run_id text not null, legacy_id text not null, payload jsonb not null,"
        " row_hash text not null, extracted_at timestamptz not null default now());"
        " create index if not exists {index} on {name} (run_id, legacy_id);"
    ).format(name=name, index=sql.Identifier(f"{table.raw_table}_run"))


def apply_schema(conn: psycopg.Connection[Any]) -> None:
    """Create (idempotently) every table the sync owns. Serialised across concurrent runs."""
    ddl = resources.files("legacy_sync").joinpath("sql/schema.sql").read_text()
    with conn.transaction():
        # Two DAG runs starting together must not race on CREATE ... IF NOT EXISTS.
        conn.execute("select pg_advisory_xact_lock(hashtext('legacy_sync.apply_schema'))")
        conn.execute(ddl)  # type: ignore[arg-type]  # our own trusted file
        for table in TABLES:
            conn.execute(raw_table_ddl(table))
        grant_monitor_access(conn, os.environ.get(MONITOR_ROLE_ENV) or DEFAULT_MONITOR_ROLE)


def grant_monitor_access(conn: psycopg.Connection[Any], role: str) -> bool:
    """Let the monitor's role read ``sync_log`` and ``sync_error`` (nothing else), if the role exists.

    The role is created before the tables are (docker/erp-db-init, or by an administrator), so the
    sync, which owns the tables, grants on every run what is missing. Returns whether it exists.
    """
    if conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is None:
        return False
    if conn.execute("select to_regclass('legacy_sync.sync_error') is null").fetchone() == (True,):
        return True  # no sync has run yet: the first run's apply_schema grants
    needs_usage = conn.execute(
        "select not has_schema_privilege(%s, 'legacy_sync', 'USAGE')", (role,)
    ).fetchone()
    if needs_usage and needs_usage[0]:
        conn.execute(sql.SQL("grant usage on schema legacy_sync to {}").format(sql.Identifier(role)))
    for table in MONITOR_TABLES:
        name = f"legacy_sync.{table}"
        granted = conn.execute("select has_table_privilege(%s, %s, 'SELECT')", (role, name)).fetchone()
        if not (granted and granted[0]):
            conn.execute(
                sql.SQL("grant select on {} to {}").format(
                    sql.Identifier("legacy_sync", table), sql.Identifier(role)
                )
            )
            log.info("granted SELECT on %s to the monitor's role %s", name, role)
    return True
