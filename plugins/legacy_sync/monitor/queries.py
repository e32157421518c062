"""Read-only SQL of the sync monitor over ``legacy_sync.sync_log`` and ``legacy_sync.sync_error``.

Every value from a request is a bound parameter; identifiers are fixed in this module, never taken
from input. The monitor connects with its own SELECT-only role (:func:`check_select_only` refuses
a role that could do more); on top of that, connections are opened read-only
(``default_transaction_read_only``), each unit of work runs in a short ``READ ONLY`` transaction,
and PostgreSQL ends a connection that waits too long: to connect, in a statement, or idle inside a
transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from legacy_sync.ledger import Status

STATUSES = tuple(status.value for status in Status)
MAX_PER_PAGE = 200
MAX_PAGE = 100_000
"""Pages beyond this are refused (422): OFFSET stays far from bigint and from scanning millions."""
# A page of the monitor must never hold a lock or a connection for long on the ERP database.
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 15_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000
CSV_BATCH = 500
"""Rejected records per query of the CSV export; each batch is its own short transaction."""


class MonitorRoleError(RuntimeError):
    """The monitor's database role may do more than read the sync log: refused, fail closed."""


_LOG_COLUMNS = """
    l.id, l.run_id, l.table_name, l.mode, l.status,
    l.records_processed, l.records_created, l.records_updated, l.records_unchanged,
    l.records_deleted, l.records_failed, l.records_open_rejects, l.records_warned,
    l.records_deletes_held, l.reconciled, l.reconcile_message, l.watermark_from, l.watermark_to,
    l.start_time, l.end_time, l.end_time - l.start_time as duration,
    l.error_message, l.created_at, l.updated_at
"""


