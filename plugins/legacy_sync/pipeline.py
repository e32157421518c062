"""The steps of one sync run, free of Airflow: the DAG's tasks call these, so do the
reliability suite and the benchmark, so what they prove is what the DAG runs.

prepare → extract_table (per table) → transform → reconcile → summarize

What the sync knows about its runs lives in the ledger (``legacy_sync.ledger``); this module
only orders the steps. Transform, reconcile and summarize work on shared tables (the dbt working
tables, the merges into ``erp``), so each holds the ERP lock: runs of both DAGs and manual runs
take turns there, while their extracts (keyed by run) go on in parallel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from legacy_sync import dbt_build, drift, erp_db, landing, ledger, lineage, reconciliation
from legacy_sync.contracts import FOURD_CONN_ID, POOL
from legacy_sync.fourd import FourDClient, LicenceExhaustedError
from legacy_sync.fourd.errors import LoginRefusedError
from legacy_sync.ledger import HoldPolicy, Mode
from legacy_sync.registry import get_table, select_tables

log = logging.getLogger(__name__)

ClientFactory = Callable[[], FourDClient]
RunCheck = Callable[[str | None, str], bool]
"""``(dag_id, run_id) -> still running?``: asks the orchestrator about another run."""

STAGING_KEEP_DAYS = 7
"""Staged raw rows of runs summarized longer ago are dropped (rejects keep their raw record)."""


def choose_mode(
    full: bool, full_refresh: bool = False, replay_errors: bool = False, keys: list[str] | None = None
) -> Mode:
    if keys:
        return Mode.REPAIR
    if replay_errors:
        return Mode.REPLAY
    return Mode.FULL if full or full_refresh else Mode.INCREMENTAL


def hold_policy() -> HoldPolicy:
    """The circuit breaker's limits: ``LEGACY_SYNC_DELETE_HOLD_SHARE`` (default 0.05) and
    ``LEGACY_SYNC_DELETE_HOLD_MIN_ROWS`` (default 10)."""
    return HoldPolicy(
        share=float(os.environ.get("LEGACY_SYNC_DELETE_HOLD_SHARE") or 0.05),
        min_rows=int(os.environ.get("LEGACY_SYNC_DELETE_HOLD_MIN_ROWS") or 10),
    )


def only_this_run(dag_id: str | None, run_id: str) -> bool:
    """Without an orchestrator to ask (the CLI, the suites), runs go one after another: any
    other run still marked RUNNING was interrupted."""
    return False


def prepare(
    conninfo: str,
    run_id: str,
    mode: Mode | str,
    tables: list[str] | None,
    *,
    dag_id: str | None = None,
    keys: list[str] | None = None,
    is_running: RunCheck = only_this_run,
    client_factory: ClientFactory | None = None,
) -> list[dict[str, Any]]:
    """Apply our schema, close runs that ended without a summary, record this run and mark its
    tables RUNNING. Returns one work item per table for the extract tasks.

    With ``client_factory``, a run that reads 4D's changes first renews the shared 4D session, so
    it sees 4D's current structure (``drift.renew_session``)."""
    mode = Mode(mode)
    selected = select_tables(tables)
    if mode is Mode.REPAIR and len(selected) != 1:
        raise ValueError("a repair by key names exactly one table (`tables`) and its `keys`")
    with erp_db.connect(conninfo, autocommit=True) as conn:
        ledger.apply_schema(conn)
        ledger.close_interrupted(conn, run_id, is_running)
        ledger.begin_run(conn, run_id, mode, [t.name for t in selected], dag_id)
        if client_factory is not None and mode.moves_watermarks:
            drift.renew_session(conn, run_id, client_factory)
        removed = ledger.prune_landed(conn, STAGING_KEEP_DAYS)
        if removed:
            log.info("dropped %d staged rows of runs older than %d days", removed, STAGING_KEEP_DAYS)
    return [{"table": t.name, "mode": mode.value, **({"keys": keys} if keys else {})} for t in selected]


def airflow_advice(exc: BaseException, conn_id: str = FOURD_CONN_ID) -> str:
    """What to change in Airflow about a 4D error (the 4D client itself knows nothing of Airflow)."""
    if isinstance(exc, LicenceExhaustedError):
        return f" In Airflow: keep the `{POOL}` pool at or below the licences the sync may hold."
    if isinstance(exc, LoginRefusedError):
        return f" In Airflow: the login and password of the `{conn_id}` connection."
    return ""


def extract_failure_message(table: str, exc: BaseException) -> str:
    """Why a table could not be read, in words the operator can act on."""
    if isinstance(exc, httpx.TransportError):
        return (
            f"could not read {table} from 4D: {type(exc).__name__}: {exc or 'connection problem'}, "
            "even after retries. Check that the 4D server is up and reachable; if it drops large pages, "
            f"lower the `page_size` of the {FOURD_CONN_ID} connection."
        )
    if isinstance(exc, drift.DriftBlocked):
        return str(exc)
    if isinstance(exc, psycopg.Error):
        return f"could not land {table} in the ERP database: {type(exc).__name__}: {exc}".strip()
    return f"could not read {table} from 4D: {exc}{airflow_advice(exc)}"


