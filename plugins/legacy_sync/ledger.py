"""The sync's ledger: sole owner of ``legacy_sync`` -- what each run did to each table.

Every write to ``sync_run``, ``sync_log``, ``sync_error``, ``sync_warning``, ``open_reject``,
``held_delete``, ``landing_batch``, ``sync_state`` and ``transform_context`` goes through this
module; the pipeline's steps call it and hold no SQL of their own about the sync's state. The
rules (what a status means, how counts split, how a watermark may move) are pure functions at the
top, unit-tested without a database.

Counts mean one thing each: ``records_processed`` = records read from 4D in this run (the window
plus records read again by key) plus deletions applied; they split into created / updated /
unchanged / deleted / failed (rejected in this run). ``records_open_rejects`` = records of the
table still missing from ``erp`` because of earlier rejects (not read again in this run);
``records_warned`` = records loaded with a warning; ``records_deletes_held`` = deletions waiting
for a person. ``COMPLETED`` means nothing of the table is missing from ``erp``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from legacy_sync import erp_db
from legacy_sync.registry import TABLES, LegacyTable, Strategy, get_table

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


class Mode(StrEnum):
    """What a run reads."""

    INCREMENTAL = "incremental"
    """What changed since each table's watermark (plus records waiting for a parent)."""
    FULL = "full"
    """Every record; deletions found by comparing key sets."""
    REPLAY = "replay"
    """Records rejected earlier, mapped again from their stored raw data (after a mapping fix)."""
    REPAIR = "repair"
    """Exactly the records given by key, read again from 4D; watermarks untouched."""

    @property
    def moves_watermarks(self) -> bool:
        return self in (Mode.INCREMENTAL, Mode.FULL)


class Status(StrEnum):
    """A table's outcome in one run (the contract's values)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    PARTIALLY_COMPLETED = "PARTIALLY_COMPLETED"
    FAILED = "FAILED"


INTERRUPTED = "interrupted: the run ended without a summary (killed, or its tasks were cleared)"


# -- the rules, pure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """One table's figures in one run."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    open_rejects: int = 0
    warned: int = 0
    deletes_held: int = 0

    @property
    def processed(self) -> int:
        """Records read from 4D in this run plus deletions applied."""
        return self.created + self.updated + self.unchanged + self.deleted + self.failed

    @property
    def missing(self) -> int:
        """Records of the table not (or not in their newest version) in ``erp``."""
        return self.failed + self.open_rejects


def split_counts(
    *,
    staged: int,
    rejected: int,
    created: int,
    updated: int,
    deleted: int,
    open_rejects: int = 0,
    warned: int = 0,
    deletes_held: int = 0,
) -> Counts:
    """Counts from what dbt staged and what the erp audit columns say this run wrote.

    ``staged`` are the distinct records read (each is created, updated, unchanged or rejected);
    a staged record the ERP already held in this or a newer version is unchanged.
    """
    if min(staged, rejected, created, updated, deleted, open_rejects, warned, deletes_held) < 0:
        raise ValueError("counts cannot be negative")
    unchanged = staged - rejected - created - updated
    if unchanged < 0:
        raise ValueError(
            f"inconsistent counts: {created} created + {updated} updated + {rejected} rejected "
            f"> {staged} staged"
        )
    return Counts(created, updated, unchanged, deleted, rejected, open_rejects, warned, deletes_held)


def table_status(counts: Counts | None, failure: str | None) -> Status:
    """FAILED when the table could not be synced or lost data (``failure`` says why); else
    PARTIALLY_COMPLETED while anything of it is missing from ``erp`` or deletions wait for a
    person; else COMPLETED. Warnings never lower a status."""
    if failure or counts is None:
        return Status.FAILED
    if counts.missing or counts.deletes_held:
        return Status.PARTIALLY_COMPLETED
    return Status.COMPLETED


def next_watermark(
    strategy: str, current: str | None, candidate: str | None, today: dt.date | None
) -> str | None:
    """Where a table's watermark may move after a run that merged it.

    Never backwards (two runs that overlapped may finish out of order), and a date never past
    4D's ``today``: a ModifiedDate in the future (a typo, a client clock) must not freeze the
    table, since incremental runs read from the watermark on.
    """
    if candidate is None:
        return current
    if strategy == Strategy.MODIFIED_DATE:
        value = dt.date.fromisoformat(candidate)
        if today is not None:
            value = min(value, today)
        if current is not None:
            with contextlib.suppress(ValueError):
                value = max(value, min(dt.date.fromisoformat(current), today or dt.date.max))
        return value.isoformat()
    if strategy == Strategy.GLOBAL_STAMP and current is not None:
        with contextlib.suppress(ValueError):
            return str(max(int(candidate), int(current)))
    return candidate


def shorten(message: str, limit: int = 4000) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


# -- schema and runs ------------------------------------------------------------------------------


def raw_table_ddl(table: LegacyTable) -> sql.Composed:
    """The landing table of one legacy table: the 4D record as received, plus bookkeeping."""
    name = sql.Identifier("legacy_staging", table.raw_table)
    return sql.SQL(
        "create table if not exists {name} ("
        " run_id text not null, legacy_id text not null, payload jsonb not null,"
        " row_hash text not null, extracted_at timestamptz not null default now());"
        " create index if not exists {index} on {name} (run_id, legacy_id);"
    ).format(name=name, index=sql.Identifier(f"{table.raw_table}_run"))