@contextmanager
def read_only(conninfo: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A connection whose only transaction is ``READ ONLY`` (closed on exit)."""
    options = (
        "-c default_transaction_read_only=on"
        f" -c statement_timeout={STATEMENT_TIMEOUT_MS}"
        f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"
    )
    with (
        psycopg.connect(
            conninfo,
            autocommit=True,
            row_factory=dict_row,
            application_name="legacy-erp-sync-monitor",
            connect_timeout=CONNECT_TIMEOUT_S,
            options=options,
        ) as conn,
        conn.transaction(),
    ):
        conn.execute("set transaction read only")
        yield conn


_ROLE_POWERS = """
select
    r.rolname as role,
    r.rolsuper or r.rolbypassrls or r.rolcreaterole as admin,
    coalesce(
        (select has_schema_privilege(n.oid, 'CREATE') from pg_namespace n where n.nspname = 'legacy_sync'),
        false
    ) as creates,
    coalesce(
        (select bool_or(has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'legacy_sync' and c.relkind in ('r', 'p')),
        false
    ) as writes,
    coalesce(has_table_privilege(to_regclass('legacy_sync.fourd_session'), 'SELECT'), false) as reads_session
from pg_roles r where r.rolname = current_user
"""


def check_select_only(conn: psycopg.Connection[Any]) -> None:
    """Refuse to serve with a role that is an administrator, may write or create in ``legacy_sync``,
    or may read the 4D session cookie: the monitor must run with its own SELECT-only role.

    The read-only session settings are a second line; this makes a misconfiguration (say, the
    monitor connection given the sync's own role) fail closed instead of quietly working.
    """
    row = conn.execute(_ROLE_POWERS).fetchone()
    powers = dict(row) if row else {}
    found = [name for name in ("admin", "creates", "writes", "reads_session") if powers.get(name)]
    if found:
        raise MonitorRoleError(
            f"the monitor's database role {powers.get('role')!r} can do more than read the sync log "
            f"({', '.join(found)}); give connection erp_postgres_monitor its own SELECT-only role "
            "(docs/deployment.md)"
        )


def _like(text: str) -> str:
    """An ILIKE pattern matching ``text`` literally anywhere (``%`` and ``_`` are not wildcards)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class LogFilter:
    """The list page's filters; ``None`` or empty means "any"."""

    status: str | None = None
    table: str | None = None
    run_id: str | None = None
    search: str | None = None
    page: int = 1
    per_page: int = 50

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        object.__setattr__(self, "page", min(max(1, self.page), MAX_PAGE))
        object.__setattr__(self, "per_page", min(max(1, self.per_page), MAX_PER_PAGE))

    def where(self) -> tuple[str, list[Any]]:
        """SQL condition (fixed text) and its parameters."""
        clauses, params = ["true"], []
        if self.status:
            clauses.append("l.status = %s")
            params.append(self.status)
        if self.table:
            clauses.append("l.table_name = %s")
            params.append(self.table)
        if self.run_id:
            clauses.append("l.run_id = %s")
            params.append(self.run_id)
        if self.search:
            clauses.append(
                "(l.table_name ilike %s or l.run_id ilike %s or coalesce(l.error_message, '') ilike %s)"
            )
            params += [_like(self.search)] * 3
        return " and ".join(clauses), params


@dataclass(frozen=True)
class ResultPage:
    """One page of rows and the total they come from."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1 if self.rows else 0


def list_logs(conn: psycopg.Connection[Any], flt: LogFilter) -> ResultPage:
    """sync_log rows matching ``flt``, newest first."""
    where, params = flt.where()
    total = conn.execute(f"select count(*) as n from legacy_sync.sync_log l where {where}", params).fetchone()
    rows = conn.execute(
        f"select {_LOG_COLUMNS} from legacy_sync.sync_log l where {where}"
        " order by coalesce(l.start_time, l.created_at) desc, l.id desc limit %s offset %s",
        [*params, flt.per_page, (flt.page - 1) * flt.per_page],
    ).fetchall()
    return ResultPage(rows, int(total["n"]) if total else 0, flt.page, flt.per_page)


def table_names(conn: psycopg.Connection[Any]) -> list[str]:
    """Every table that has a sync_log row, for the filter."""
    return [
        r["table_name"]
        for r in conn.execute("select distinct table_name from legacy_sync.sync_log order by table_name")
    ]


def get_log(conn: psycopg.Connection[Any], log_id: int) -> dict[str, Any] | None:
    return conn.execute(
        f"select {_LOG_COLUMNS} from legacy_sync.sync_log l where l.id = %s", (log_id,)
    ).fetchone()


def raw_record(conn: psycopg.Connection[Any], error_id: int) -> dict[str, Any] | None:
    """The raw 4D record of one rejected record (``{"record_data": ...}``), None when unknown."""
    return conn.execute(
        "select record_data from legacy_sync.sync_error where id = %s", (error_id,)
    ).fetchone()


def log_errors(
    conn: psycopg.Connection[Any], log_id: int, search: str | None, page: int, per_page: int
) -> ResultPage:
    """The rejected records of one log, by record id (numeric ids in numeric order)."""
    page, per_page = min(max(1, page), MAX_PAGE), min(max(1, per_page), MAX_PER_PAGE)
    where = "e.sync_log_id = %s"
    params: list[Any] = [log_id]
    if search:
        where += " and (e.record_id ilike %s or e.error_message ilike %s)"
        params += [_like(search)] * 2
    total = conn.execute(
        f"select count(*) as n from legacy_sync.sync_error e where {where}", params
    ).fetchone()
    rows = conn.execute(
        "select e.id, e.record_id, e.error_message, e.record_data, e.created_at"
        f" from legacy_sync.sync_error e where {where}"
        " order by length(e.record_id), e.record_id, e.id limit %s offset %s",
        [*params, per_page, (page - 1) * per_page],
    ).fetchall()
    return ResultPage(rows, int(total["n"]) if total else 0, page, per_page)


def errors_batch(
    conn: psycopg.Connection[Any], log_id: int, after: tuple[int, str, int] | None, limit: int
) -> list[dict[str, Any]]:
    """The next ``limit`` rejected records of one log after ``after`` (keyset: the CSV's order).

    ``after`` is ``(length(record_id), record_id, id)`` of the last row of the previous batch. Each
    batch is one short query, so a slow download never keeps a transaction (or a snapshot) open.
    """
    where = "e.sync_log_id = %s"
    params: list[Any] = [log_id]
    if after is not None:
        where += " and (length(e.record_id), e.record_id, e.id) > (%s, %s, %s)"
        params += list(after)
    return conn.execute(
        "select e.id, e.record_id, e.error_message, e.created_at, e.record_data::text as record_data"
        f" from legacy_sync.sync_error e where {where}"
        " order by length(e.record_id), e.record_id, e.id limit %s",
        [*params, limit],
    ).fetchall()


def run_logs(conn: psycopg.Connection[Any], run_id: str) -> list[dict[str, Any]]:
    """Every table of one Airflow run."""
    return conn.execute(
        f"select {_LOG_COLUMNS} from legacy_sync.sync_log l where l.run_id = %s order by l.table_name",
        (run_id,),
    ).fetchall()


@dataclass
class RunPoint:
    """One run in the charts: when it started and, per table, its counts and status."""

    run_id: str
    started: dt.datetime
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(int(t["records_failed"]) for t in self.tables.values())

    @property
    def failed_tables(self) -> list[str]:
        return sorted(name for name, t in self.tables.items() if t["status"] == Status.FAILED)


def recent_runs(conn: psycopg.Connection[Any], limit: int = 20) -> list[RunPoint]:
    """The last ``limit`` runs, oldest first, with each table's counts (for the charts)."""
    rows = conn.execute(
        """
        with runs as (
            select run_id, min(coalesce(start_time, created_at)) as started
            from legacy_sync.sync_log
            group by run_id
            order by started desc
            limit %s
        )
        select
            runs.run_id, runs.started, l.table_name, l.status,
            l.records_created, l.records_updated, l.records_unchanged, l.records_failed
        from runs
        inner join legacy_sync.sync_log as l on l.run_id = runs.run_id
        order by runs.started, runs.run_id, l.table_name
        """,
        (limit,),
    ).fetchall()
    points: dict[str, RunPoint] = {}
    for row in rows:
        point = points.setdefault(row["run_id"], RunPoint(row["run_id"], row["started"]))
        point.tables[row["table_name"]] = row
    return list(points.values())


def log_warnings(conn: psycopg.Connection[Any], log_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """Records of one table in one run that loaded with a warning (keys and reasons)."""
    return conn.execute(
        "select record_id, warning_message from legacy_sync.sync_warning where sync_log_id = %s"
        " order by id limit %s",
        (log_id, limit),
    ).fetchall()


def held_deletes(conn: psycopg.Connection[Any], table: str, limit: int = 200) -> ResultPage:
    """Deletions of a table the circuit breaker holds for a person's decision."""
    total = conn.execute(
        "select count(*) as n from legacy_sync.held_delete where table_name = %s and status = 'HELD'",
        (table,),
    ).fetchone()
    rows = conn.execute(
        "select legacy_id, run_id, reason, held_at from legacy_sync.held_delete"
        " where table_name = %s and status = 'HELD' order by legacy_id limit %s",
        (table, limit),
    ).fetchall()
    return ResultPage(rows, int(total["n"]) if total else 0, 1, limit)
