"""The steps of one sync run, free of Airflow: the DAG's tasks call these, so do the
reliability suite and the benchmark, so what they prove is what the DAG runs.

prepare → extract_table (per table) → transform → reconcile → summarize
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from legacy_sync import erp_db, landing, reporting
from legacy_sync import reconcile as reconciliation
from legacy_sync import transform as dbt_step
from legacy_sync.fourd import FourDClient
from legacy_sync.registry import get_table, select_tables

log = logging.getLogger(__name__)

ClientFactory = Callable[[], FourDClient]


def choose_mode(full: bool, full_refresh: bool = False, replay_errors: bool = False) -> str:
    if replay_errors:
        return "replay"
    return "full" if full or full_refresh else "incremental"


def prepare(conninfo: str, run_id: str, mode: str, tables: list[str] | None) -> list[dict[str, str]]:
    """Apply our schema, resolve the tables to sync, mark them RUNNING in sync_log."""
    selected = select_tables(tables)
    with erp_db.connect(conninfo, autocommit=True) as conn:
        erp_db.apply_schema(conn)
        for table in selected:
            reporting.start_table(conn, run_id, table.name, mode)
    return [{"table": t.name, "mode": mode} for t in selected]


def extract_failure_message(table: str, exc: BaseException) -> str:
    """Why a table could not be read, in words the operator can act on."""
    if isinstance(exc, httpx.TransportError):
        return (
            f"could not read {table} from 4D: {type(exc).__name__}: {exc or 'connection problem'}, "
            "even after "
            "retries. Check that the 4D server is up and reachable; if it drops large pages, lower the "
            "`page_size` of the legacy_4d_default connection."
        )
    if isinstance(exc, psycopg.Error):
        return f"could not land {table} in the ERP database: {type(exc).__name__}: {exc}".strip()
    return f"extract of {table} failed: {exc}"


def extract_table(
    conninfo: str, run_id: str, item: dict[str, str], client_factory: ClientFactory
) -> dict[str, Any]:
    """Page one table out of 4D (or replay its rejects) and land it; a failure is logged first."""
    table = get_table(item["table"])
    with erp_db.connect(conninfo, autocommit=True) as conn:
        reporting.start_table(conn, run_id, table.name, item["mode"])
        try:
            if item["mode"] == "replay":
                result = landing.land_replay(conn, table, run_id)
            else:
                with client_factory() as client:
                    state = landing.read_state(conn, table)
                    result = landing.land_table(client, conn, table, run_id, item["mode"], state)
        except Exception as exc:
            reporting.fail_table(
                conn, run_id, table.name, item["mode"], extract_failure_message(table.name, exc)
            )
            raise
    for warning in result.warnings:
        log.warning("%s: %s", table.name, warning)
    log.info(
        "%s: landed %d records (%s, %s) in %.1fs",
        table.name,
        result.records_landed,
        result.mode,
        result.strategy,
        result.seconds,
    )
    return result.as_dict()


def _landed_tables(conn: psycopg.Connection[Any], run_id: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "select b.table_name from legacy_sync.landing_batch b join legacy_sync.sync_log l"
            " using (run_id, table_name) where b.run_id = %s and l.status = 'RUNNING'",
            (run_id,),
        )
    ]


def transform(conninfo: str, run_id: str, target_name: str = "default") -> dict[str, str]:
    """dbt build over what landed; marks the tables dbt failed. Returns {table: reason}."""
    with erp_db.connect(conninfo, autocommit=True) as conn:
        landed = _landed_tables(conn, run_id)
        changes = conn.execute(
            "select coalesce(sum(records_landed + deleted_keys), 0),"
            " coalesce(bool_or(complete_key_set), false)"
            " from legacy_sync.landing_batch where run_id = %s",
            (run_id,),
        ).fetchone()
    if not landed:
        log.warning("no table landed in this run; skipping dbt")
        return {}
    if changes is not None and changes[0] == 0 and not changes[1]:
        # An hourly run over a quiet ERP: nothing to map, and erp is as the last run left it.
        log.info("4D reported no change since the last run; skipping dbt")
        return {}
    outcome = dbt_step.run_dbt_build(run_id, landed, erp_db.dbt_env(conninfo), target_name=target_name)
    with erp_db.connect(conninfo, autocommit=True) as conn:
        modes = dict(
            conn.execute("select table_name, mode from legacy_sync.sync_log where run_id = %s", (run_id,))
        )
        for table, reason in outcome.failed_tables.items():
            reporting.fail_table(conn, run_id, table, modes.get(table, "incremental"), reason)
    return outcome.failed_tables


def reconcile(conninfo: str, run_id: str, client_factory: ClientFactory) -> dict[str, str]:
    """Compare 4D with ``erp`` + open rejects for every merged table; returns {table: problem}."""
    with erp_db.connect(conninfo, autocommit=True) as conn:
        tables = _landed_tables(conn, run_id)
        if not tables:
            return {}
        with client_factory() as client:
            return reconciliation.reconcile_run(client, conn, run_id, [get_table(t) for t in tables])


def summarize(
    conninfo: str, run_id: str, items: list[dict[str, str]], transform_finished: bool
) -> list[reporting.TableSummary]:
    """Final sync_log/sync_error per table; watermarks of merged tables. Always runs."""
    with erp_db.connect(conninfo, autocommit=True) as conn:
        statuses = dict(
            conn.execute(
                "select l.table_name, case when l.status = 'RUNNING' and b.table_name is null"
                " then 'NOT_LANDED' else l.status end"
                " from legacy_sync.sync_log l"
                " left join legacy_sync.landing_batch b using (run_id, table_name)"
                " where l.run_id = %s",
                (run_id,),
            ).fetchall()
        )
        for item in items:
            name, status, mode = item["table"], statuses.get(item["table"]), item["mode"]
            if status == "RUNNING" and transform_finished:
                reporting.finish_table(conn, run_id, get_table(name))
            elif status == "RUNNING":
                reporting.fail_table(
                    conn, run_id, name, mode, "the dbt step did not finish; see the transform log"
                )
            elif status == "NOT_LANDED":
                reporting.fail_table(
                    conn, run_id, name, mode, "extraction did not finish; see the extract log"
                )
        summary = reporting.run_summary(conn, run_id)
    for row in summary:
        log.info(
            "%-16s %-20s processed=%d created=%d updated=%d unchanged=%d deleted=%d failed=%d %s",
            row.table,
            row.status,
            row.processed,
            row.created,
            row.updated,
            row.unchanged,
            row.deleted,
            row.failed,
            row.error_message or "",
        )
    return summary


def run_once(
    conninfo: str,
    run_id: str,
    client_factory: ClientFactory,
    mode: str = "incremental",
    tables: list[str] | None = None,
) -> list[reporting.TableSummary]:
    """One whole run in this process (reliability suite, benchmark): what the DAG does, in order.

    Like the DAG, a failed table does not stop the others, and the summary always runs.
    """
    items = prepare(conninfo, run_id, mode, tables)
    for item in items:
        try:
            extract_table(conninfo, run_id, item, client_factory)
        except Exception:
            log.exception("extract of %s failed", item["table"])
    finished = True
    try:
        transform(conninfo, run_id)
    except Exception:
        log.exception("transform failed")
        finished = False
    if finished:
        try:
            reconcile(conninfo, run_id, client_factory)
        except Exception:  # as in the DAG: an unreconciled run still gets its summary
            log.exception("reconcile failed")
    return summarize(conninfo, run_id, items, finished)
