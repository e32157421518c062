"""The ERP database: connection settings from Airflow, for the sync, dbt and the monitor."""

from __future__ import annotations

from typing import Any

import psycopg

from legacy_sync.contracts import ERP_CONN_ID

MONITOR_ROLE_ENV = "LEGACY_SYNC_MONITOR_ROLE"
DEFAULT_MONITOR_ROLE = "legacy_sync_monitor"
MONITOR_TABLES = (
    "sync_log",
    "sync_error",
    "sync_warning",
    "held_delete",
    # the Cutover page (issue 18)
    "schema_drift",
    "coverage_report",
    "diff_run",
    "diff_table",
    "diff_key",
    "freshness_alert",
)


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
