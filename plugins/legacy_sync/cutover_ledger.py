"""The ledger's cutover tables (issue 18): the only module that writes them.

A sibling of :mod:`legacy_sync.ledger`, which owns ``legacy_sync``: the same rule holds here,
the logic lives in :mod:`~legacy_sync.drift`, :mod:`~legacy_sync.coverage`, :mod:`~legacy_sync.diff`,
:mod:`~legacy_sync.freshness` and :mod:`~legacy_sync.digest`, and every write to their tables
goes through this module:

- ``catalog_snapshot``, ``schema_drift``: 4D's structure as the last run saw it, and each change;
- ``coverage_report``: what 4D shows that the sync does not move;
- ``diff_run``, ``diff_table``, ``diff_key``: legacy-vs-ERP comparisons and the readiness score;
- ``freshness_alert``: tables older than their limit, one row per episode;
- ``digest_log``: one digest per run, sent or suppressed as an identical repeat.

The tables are created by ``sql/schema.sql`` (applied on every run by ``ledger.apply_schema``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from legacy_sync.drift import Change

Conn = psycopg.Connection[Any]


# -- schema drift ---------------------------------------------------------------------------------


def read_snapshot(conn: Conn, table: str) -> dict[str, Any] | None:
    """{exposed, attributes, pending} of a table's last catalog snapshot, or None."""
    row = conn.execute(
        "select exposed, attributes, pending_attributes is not null or pending_exposed is not null"
        " from legacy_sync.catalog_snapshot where table_name = %s",
        (table,),
    ).fetchone()
    if row is None:
        return None
    return {"exposed": bool(row[0]), "attributes": dict(row[1] or {}), "pending": bool(row[2])}


def save_snapshot(conn: Conn, table: str, catalog: dict[str, Any], run_id: str) -> None:
    """The structure the sync now knows (no change waits for anyone)."""
    exposed = bool(catalog["exposed"])
    conn.execute(
        """
        insert into legacy_sync.catalog_snapshot (table_name, exposed, attributes, run_id)
        values (%(table)s, %(exposed)s, %(attributes)s, %(run)s)
        on conflict (table_name) do update set exposed = excluded.exposed,
            -- an un-exposed table keeps the attributes last seen, to compare with when it is back
            attributes = case when excluded.exposed then excluded.attributes
                              else catalog_snapshot.attributes end,
            pending_exposed = null, pending_attributes = null,
            run_id = excluded.run_id, taken_at = now()
        """,
        {"table": table, "exposed": exposed, "attributes": Jsonb(catalog["attributes"]), "run": run_id},
    )


def _insert_drift(conn: Conn, run_id: str, table: str, policy: str, change: Change, status: str) -> None:
    conn.execute(
        "insert into legacy_sync.schema_drift (run_id, table_name, attribute, change, severity, policy,"
        " status, before, after, message) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            run_id,
            table,
            change.attribute,
            change.change,
            change.severity.value,
            policy,
            status,
            Jsonb(change.before) if change.before is not None else None,
            Jsonb(change.after) if change.after is not None else None,
            change.message,
        ),
    )


def report_drift(
    conn: Conn, run_id: str, table: str, policy: str, changes: Iterable[Change], catalog: dict[str, Any]
) -> None:
    """Report changes the table loads on with, and make the new structure the snapshot (so each
    change is reported once). Pending changes of a frozen table not among them are closed."""
    with conn.transaction():
        for change in changes:
            _insert_drift(conn, run_id, table, policy, change, "REPORTED")
        close_pending(conn, table, "REVERTED", "superseded by a later structure")
        save_snapshot(conn, table, catalog, run_id)


