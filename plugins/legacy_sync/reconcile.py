"""Reconciliation: does every 4D record of a merged table sit in ``erp`` or in the rejects?

- A run that read the whole table (complete key set): every key it landed must be a live ERP
  row or a reject of this run. Any other key was lost between staging and the ERP: the table
  is FAILED and its watermark stays, so the next run reads it again.
- An incremental run: 4D's ``__COUNT`` is compared with live ERP rows + open rejects. 4D keeps
  changing while we count, so a difference is reported (with the advice to run a full sync),
  not treated as a loss.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from legacy_sync.fourd import FourDClient
from legacy_sync.registry import LegacyTable

log = logging.getLogger(__name__)


def _erp(table: LegacyTable) -> sql.Identifier:
    return sql.Identifier("erp", table.snake_name)


def missing_keys(
    conn: psycopg.Connection[Any], run_id: str, table: LegacyTable, limit: int = 20
) -> tuple[int, list[str]]:
    """Keys landed in this run that are neither live in ``erp`` nor rejected in this run."""
    rows = conn.execute(
        sql.SQL(
            """
            select s.legacy_id, count(*) over ()
            from (select distinct legacy_id from {raw} where run_id = %(run)s) s
            where not exists (
                    select 1 from {erp} t where t.legacy_id::text = s.legacy_id and not t.is_deleted
                )
              and not exists (
                    select 1 from legacy_transform.sync_rejects r
                    where r.run_id = %(run)s and r.table_name = %(table)s and r.record_id = s.legacy_id
                )
            order by s.legacy_id limit %(limit)s
            """
        ).format(raw=sql.Identifier("legacy_staging", table.raw_table), erp=_erp(table)),
        {"run": run_id, "table": table.name, "limit": limit},
    ).fetchall()
    return (int(rows[0][1]) if rows else 0), [r[0] for r in rows]


def open_rejects(conn: psycopg.Connection[Any], table: LegacyTable) -> int:
    """Records whose latest rejection still stands (not live in ``erp``)."""
    row = conn.execute(
        sql.SQL(
            """
            select count(*) from (
                select distinct e.record_id from legacy_sync.sync_error e
                join legacy_sync.sync_log l on l.id = e.sync_log_id where l.table_name = %s
            ) r
            where not exists (
                select 1 from {erp} t where t.legacy_id::text = r.record_id and not t.is_deleted
            )
            """
        ).format(erp=_erp(table)),
        (table.name,),
    ).fetchone()
    return int(row[0]) if row else 0


def reconcile_table(
    client: FourDClient, conn: psycopg.Connection[Any], run_id: str, table: LegacyTable
) -> str | None:
    """Check one merged table; record the verdict in sync_log. Returns the problem, if any."""
    batch = conn.execute(
        "select complete_key_set from legacy_sync.landing_batch where run_id = %s and table_name = %s",
        (run_id, table.name),
    ).fetchone()
    source = client.page(table.name, attributes=(table.key,), top=1).count
    live = conn.execute(
        sql.SQL("select count(*) from {} where not is_deleted").format(_erp(table))
    ).fetchone()
    target = int(live[0]) if live else 0
    missing, examples = missing_keys(conn, run_id, table) if batch and batch[0] else (0, [])
    problem = None
    if missing:
        problem = (
            f"reconciliation: {missing} record(s) read from 4D are neither in erp.{table.snake_name} "
            "nor rejected "
            f"(e.g. {', '.join(examples[:10])}); the watermark stays so the next run reads them again"
        )
        message = problem
    else:
        rejected = open_rejects(conn, table)
        gap = (source or 0) - target - rejected
        message = f"4D {source}, erp {target}, open rejects {rejected}"
        if source is not None and gap:
            message += f": {gap:+d} unaccounted (4D changes while we count; a full sync settles it)"
    conn.execute(
        "update legacy_sync.sync_log set source_count = %s, records_missing = %s, reconcile_message = %s,"
        " updated_at = now() where run_id = %s and table_name = %s",
        (source, missing, message, run_id, table.name),
    )
    log.info("%s: %s", table.name, message)
    return problem


def reconcile_run(
    client: FourDClient, conn: psycopg.Connection[Any], run_id: str, tables: list[LegacyTable]
) -> dict[str, str]:
    """Reconcile every merged table of a run; {table: problem} for the ones that lost records."""
    problems = {}
    for table in tables:
        if conn.execute("select to_regclass(%s)", (f"erp.{table.snake_name}",)).fetchone()[0] is None:
            continue  # dbt never built it: the table already failed in transform
        problem = reconcile_table(client, conn, run_id, table)
        if problem:
            problems[table.name] = problem
    return problems