def apply_schema(conn: Conn) -> None:
    """Create (idempotently) every table the sync owns. Serialised across concurrent runs."""
    ddl = resources.files("legacy_sync").joinpath("sql/schema.sql").read_text()
    with conn.transaction():
        # Two DAG runs starting together must not race on CREATE ... IF NOT EXISTS.
        conn.execute("select pg_advisory_xact_lock(hashtext('legacy_sync.apply_schema'))")
        conn.execute(ddl)  # type: ignore[arg-type]  # our own trusted file
        for table in TABLES:
            conn.execute(raw_table_ddl(table))
        grant_monitor_access(conn, os.environ.get(erp_db.MONITOR_ROLE_ENV) or erp_db.DEFAULT_MONITOR_ROLE)


def grant_monitor_access(conn: Conn, role: str) -> bool:
    """Let the monitor's role read the ledger tables it shows (nothing else), if the role exists.

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
    for table in erp_db.MONITOR_TABLES:
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


def begin_run(conn: Conn, run_id: str, mode: Mode, tables: Iterable[str], dag_id: str | None) -> None:
    """Record the run and mark its tables RUNNING (a retried first task changes nothing)."""
    with conn.transaction():
        conn.execute(
            "insert into legacy_sync.sync_run (run_id, dag_id, mode) values (%s, %s, %s)"
            " on conflict (run_id) do nothing",
            (run_id, dag_id, mode.value),
        )
        for table in tables:
            conn.execute(
                "insert into legacy_sync.sync_log (run_id, table_name, mode, status, start_time)"
                " values (%s, %s, %s, 'RUNNING', now()) on conflict (run_id, table_name) do nothing",
                (run_id, table, mode.value),
            )


def close_interrupted(conn: Conn, run_id: str, is_running: Callable[[str | None, str], bool]) -> list[str]:
    """Mark as FAILED the RUNNING tables of runs that are no longer running; returns those runs.

    ``is_running(dag_id, run_id)`` asks the orchestrator (Airflow's API for the DAG's tasks).
    """
    rows = conn.execute(
        "select distinct l.run_id, r.dag_id from legacy_sync.sync_log l"
        " left join legacy_sync.sync_run r using (run_id)"
        " where l.status in ('RUNNING', 'PENDING') and l.run_id <> %s",
        (run_id,),
    ).fetchall()
    closed = [other for other, dag_id in rows if not is_running(dag_id, other)]
    for other in closed:
        conn.execute(
            "update legacy_sync.sync_log set status = 'FAILED', error_message = %s, end_time = now(),"
            " updated_at = now() where run_id = %s and status in ('RUNNING', 'PENDING')",
            (INTERRUPTED, other),
        )
        conn.execute(
            "update legacy_sync.sync_run set summarized_at = coalesce(summarized_at, now())"
            " where run_id = %s",
            (other,),
        )
        log.warning("closed the sync log of run %s: %s", other, INTERRUPTED)
    return closed


def run_mode(conn: Conn, run_id: str) -> Mode:
    row = conn.execute("select mode from legacy_sync.sync_run where run_id = %s", (run_id,)).fetchone()
    return Mode(row[0]) if row else Mode.INCREMENTAL


@dataclass(frozen=True)
class RunWindow:
    """The change window every table of a run reads: taken once, by the first table that asks."""

    stamp: int | None
    today: dt.date | None


def run_window(conn: Conn, run_id: str, measure: Callable[[], RunWindow]) -> RunWindow:
    """The run's window; ``measure`` asks 4D only when no table of this run has asked before."""
    row = conn.execute(
        "select window_stamp, window_date, window_stamp is not null or window_date is not null"
        " from legacy_sync.sync_run where run_id = %s",
        (run_id,),
    ).fetchone()
    if row and row[2]:
        return RunWindow(row[0], row[1])
    measured = measure()
    # Concurrent extract tasks may both measure; the first write wins and everyone reads it back.
    conn.execute(
        "update legacy_sync.sync_run set window_stamp = %s, window_date = %s"
        " where run_id = %s and window_stamp is null and window_date is null",
        (measured.stamp, measured.today, run_id),
    )
    row = conn.execute(
        "select window_stamp, window_date from legacy_sync.sync_run where run_id = %s", (run_id,)
    ).fetchone()
    return RunWindow(row[0], row[1]) if row else measured


def is_summarized(conn: Conn, run_id: str) -> bool:
    row = conn.execute(
        "select summarized_at is not null from legacy_sync.sync_run where run_id = %s", (run_id,)
    ).fetchone()
    return bool(row and row[0])