def hold_drift(
    conn: Conn, run_id: str, table: str, policy: str, changes: list[Change], catalog: dict[str, Any]
) -> list[Change]:
    """A frozen table waits: keep the new structure as pending, report each change once (a change
    already pending is not reported again), close pending changes 4D has undone. Returns the
    changes reported now."""
    new: list[Change] = []
    with conn.transaction():
        pending = conn.execute(
            "select id, attribute, change, after from legacy_sync.schema_drift"
            " where table_name = %s and status = 'PENDING'",
            (table,),
        ).fetchall()
        still = set()
        for change in changes:
            same = [
                p[0] for p in pending if (p[1], p[2], p[3]) == (change.attribute, change.change, change.after)
            ]
            if same:
                still.update(same)
                continue
            _insert_drift(conn, run_id, table, policy, change, "PENDING")
            new.append(change)
        gone = [p[0] for p in pending if p[0] not in still]
        if gone:
            conn.execute(
                "update legacy_sync.schema_drift set status = 'REVERTED', decided_by = %s, decided_at = now()"
                " where id = any(%s)",
                ("4D went back", gone),
            )
        conn.execute(
            "update legacy_sync.catalog_snapshot set pending_exposed = %s, pending_attributes = %s"
            " where table_name = %s",
            (bool(catalog["exposed"]), Jsonb(catalog["attributes"]), table),
        )
    return new


def close_pending(conn: Conn, table: str, status: str, decided_by: str) -> int:
    """Close the table's pending changes (REVERTED or APPROVED); the pending structure is dropped."""
    cursor = conn.execute(
        "update legacy_sync.schema_drift set status = %s, decided_by = %s, decided_at = now()"
        " where table_name = %s and status = 'PENDING'",
        (status, decided_by, table),
    )
    conn.execute(
        "update legacy_sync.catalog_snapshot set pending_exposed = null, pending_attributes = null"
        " where table_name = %s",
        (table,),
    )
    return cursor.rowcount


def accept_pending(conn: Conn, tables: list[str] | None, decided_by: str) -> dict[str, int]:
    """The pending structure of frozen tables becomes the snapshot; their changes APPROVED."""
    accepted: dict[str, int] = {}
    with conn.transaction():
        rows = conn.execute(
            "select table_name from legacy_sync.catalog_snapshot where pending_exposed is not null"
            " and (%(tables)s::text[] is null or table_name = any(%(tables)s::text[])) order by table_name",
            {"tables": tables},
        ).fetchall()
        for (table,) in rows:
            conn.execute(
                """
                update legacy_sync.catalog_snapshot set exposed = pending_exposed,
                    attributes = case when pending_exposed then pending_attributes else attributes end,
                    pending_exposed = null, pending_attributes = null, taken_at = now()
                where table_name = %s
                """,
                (table,),
            )
            cursor = conn.execute(
                "update legacy_sync.schema_drift set status = 'APPROVED', decided_by = %s, decided_at = now()"
                " where table_name = %s and status = 'PENDING'",
                (decided_by, table),
            )
            accepted[table] = cursor.rowcount
    return accepted


def pending_tables(conn: Conn) -> dict[str, list[str]]:
    """{table: [pending change messages]} of frozen tables waiting for a person."""
    found: dict[str, list[str]] = {}
    for table, severity, message in conn.execute(
        "select table_name, severity, message from legacy_sync.schema_drift where status = 'PENDING'"
        " order by table_name, id"
    ):
        found.setdefault(table, []).append(f"[{severity}] {message}")
    return found


def drift_reports(conn: Conn, run_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Drift reports, newest first (those first reported by ``run_id`` when given)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select id, run_id, table_name, attribute, change, severity, policy, status, message,"
            " detected_at, decided_by, decided_at from legacy_sync.schema_drift"
            " where %(run)s::text is null or run_id = %(run)s order by id desc limit %(limit)s",
            {"run": run_id, "limit": limit},
        ).fetchall()


def other_runs_reading(conn: Conn, run_id: str) -> bool:
    """Another sync run still has tables RUNNING (its tasks are reading 4D)."""
    row = conn.execute(
        "select exists (select 1 from legacy_sync.sync_log where status in ('RUNNING', 'PENDING')"
        " and run_id <> %s)",
        (run_id,),
    ).fetchone()
    return bool(row and row[0])


# -- helpers ----------------------------------------------------------------------------------------


def _rel(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
