"""The ERP database: connection settings from Airflow, and the tables the sync owns."""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from legacy_sync.registry import TABLES, LegacyTable

ERP_CONN_ID = "erp_postgres_default"


def conninfo_from_airflow(conn_id: str = ERP_CONN_ID) -> str:
    """A libpq conninfo built from the Airflow connection (the only copy of the secret)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return psycopg.conninfo.make_conninfo(
        host=conn.host or "127.0.0.1",
        port=conn.port or 5432,
        user=conn.login or None,
        password=conn.password or None,
        dbname=conn.schema or "postgres",
        application_name="legacy-erp-sync",
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