def start_table(conn: Conn, run_id: str, table: str, mode: Mode) -> bool:
    """Mark a table RUNNING for an extract try; False (and no change) once the run is summarized,
    so a task cleared after its run ended never leaves a row RUNNING."""
    if is_summarized(conn, run_id):
        log.warning(
            "run %s already has its summary: %s is landed again without re-opening its sync log;"
            " clear `summarize` too (or trigger a new run) to record it",
            run_id,
            table,
        )
        return False
    conn.execute(
        """
        insert into legacy_sync.sync_log (run_id, table_name, mode, status, start_time)
        values (%s, %s, %s, 'RUNNING', now())
        on conflict (run_id, table_name) do update
            set status = 'RUNNING', error_message = null, updated_at = now()
        """,
        (run_id, table, mode.value),
    )
    return True


def fail_table(conn: Conn, run_id: str, table: str, message: str) -> None:
    """Record why a table could not be synced in this run; its watermark stays where it was."""
    mode = run_mode(conn, run_id)
    conn.execute(
        """
        insert into legacy_sync.sync_log
            (run_id, table_name, mode, status, start_time, end_time, error_message)
        values (%s, %s, %s, 'FAILED', now(), now(), %s)
        on conflict (run_id, table_name) do update
            set status = 'FAILED', end_time = now(), updated_at = now(),
                error_message = excluded.error_message
        """,
        (run_id, table, mode.value, shorten(message)),
    )


def table_statuses(conn: Conn, run_id: str) -> dict[str, str]:
    return dict(
        conn.execute("select table_name, status from legacy_sync.sync_log where run_id = %s", (run_id,))
    )


# -- landing --------------------------------------------------------------------------------------


@dataclass
class Batch:
    """What one table's extract landed; returned to Airflow (XCom) and kept in landing_batch."""

    table: str
    mode: str
    strategy: str
    records_landed: int = 0
    records_retried: int = 0
    source_count: int | None = None
    table_count: int | None = None
    deleted_keys: int = 0
    complete_key_set: bool = False
    hold_deletes: bool = False
    hold_reason: str | None = None
    watermark_from: str | None = None
    watermark_to: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def record_batch(conn: Conn, run_id: str, batch: Batch, started_at: dt.datetime | None = None) -> None:
    """Keep what one extract landed (inside the landing transaction, so both commit together)."""
    conn.execute(
        """
        insert into legacy_sync.landing_batch (run_id, table_name, mode, strategy, complete_key_set,
            records_landed, records_retried, source_count, table_count, deleted_keys, hold_deletes,
            hold_reason, watermark_from, watermark_to, started_at, finished_at)
        values (%(run_id)s, %(table)s, %(mode)s, %(strategy)s, %(complete_key_set)s, %(records_landed)s,
            %(records_retried)s, %(source_count)s, %(table_count)s, %(deleted_keys)s, %(hold_deletes)s,
            %(hold_reason)s, %(watermark_from)s, %(watermark_to)s, coalesce(%(started_at)s, now()), now())
        on conflict (run_id, table_name) do update set mode = excluded.mode,
            strategy = excluded.strategy, complete_key_set = excluded.complete_key_set,
            records_landed = excluded.records_landed, records_retried = excluded.records_retried,
            source_count = excluded.source_count, table_count = excluded.table_count,
            deleted_keys = excluded.deleted_keys, hold_deletes = excluded.hold_deletes,
            hold_reason = excluded.hold_reason, watermark_from = excluded.watermark_from,
            watermark_to = excluded.watermark_to, started_at = excluded.started_at, finished_at = now()
        """,
        {"run_id": run_id, "started_at": started_at, **batch.as_dict()},
    )


