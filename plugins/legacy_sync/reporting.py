"""``legacy_sync.sync_log`` / ``sync_error``: what each run did to each table, in the original's terms.

Status per table: ``COMPLETED`` when nothing failed, ``PARTIALLY_COMPLETED`` when some records
were rejected, ``FAILED`` when the table could not be synced (``error_message`` says why).
Counts come from the audit columns dbt maintains on every ``erp`` table, not from guesses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from legacy_sync.registry import LegacyTable

log = logging.getLogger(__name__)

REJECTS_RELATION = sql.Identifier("legacy_transform", "sync_rejects")


@dataclass(frozen=True)
class TableSummary:
    table: str
    status: str
    processed: int
    created: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    error_message: str | None


def start_table(conn: psycopg.Connection[Any], run_id: str, table: str, mode: str) -> None:
    """Mark a table RUNNING for this run (a retried task keeps the first start time)."""
    conn.execute(
        """
        insert into legacy_sync.sync_log (run_id, table_name, mode, status, start_time)
        values (%s, %s, %s, 'RUNNING', now())
        on conflict (run_id, table_name) do update
            set status = 'RUNNING', error_message = null, updated_at = now()
        """,
        (run_id, table, mode),
    )


def fail_table(conn: psycopg.Connection[Any], run_id: str, table: str, mode: str, message: str) -> None:
    """Record why a table could not be synced in this run; its watermark stays where it was."""
    conn.execute(
        """
        insert into legacy_sync.sync_log
            (run_id, table_name, mode, status, start_time, end_time, error_message)
        values (%s, %s, %s, 'FAILED', now(), now(), %s)
        on conflict (run_id, table_name) do update
            set status = 'FAILED', end_time = now(), updated_at = now(),
                error_message = excluded.error_message
        """,
        (run_id, table, mode, message[:4000]),
    )


def _counts(conn: psycopg.Connection[Any], run_id: str, table: LegacyTable) -> dict[str, int]:
    """Counts of one table in one run, from the erp audit columns and this run's rejects.

    ``unchanged`` are the live ERP records this run vouches for without touching them: in a
    full run, records read and found identical; in an incremental run, records 4D reports as
    not changed since the last watermark. ``processed`` = created + updated + unchanged + failed.
    """
    erp = sql.Identifier("erp", table.snake_name)
    row = conn.execute(
        sql.SQL(
            """
            with rejected as (
                select record_id from {rejects} where run_id = %(run)s and table_name = %(table)s
            )
            select
                count(*) filter (where created_run_id = %(run)s),
                count(*) filter (where updated_run_id = %(run)s and created_run_id <> %(run)s
                                 and deleted_run_id is distinct from %(run)s),
                count(*) filter (where not is_deleted and updated_run_id is distinct from %(run)s
                                 and legacy_id::text not in (select record_id from rejected)),
                count(*) filter (where deleted_run_id = %(run)s),
                (select count(*) from rejected)
            from {erp}
            """
        ).format(erp=erp, rejects=REJECTS_RELATION),
        {"run": run_id, "table": table.name},
    ).fetchone()
    assert row is not None
    created, updated, unchanged, deleted, failed = (int(v) for v in row)
    return {
        "processed": created + updated + unchanged + failed,
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "deleted": deleted,
        "failed": failed,
    }


def finish_table(conn: psycopg.Connection[Any], run_id: str, table: LegacyTable) -> TableSummary:
    """Write the final counts and the rejected records of one merged table; move its watermark.

    One transaction: the sync log, its errors and the watermark change together or not at all.
    """
    with conn.transaction():
        counts = _counts(conn, run_id, table)
        lost = conn.execute(
            "select records_missing, reconcile_message from legacy_sync.sync_log"
            " where run_id = %s and table_name = %s",
            (run_id, table.name),
        ).fetchone()
        lost_message = lost[1] if lost and lost[0] else None
        status = "FAILED" if lost_message else "PARTIALLY_COMPLETED" if counts["failed"] else "COMPLETED"
        batch = conn.execute(
            "select strategy, watermark_from, watermark_to from legacy_sync.landing_batch"
            " where run_id = %s and table_name = %s",
            (run_id, table.name),
        ).fetchone()
        strategy, wm_from, wm_to = batch if batch else (None, None, None)
        log_id = conn.execute(
            """
            update legacy_sync.sync_log set status = %(status)s, records_processed = %(processed)s,
                records_created = %(created)s, records_updated = %(updated)s,
                records_unchanged = %(unchanged)s, records_deleted = %(deleted)s,
                records_failed = %(failed)s, watermark_from = %(wm_from)s, watermark_to = %(wm_to)s,
                end_time = now(), updated_at = now(), error_message = %(error)s
            where run_id = %(run)s and table_name = %(table)s
            returning id
            """,
            {
                **counts,
                "status": status,
                "error": lost_message,
                "wm_from": wm_from,
                "wm_to": wm_to,
                "run": run_id,
                "table": table.name,
            },
        ).fetchone()
        assert log_id is not None, f"no sync_log row for {table.name} in run {run_id}"
        conn.execute("delete from legacy_sync.sync_error where sync_log_id = %s", (log_id[0],))
        conn.execute(
            sql.SQL(
                "insert into legacy_sync.sync_error (sync_log_id, record_id, error_message, record_data)"
                " select %s, record_id, error_message, record_data from {}"
                " where run_id = %s and table_name = %s"
                " order by record_id"
            ).format(REJECTS_RELATION),
            (log_id[0], run_id, table.name),
        )
        if strategy is not None and wm_to is not None and not lost_message:
            conn.execute(
                """
                insert into legacy_sync.sync_state (table_name, strategy, watermark, last_run_id)
                values (%s, %s, %s, %s)
                on conflict (table_name) do update set strategy = excluded.strategy,
                    watermark = excluded.watermark, last_run_id = excluded.last_run_id, updated_at = now()
                """,
                (table.name, strategy, wm_to, run_id),
            )
    return TableSummary(table.name, status, error_message=lost_message, **counts)


def run_summary(conn: psycopg.Connection[Any], run_id: str) -> list[TableSummary]:
    """The sync log rows of one run, in a stable order."""
    rows = conn.execute(
        """
        select table_name, status, records_processed, records_created, records_updated, records_unchanged,
               records_deleted, records_failed, error_message
        from legacy_sync.sync_log where run_id = %s order by id
        """,
        (run_id,),
    ).fetchall()
    return [TableSummary(*row) for row in rows]


def first_errors(conn: psycopg.Connection[Any], run_id: str, limit: int = 10) -> list[tuple[str, str, str]]:
    """(table, record id, reasons) of the first rejected records of a run."""
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            """
            select l.table_name, e.record_id, e.error_message
            from legacy_sync.sync_error e join legacy_sync.sync_log l on l.id = e.sync_log_id
            where l.run_id = %s order by l.id, e.id limit %s
            """,
            (run_id, limit),
        )
    ]