def extract_table(
    conninfo: str, run_id: str, item: dict[str, Any], client_factory: ClientFactory
) -> dict[str, Any]:
    """Page one table out of 4D (or replay its rejects, or read given keys) and land it; a
    failure is recorded in the ledger before it is raised."""
    table = get_table(item["table"])
    mode = Mode(item["mode"])
    with erp_db.connect(conninfo, autocommit=True) as conn:
        ledger.start_table(conn, run_id, table.name, mode)
        try:
            if mode is Mode.REPLAY:
                batch = landing.land_replay(conn, table, run_id)
            else:
                with client_factory() as client:
                    if mode is Mode.REPAIR:
                        batch = landing.land_repair(client, conn, table, run_id, list(item["keys"]))
                    else:
                        catalog = drift.check_table(conn, run_id, table, client)
                        window = ledger.run_window(conn, run_id, lambda: landing.measure_window(client))
                        state = ledger.read_state(conn, table)
                        batch = landing.land_table(
                            client,
                            conn,
                            table,
                            run_id,
                            mode.value,
                            state,
                            window=window,
                            policy=hold_policy(),
                            catalog=catalog,
                        )
        except Exception as exc:
            ledger.fail_table(conn, run_id, table.name, extract_failure_message(table.name, exc))
            raise
    lineage.report_landing(conninfo, table.name, batch.records_landed)
    for warning in batch.warnings:
        log.warning("%s: %s", table.name, warning)
    log.info(
        "%s: landed %d records (%s, %s; %d read again by key) in %.1fs",
        table.name,
        batch.records_landed,
        batch.mode,
        batch.strategy,
        batch.records_retried,
        batch.seconds,
    )
    return batch.as_dict()


def transform(conninfo: str, run_id: str, target_name: str = "default") -> dict[str, str]:
    """dbt build over what landed, then this run's verdicts into the ledger, all under the ERP
    lock. Returns {table: reason} for the tables that failed."""
    with ledger.exclusive(conninfo, run_id, "transform"), erp_db.connect(conninfo, autocommit=True) as conn:
        if not ledger.landed_tables(conn, run_id):
            log.warning("no table landed in this run; skipping dbt")
            return {}
        landed = ledger.tables_to_merge(conn, run_id)
        if not landed:
            # An hourly run over a quiet ERP: nothing to map, and erp is as the last run left it.
            log.info("4D reported no change since the last run; skipping dbt")
            return {}
        ledger.set_transform_context(conn, run_id, hold_policy())
        outcome = dbt_build.run_dbt_build(
            run_id, landed, erp_db.dbt_env(conninfo), target_name=target_name, conninfo=conninfo
        )
        for name in landed:
            verdict = outcome.verdicts.get(name, dbt_build.TableVerdict())
            counts = ledger.record_transform(
                conn, run_id, get_table(name), verdict.failure, verdict.merged, outcome.warning_relations
            )
            if counts.deletes_held:
                log.error(
                    "%s: %d deletion(s) held by the mass-change circuit breaker; a person must approve them",
                    name,
                    counts.deletes_held,
                )
        merged = {name: outcome.verdicts.get(name, dbt_build.TableVerdict()).merged for name in landed}
        lineage.report_transform(conn, conninfo, run_id, merged)
    return outcome.failed_tables


def reconcile(conninfo: str, run_id: str, client_factory: ClientFactory) -> dict[str, str]:
    """Losses (database only) then 4D's counts for every merged table; {table: problem}."""
    with ledger.exclusive(conninfo, run_id, "reconcile"), erp_db.connect(conninfo, autocommit=True) as conn:
        tables = ledger.landed_tables(conn, run_id)
        if not tables:
            return {}
        problems = reconciliation.reconcile_run(conn, run_id, [get_table(t) for t in tables], client_factory)
        lineage.report_reconciliation(conn, conninfo, run_id)
    return problems


def summarize(
    conninfo: str, run_id: str, items: list[dict[str, Any]], transform_finished: bool
) -> list[ledger.TableSummary]:
    """Final sync_log per table, watermarks of the tables safely merged. Always runs."""
    with ledger.exclusive(conninfo, run_id, "summarize"), erp_db.connect(conninfo, autocommit=True) as conn:
        summary = ledger.finish_run(conn, run_id, [item["table"] for item in items], transform_finished)
    for row in summary:
        log.info(
            "%-16s %-20s processed=%d created=%d updated=%d unchanged=%d deleted=%d failed=%d"
            " open_rejects=%d warned=%d deletes_held=%d %s",
            row.table,
            row.status,
            row.processed,
            row.created,
            row.updated,
            row.unchanged,
            row.deleted,
            row.failed,
            row.open_rejects,
            row.warned,
            row.deletes_held,
            row.error_message or "",
        )
    return summary


def decide_held_deletes(
    conninfo: str, run_id: str, tables: list[str] | None, *, approve: bool, decided_by: str
) -> dict[str, int]:
    """Apply or discard the deletions the circuit breaker held (under the ERP lock)."""
    with (
        ledger.exclusive(conninfo, run_id, "held deletes"),
        erp_db.connect(conninfo, autocommit=True) as conn,
    ):
        applied = ledger.decide_held_deletes(conn, run_id, tables, approve=approve, decided_by=decided_by)
    log.info("held deletions %s by %s: %s", "applied" if approve else "discarded", decided_by, applied)
    return applied


def run_once(
    conninfo: str,
    run_id: str,
    client_factory: ClientFactory,
    mode: Mode | str = Mode.INCREMENTAL,
    tables: list[str] | None = None,
    *,
    keys: list[str] | None = None,
) -> list[ledger.TableSummary]:
    """One whole run in this process (the suites, the benchmark): what the DAG does, in order.

    Like the DAG, a failed table does not stop the others, and the summary (then the run's
    digest) always runs.
    """
    items = prepare(
        conninfo, run_id, Mode.REPAIR if keys else mode, tables, keys=keys, client_factory=client_factory
    )
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
        reconcile(conninfo, run_id, client_factory)
    summary = summarize(conninfo, run_id, items, finished)
    try:
        from legacy_sync import digest  # its notifiers load Airflow: only when a digest goes out

        digest.send(conninfo, run_id, None)
    except Exception:
        log.exception("could not send the run's digest")
    return summary