def read_state(conn: Conn, table: LegacyTable) -> tuple[str, str | None] | None:
    """(strategy, watermark) of a table, or None before its first merged run."""
    row = conn.execute(
        "select strategy, watermark from legacy_sync.sync_state where table_name = %s", (table.name,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def previous_table_count(conn: Conn, run_id: str, table: LegacyTable) -> int | None:
    """4D's count of the table at the last earlier run that read it."""
    row = conn.execute(
        "select table_count from legacy_sync.landing_batch where table_name = %s and run_id <> %s"
        " and table_count is not null order by finished_at desc nulls last limit 1",
        (table.name, run_id),
    ).fetchone()
    return int(row[0]) if row else None


def retry_keys(conn: Conn, table: LegacyTable, limit: int, exclude_run: str | None = None) -> list[str]:
    """Records rejected only because of other records, oldest first: read again every run
    (except those ``exclude_run`` already landed)."""
    return [
        r[0]
        for r in conn.execute(
            sql.SQL(
                "select o.record_id from legacy_sync.open_reject o where o.table_name = %(table)s and o.retry"
                " and not exists (select 1 from {raw} r"
                "   where r.run_id = %(run)s and r.legacy_id = o.record_id)"
                " order by o.since, o.record_id limit %(limit)s"
            ).format(raw=_rel("legacy_staging", table.raw_table)),
            {"table": table.name, "run": exclude_run, "limit": limit},
        )
    ]


def replayable(conn: Conn, table: LegacyTable) -> sql.Composed:
    """The stored raw records ``replay_errors`` maps again: this table's open rejects only, so a
    record 4D deleted since (its open reject closed) never comes back, and one that loaded since
    is left alone. The merge never writes a version older than the one the ERP holds."""
    return sql.SQL(
        "select record_id, record_data from legacy_sync.open_reject"
        " where table_name = {} and record_data is not null"
    ).format(sql.Literal(table.name))


def landed_tables(conn: Conn, run_id: str) -> list[str]:
    """Tables of the run that landed and are still RUNNING (not failed at extract)."""
    return [
        r[0]
        for r in conn.execute(
            "select b.table_name from legacy_sync.landing_batch b join legacy_sync.sync_log l"
            " using (run_id, table_name) where b.run_id = %s and l.status = 'RUNNING'",
            (run_id,),
        )
    ]


def tables_to_merge(conn: Conn, run_id: str) -> list[str]:
    """The landed tables dbt has work for: records read, deletions reported, or a complete key
    set to compare (an hourly run over a quiet table needs no dbt at all)."""
    return [
        r[0]
        for r in conn.execute(
            "select b.table_name from legacy_sync.landing_batch b join legacy_sync.sync_log l"
            " using (run_id, table_name) where b.run_id = %s and l.status = 'RUNNING'"
            " and (b.records_landed + b.deleted_keys > 0 or b.complete_key_set)",
            (run_id,),
        )
    ]


# -- one sync at a time where it matters ----------------------------------------------------------

_ERP_LOCK = "legacy_sync.erp"


@contextlib.contextmanager
def exclusive(conninfo: str, run_id: str, step: str) -> Iterator[None]:
    """Hold the ERP lock for one step (transform, reconcile, summarize) of one run.

    A PostgreSQL session advisory lock: runs of both DAGs and manual runs take turns on the
    shared working tables and the merges into ``erp``; a waiting run says whom it waits for. The
    lock dies with the connection, so a killed task never leaves it held.
    """
    label = f"legacy-erp-sync {step} {run_id}"[:63]
    with psycopg.connect(conninfo, autocommit=True, application_name=label) as conn:
        got = conn.execute("select pg_try_advisory_lock(hashtext(%s))", (_ERP_LOCK,)).fetchone()
        if not (got and got[0]):
            holder = conn.execute(
                "select a.application_name from pg_locks l join pg_stat_activity a using (pid)"
                " where l.locktype = 'advisory' and l.granted and l.objid = hashtext(%s)::oid"
                " and a.pid <> pg_backend_pid() limit 1",
                (_ERP_LOCK,),
            ).fetchone()
            started = time.monotonic()
            log.info(
                "waiting for another sync to finish with the ERP tables (%s) before %s",
                holder[0] if holder else "another run",
                step,
            )
            conn.execute("select pg_advisory_lock(hashtext(%s))", (_ERP_LOCK,))
            log.info("waited %.0fs for the ERP lock", time.monotonic() - started)
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (_ERP_LOCK,))


@dataclass(frozen=True)
class HoldPolicy:
    """The mass-change circuit breaker's limits."""

    share: float = 0.05
    """Hold a run's deletions when they exceed this share of a table's live rows (or 4D's count
    of the table dropped by more than it since the last run)."""
    min_rows: int = 10
    """... and there are more than this many: deleting a handful is never a mass change."""

    def count_drop(self, previous: int | None, now: int | None) -> str | None:
        """Why deletions wait, when 4D's count of a table dropped too far since the last run."""
        if previous is None or now is None or previous <= 0:
            return None
        dropped = previous - now
        if dropped > self.min_rows and dropped > self.share * previous:
            return (
                f"4D's count of the table dropped from {previous:,} to {now:,} "
                f"({100 * dropped / previous:.1f} %) since the last run, more than the "
                f"{100 * self.share:.1f} % a run may delete"
            )
        return None


def set_transform_context(conn: Conn, run_id: str, policy: HoldPolicy) -> None:
    """Tell the dbt models which run they process (under the ERP lock)."""
    conn.execute(
        "insert into legacy_sync.transform_context (run_id, delete_hold_share, delete_hold_min_rows)"
        " values (%s, %s, %s) on conflict (singleton) do update set run_id = excluded.run_id,"
        " delete_hold_share = excluded.delete_hold_share,"
        " delete_hold_min_rows = excluded.delete_hold_min_rows, updated_at = now()",
        (run_id, policy.share, policy.min_rows),
    )


# -- after dbt: this run's verdicts, kept by run ------------------------------------------------


def _rel(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def _validated(table: LegacyTable) -> sql.Identifier:
    return _rel("legacy_transform", f"int_{table.snake_name}__validated")


def record_transform(
    conn: Conn,
    run_id: str,
    table: LegacyTable,
    failure: str | None,
    merged: bool,
    warning_relations: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> Counts:
    """Keep, by run, what dbt decided for one landed table (under the ERP lock, right after the
    build, before another run's build replaces the working tables).

    ``merged``: the table's erp model ran in this build. When it did not, nothing of the table
    changed in ``erp`` and nothing is recorded but ``failure``; when it did, what was merged is
    counted even if a check after the merge failed.
    """
    with conn.transaction():
        if failure:
            fail_table(conn, run_id, table.name, failure)
        if not merged:
            return Counts()
        log_id = _log_id(conn, run_id, table.name)
        validated = _validated(table)
        erp = _rel("erp", table.snake_name)
        params = {"run": run_id, "table": table.name, "log": log_id}
        # This run's rejects: sync_error (the run's record) and open_reject (the standing state).
        # A record read again by key that still waits is an earlier reject, not a new one: it
        # stays open with its latest reasons, and is neither read nor rejected by this run.
        conn.execute("delete from legacy_sync.sync_error where sync_log_id = %(log)s", params)
        conn.execute(
            sql.SQL(
                "insert into legacy_sync.sync_error (sync_log_id, record_id, error_message, record_data)"
                " select %(log)s, legacy_id, rejection_reasons, record_data from {v}"
                " where run_id = %(run)s and is_rejected and not is_retry order by legacy_id"
            ).format(v=validated),
            params,
        )
        conn.execute(
            sql.SQL(
                """
                insert into legacy_sync.open_reject
                    (table_name, record_id, first_run_id, last_run_id, error_message, record_data, retry)
                select %(table)s, legacy_id, %(run)s, %(run)s, rejection_reasons, record_data, is_retryable
                from {v} where run_id = %(run)s and is_rejected
                on conflict (table_name, record_id) do update set
                    last_run_id = case when excluded.record_data ? '__read_again'
                                       then open_reject.last_run_id else excluded.last_run_id end,
                    error_message = excluded.error_message, record_data = excluded.record_data,
                    retry = excluded.retry
                """
            ).format(v=validated),
            params,
        )
        # Closed: valid in this run and live in erp (this version or a newer one), or gone from 4D
        # (and not created again since).
        conn.execute(
            sql.SQL(
                """
                delete from legacy_sync.open_reject o
                where o.table_name = %(table)s and (
                    (
                        exists (select 1 from {v} v where v.run_id = %(run)s and not v.is_rejected
                                and v.legacy_id = o.record_id)
                        and exists (select 1 from {erp} e where e.legacy_id = o.record_id
                                    and not e.is_deleted)
                    )
                    or (
                        (
                            exists (select 1 from legacy_staging.deleted_records_raw d
                                    where d.run_id = %(run)s and d.table_name = %(table)s
                                    and d.legacy_id = o.record_id)
                            or exists (select 1 from {erp} e where e.deleted_run_id = %(run)s
                                       and e.legacy_id = o.record_id)
                        )
                        -- unless 4D created the key again after deleting it: that record waits
                        and not exists (
                            select 1 from {v} v where v.run_id = %(run)s and v.legacy_id = o.record_id
                            and v.source_stamp > (
                                select max(d.stamp) from legacy_staging.deleted_records_raw d
                                where d.run_id = %(run)s and d.table_name = %(table)s
                                and d.legacy_id = o.record_id
                            )
                        )
                    )
                    or (
                        exists (select 1 from legacy_sync.landing_batch b where b.run_id = %(run)s
                                and b.table_name = %(table)s and b.complete_key_set)
                        and not exists (select 1 from {v} v where v.run_id = %(run)s
                                        and v.legacy_id = o.record_id)
                    )
                )
                """
            ).format(v=validated, erp=erp),
            params,
        )
        # Warnings: per record (parse warnings) and from the warning models that concern the table.
        conn.execute("delete from legacy_sync.sync_warning where sync_log_id = %(log)s", params)
        conn.execute(
            sql.SQL(
                "insert into legacy_sync.sync_warning (sync_log_id, record_id, warning_message)"
                " select %(log)s, legacy_id, warnings from {v}"
                " where run_id = %(run)s and warnings is not null order by legacy_id"
            ).format(v=validated),
            params,
        )
        for relation, _ in [(r, t) for r, t in warning_relations if t == table.name]:
            conn.execute(
                sql.SQL(
                    "insert into legacy_sync.sync_warning (sync_log_id, record_id, warning_message)"
                    " select %(log)s, record_id, warning_message from {w} where table_name = %(table)s"
                    " order by record_id"
                ).format(w=_rel("legacy_transform", relation)),
                params,
            )
        # Held deletions wait for a person.
        conn.execute(
            sql.SQL(
                """
                insert into legacy_sync.held_delete (table_name, legacy_id, run_id, first_run_id, reason)
                select %(table)s, legacy_id, %(run)s, %(run)s, hold_reason from {d} where is_held
                on conflict (table_name, legacy_id) do update set run_id = excluded.run_id,
                    reason = excluded.reason, held_at = now(),
                    first_run_id = case when held_delete.status = 'HELD' then held_delete.first_run_id
                                        else excluded.first_run_id end,
                    status = 'HELD', decided_by = null, decided_run_id = null, decided_at = null
                """
            ).format(d=_rel("legacy_transform", f"int_{table.snake_name}__deletions")),
            params,
        )
        counts = _table_counts(conn, run_id, table)
        conn.execute(
            """
            update legacy_sync.sync_log set records_processed = %(processed)s,
                records_created = %(created)s, records_updated = %(updated)s,
                records_unchanged = %(unchanged)s, records_deleted = %(deleted)s,
                records_failed = %(failed)s, records_open_rejects = %(open_rejects)s,
                records_warned = %(warned)s, records_deletes_held = %(deletes_held)s, updated_at = now()
            where id = %(log)s
            """,
            {**counts.__dict__, "processed": counts.processed, "log": log_id},
        )
        return counts


def _log_id(conn: Conn, run_id: str, table: str) -> int:
    row = conn.execute(
        "select id from legacy_sync.sync_log where run_id = %s and table_name = %s", (run_id, table)
    ).fetchone()
    if row is None:
        raise LookupError(f"no sync_log row for {table} in run {run_id}")
    return int(row[0])


def _table_counts(conn: Conn, run_id: str, table: LegacyTable) -> Counts:
    row = conn.execute(
        sql.SQL(
            """
            select
                (select count(*) from {v} where run_id = %(run)s and not (is_retry and is_rejected)),
                (select count(*) from {v} where run_id = %(run)s and is_rejected and not is_retry),
                (select count(*) from {erp} where updated_run_id = %(run)s and created_run_id = %(run)s),
                (select count(*) from {erp} where updated_run_id = %(run)s and created_run_id <> %(run)s
                    and deleted_run_id is distinct from %(run)s),
                (select count(*) from {erp} where deleted_run_id = %(run)s),
                (select count(*) from legacy_sync.open_reject where table_name = %(table)s
                    and last_run_id <> %(run)s),
                (select count(distinct w.record_id) from legacy_sync.sync_warning w
                    join legacy_sync.sync_log l on l.id = w.sync_log_id
                    where l.run_id = %(run)s and l.table_name = %(table)s),
                (select count(*) from legacy_sync.held_delete where table_name = %(table)s
                    and status = 'HELD')
            """
        ).format(v=_validated(table), erp=_rel("erp", table.snake_name)),
        {"run": run_id, "table": table.name},
    ).fetchone()
    assert row is not None
    staged, rejected, created, updated, deleted, open_rejects, warned, held = (int(v) for v in row)
    return split_counts(
        staged=staged,
        rejected=rejected,
        created=created,
        updated=updated,
        deleted=deleted,
        open_rejects=open_rejects,
        warned=warned,
        deletes_held=held,
    )


# -- reconciliation -------------------------------------------------------------------------------


def lost_keys(conn: Conn, run_id: str, table: LegacyTable, limit: int = 10) -> tuple[int, list[str]]:
    """Keys landed in this run that are neither live in ``erp`` nor a standing reject: lost
    between staging and the ERP (needs no 4D)."""
    rows = conn.execute(
        sql.SQL(
            """
            select s.legacy_id, count(*) over ()
            from (select distinct legacy_id from {raw} where run_id = %(run)s) s
            where not exists (
                    select 1 from {erp} t where t.legacy_id = s.legacy_id and not t.is_deleted)
              and not exists (
                    select 1 from legacy_sync.open_reject r
                    where r.table_name = %(table)s and r.record_id = s.legacy_id)
            order by s.legacy_id limit %(limit)s
            """
        ).format(raw=_rel("legacy_staging", table.raw_table), erp=_rel("erp", table.snake_name)),
        {"run": run_id, "table": table.name, "limit": limit},
    ).fetchall()
    return (int(rows[0][1]) if rows else 0), [r[0] for r in rows]


def erp_totals(conn: Conn, table: LegacyTable) -> tuple[int, int]:
    """(live erp rows, open rejects never loaded) of a table: what 4D's count should equal."""
    row = conn.execute(
        sql.SQL(
            "select (select count(*) from {erp} where not is_deleted),"
            " (select count(*) from legacy_sync.open_reject o where o.table_name = %s"
            "  and not exists (select 1 from {erp} e where e.legacy_id = o.record_id and not e.is_deleted))"
        ).format(erp=_rel("erp", table.snake_name)),
        (table.name,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def record_reconcile(
    conn: Conn,
    run_id: str,
    table: str,
    *,
    missing: int,
    message: str,
    reconciled: bool,
    source_count: int | None,
    failure: str | None,
) -> None:
    conn.execute(
        "update legacy_sync.sync_log set source_count = %s, records_missing = %s, reconcile_message = %s,"
        " reconciled = %s, updated_at = now() where run_id = %s and table_name = %s",
        (source_count, missing, shorten(message), reconciled, run_id, table),
    )
    if failure:
        fail_table(conn, run_id, table, failure)


# -- the summary ----------------------------------------------------------------------------------


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
    open_rejects: int
    warned: int
    deletes_held: int
    error_message: str | None


_SUMMARY_COLUMNS = (
    "table_name, status, records_processed, records_created, records_updated, records_unchanged,"
    " records_deleted, records_failed, records_open_rejects, records_warned, records_deletes_held,"
    " error_message"
)


def finish_run(conn: Conn, run_id: str, tables: list[str], transform_finished: bool) -> list[TableSummary]:
    """Final status per table, watermarks of the tables safely merged, the run marked summarized.

    One transaction: the sync log and the watermarks change together or not at all.
    """
    with conn.transaction():
        mode = run_mode(conn, run_id)
        window = conn.execute(
            "select window_date from legacy_sync.sync_run where run_id = %s", (run_id,)
        ).fetchone()
        today = window[0] if window else None
        for name in tables:
            row = conn.execute(
                """
                select l.status, l.error_message, b.table_name is not null, b.strategy, b.watermark_to,
                    l.records_created, l.records_updated, l.records_unchanged, l.records_deleted,
                    l.records_failed, l.records_open_rejects, l.records_warned, l.records_deletes_held
                from legacy_sync.sync_log l
                left join legacy_sync.landing_batch b using (run_id, table_name)
                where l.run_id = %s and l.table_name = %s
                """,
                (run_id, name),
            ).fetchone()
            if row is None:
                continue
            status, error, landed, strategy, wm_to = row[:5]
            counts = Counts(*(int(v) for v in row[5:]))
            counts = _with_standing_state(conn, run_id, name, counts)
            failure = error if status == Status.FAILED else None
            if failure is None and not landed:
                failure = "extraction did not finish; see the extract_and_land log of this table"
            elif failure is None and not transform_finished:
                failure = (
                    "the dbt step did not finish; see the transform log (nothing of the table was merged)"
                )
            final = table_status(counts, failure)
            conn.execute(
                "update legacy_sync.sync_log set status = %s, error_message = %s,"
                " records_open_rejects = %s, records_deletes_held = %s,"
                " end_time = now(), updated_at = now(),"
                " watermark_from = (select watermark_from from legacy_sync.landing_batch"
                "   where run_id = %s and table_name = %s),"
                " watermark_to = %s where run_id = %s and table_name = %s",
                (
                    final.value,
                    failure,
                    counts.open_rejects,
                    counts.deletes_held,
                    run_id,
                    name,
                    wm_to,
                    run_id,
                    name,
                ),
            )
            if final is not Status.FAILED and mode.moves_watermarks and strategy and wm_to is not None:
                _move_watermark(conn, run_id, get_table(name), strategy, wm_to, today)
        conn.execute("update legacy_sync.sync_run set summarized_at = now() where run_id = %s", (run_id,))
    return run_summary(conn, run_id)


def _with_standing_state(conn: Conn, run_id: str, table: str, counts: Counts) -> Counts:
    """The counts with what stands now: open rejects not read again in this run and deletions
    still waiting for a person (also for a run that had nothing to merge)."""
    row = conn.execute(
        "select (select count(*) from legacy_sync.open_reject where table_name = %(table)s"
        "        and last_run_id <> %(run)s),"
        " (select count(*) from legacy_sync.held_delete where table_name = %(table)s and status = 'HELD')",
        {"table": table, "run": run_id},
    ).fetchone()
    assert row is not None
    return dataclasses.replace(counts, open_rejects=int(row[0]), deletes_held=int(row[1]))


def _move_watermark(
    conn: Conn, run_id: str, table: LegacyTable, strategy: str, candidate: str, today: dt.date | None
) -> None:
    state = read_state(conn, table)
    current = state[1] if state and state[0] == strategy else None
    watermark = next_watermark(strategy, current, candidate, today)
    conn.execute(
        """
        insert into legacy_sync.sync_state (table_name, strategy, watermark, last_run_id)
        values (%s, %s, %s, %s)
        on conflict (table_name) do update set strategy = excluded.strategy,
            watermark = excluded.watermark, last_run_id = excluded.last_run_id, updated_at = now()
        """,
        (table.name, strategy, watermark, run_id),
    )


def run_summary(conn: Conn, run_id: str) -> list[TableSummary]:
    """The sync log rows of one run, in a stable order."""
    rows = conn.execute(
        f"select {_SUMMARY_COLUMNS} from legacy_sync.sync_log where run_id = %s order by id",
        (run_id,),
    ).fetchall()
    return [TableSummary(*row) for row in rows]


def latest_run_id(conn: Conn) -> str | None:
    row = conn.execute(
        "select run_id from legacy_sync.sync_log order by created_at desc, id desc limit 1"
    ).fetchone()
    return row[0] if row else None


def first_errors(conn: Conn, run_id: str, limit: int = 10) -> list[tuple[str, str, str]]:
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


def table_errors(conn: Conn, table: str, limit: int) -> list[tuple[str, str, str, str]]:
    """(run id, record id, reasons, when) of a table's latest rejected records."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            """
            select l.run_id, e.record_id, e.error_message, e.created_at::text
            from legacy_sync.sync_error e join legacy_sync.sync_log l on l.id = e.sync_log_id
            where l.table_name = %s order by e.id desc limit %s
            """,
            (table, limit),
        )
    ]


@dataclass(frozen=True)
class TableChange:
    """What one run wrote to one table's erp rows (read by the Asset events and the lineage)."""

    table: str
    mode: str
    created: int
    updated: int
    deleted: int
    watermark_from: str | None
    watermark_to: str | None
    categories_created: int = 0
    """For Products: the categories the run created (erp.categories is derived from them)."""

    @property
    def written(self) -> int:
        return self.created + self.updated + self.deleted


def run_changes(conn: Conn, run_id: str) -> list[TableChange]:
    """Per table of a run: rows created, updated and deleted (the transform step's counts, there
    before the summary) and the watermark range (the summary's, else what the extract landed)."""
    if conn.execute("select to_regclass('legacy_sync.sync_log')").fetchone() == (None,):
        return []
    rows = conn.execute(
        """
        select l.table_name, l.mode, l.records_created, l.records_updated, l.records_deleted,
            coalesce(l.watermark_from, b.watermark_from), coalesce(l.watermark_to, b.watermark_to),
            case when l.table_name = 'Products' then (
                select count(*) from erp.categories where created_run_id = l.run_id) else 0 end
        from legacy_sync.sync_log l
        left join legacy_sync.landing_batch b using (run_id, table_name)
        where l.run_id = %s order by l.id
        """,
        (run_id,),
    ).fetchall()
    return [TableChange(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), r[5], r[6], int(r[7])) for r in rows]


@dataclass(frozen=True)
class Reconciliation:
    """One table's reconciliation in a run."""

    table: str
    missing: int
    reconciled: bool | None
    source_count: int | None
    message: str


def run_reconciliations(conn: Conn, run_id: str) -> list[Reconciliation]:
    rows = conn.execute(
        "select table_name, records_missing, reconciled, source_count, reconcile_message"
        " from legacy_sync.sync_log where run_id = %s and reconcile_message is not null order by id",
        (run_id,),
    ).fetchall()
    return [Reconciliation(r[0], int(r[1]), r[2], r[3], r[4]) for r in rows]


# -- held deletions -------------------------------------------------------------------------------


def held_deletes(conn: Conn, run_id: str | None = None) -> dict[str, tuple[int, str]]:
    """{table: (held count, reason)} of deletions waiting for a person; with ``run_id``, only the
    tables where that run held new ones (so a person is asked once, not every hour)."""
    return {
        r[0]: (int(r[1]), r[2])
        for r in conn.execute(
            "select table_name, count(*), min(reason) from legacy_sync.held_delete h where status = 'HELD'"
            " and (%(run)s::text is null or exists (select 1 from legacy_sync.held_delete n"
            "      where n.table_name = h.table_name and n.status = 'HELD' and n.first_run_id = %(run)s))"
            " group by table_name order by table_name",
            {"run": run_id},
        )
    }


def decide_held_deletes(
    conn: Conn, run_id: str, tables: list[str] | None, *, approve: bool, decided_by: str
) -> dict[str, int]:
    """Apply (approve) or discard the held deletions of ``tables`` (all when None).

    An approved deletion is applied only to a row still live and not written since it was held
    (a record that came back in the meantime stays). Returns {table: rows soft-deleted}.
    """
    applied: dict[str, int] = {}
    with conn.transaction():
        for table in [t for t in TABLES if tables is None or t.name in tables]:
            if approve:
                cursor = conn.execute(
                    sql.SQL(
                        """
                        update {erp} e set is_deleted = true, deleted_at = now(),
                            deleted_run_id = %(run)s, synced_at = now()
                        from legacy_sync.held_delete h
                        where h.table_name = %(table)s and h.status = 'HELD' and h.legacy_id = e.legacy_id
                          and not e.is_deleted and e.synced_at <= h.held_at
                        """
                    ).format(erp=_rel("erp", table.snake_name)),
                    {"run": run_id, "table": table.name},
                )
                applied[table.name] = cursor.rowcount
            conn.execute(
                "update legacy_sync.held_delete set status = %s, decided_by = %s, decided_run_id = %s,"
                " decided_at = now() where table_name = %s and status = 'HELD'",
                ("APPLIED" if approve else "DISCARDED", decided_by, run_id, table.name),
            )
    return applied


# -- housekeeping ---------------------------------------------------------------------------------


def prune_landed(conn: Conn, keep_days: int) -> int:
    """Drop staged raw rows of runs summarized more than ``keep_days`` ago (rejects keep their raw
    record in sync_error / open_reject), so the landing tables hold days, not years."""
    removed = 0
    runs = [
        r[0]
        for r in conn.execute(
            "select run_id from legacy_sync.sync_run where summarized_at < now() - make_interval(days => %s)",
            (keep_days,),
        )
    ]
    if not runs:
        return 0
    for table in TABLES:
        cursor = conn.execute(
            sql.SQL("delete from {} where run_id = any(%s)").format(_rel("legacy_staging", table.raw_table)),
            (runs,),
        )
        removed += cursor.rowcount
    conn.execute("delete from legacy_staging.deleted_records_raw where run_id = any(%s)", (runs,))
    return removed


def forget_landing(conn: Conn, run_id: str, tables: Iterable[LegacyTable]) -> int:
    """Drop what ``run_id`` landed for ``tables`` (raw rows, deleted keys, landing batches): a
    legacy-vs-ERP diff cleans up after itself, and before a retry of one of its tables."""
    removed = 0
    for table in tables:
        cursor = conn.execute(
            sql.SQL("delete from {} where run_id = %s").format(_rel("legacy_staging", table.raw_table)),
            (run_id,),
        )
        removed += cursor.rowcount
        conn.execute(
            "delete from legacy_staging.deleted_records_raw where run_id = %s and table_name = %s",
            (run_id, table.name),
        )
        conn.execute(
            "delete from legacy_sync.landing_batch where run_id = %s and table_name = %s",
            (run_id, table.name),
        )
    return removed
