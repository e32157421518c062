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


# -- legacy-vs-ERP diff -----------------------------------------------------------------------------


def begin_diff(conn: Conn, diff_id: str, dag_id: str | None, tables: list[str], threshold: float) -> None:
    """Record a diff run (a retried first task changes nothing but the table list)."""
    conn.execute(
        "insert into legacy_sync.diff_run (diff_id, dag_id, tables, threshold) values (%s, %s, %s, %s)"
        " on conflict (diff_id) do update set tables = excluded.tables, status = 'RUNNING',"
        " finished_at = null",
        (diff_id, dag_id, tables, threshold),
    )


def fail_diff_table(conn: Conn, diff_id: str, table: str, message: str) -> None:
    """A table the diff could not compare (4D refused it, its mapping failed): said in words."""
    conn.execute(
        """
        insert into legacy_sync.diff_table (diff_id, table_name, error_message, compared_at)
        values (%s, %s, %s, now())
        on conflict (diff_id, table_name) do update set error_message = excluded.error_message,
            compared_at = now()
        """,
        (diff_id, table, message[:4000]),
    )


def diff_table_failed(conn: Conn, diff_id: str, table: str) -> bool:
    row = conn.execute(
        "select error_message is not null from legacy_sync.diff_table where diff_id = %s and table_name = %s",
        (diff_id, table),
    ).fetchone()
    return bool(row and row[0])


def record_diff_table(
    conn: Conn, diff_id: str, table: str, compared: sql.Composable, keep_keys: int
) -> dict[str, Any]:
    """Run one table's comparison (``compared`` yields legacy_id, status, columns, reason,
    in_fourd, in_erp, known_reject) and keep its summary and the keys that are not identical
    (at most ``keep_keys``). Returns the summary row."""
    with conn.transaction():
        conn.execute(sql.SQL("create temp table diff_compared on commit drop as {}").format(compared))
        row = conn.execute(
            """
            select
                count(*) filter (where in_fourd),
                count(*) filter (where in_erp),
                count(*) filter (where status = 'identical'),
                count(*) filter (where status = 'different'),
                count(*) filter (where status = 'missing_in_erp'),
                count(*) filter (where status = 'extra_in_erp'),
                count(*) filter (where status = 'rejected'),
                count(*) filter (where status = 'rejected' and known_reject)
            from diff_compared
            """
        ).fetchone()
        assert row is not None
        fourd, erp_live, identical, different, missing, extra, rejected, known = (int(v) for v in row)
        columns = dict(
            conn.execute(
                "select col, count(*) from diff_compared, unnest(columns) as col group by col order by col"
            ).fetchall()
        )
        conn.execute(
            "delete from legacy_sync.diff_key where diff_id = %s and table_name = %s", (diff_id, table)
        )
        kept = conn.execute(
            """
            insert into legacy_sync.diff_key (diff_id, table_name, legacy_id, status, columns, reason)
            select %s, %s, legacy_id, status, columns, reason from diff_compared
            where status <> 'identical'
            order by status, length(legacy_id), legacy_id
            limit %s
            """,
            (diff_id, table, keep_keys),
        ).rowcount
        base = fourd - known
        readiness = identical / base if base > 0 else None
        summary = {
            "table_name": table,
            "fourd_records": fourd,
            "erp_live": erp_live,
            "identical": identical,
            "different": different,
            "missing_in_erp": missing,
            "extra_in_erp": extra,
            "rejected": rejected,
            "known_rejects": known,
            "readiness": readiness,
            "differing_columns": {str(k): int(v) for k, v in columns.items()},
            "keys_kept": kept,
        }
        conn.execute(
            """
            insert into legacy_sync.diff_table (diff_id, table_name, fourd_records, erp_live, identical,
                different, missing_in_erp, extra_in_erp, rejected, known_rejects, readiness,
                differing_columns, keys_kept, error_message, compared_at)
            values (%(diff)s, %(table_name)s, %(fourd_records)s, %(erp_live)s, %(identical)s, %(different)s,
                %(missing_in_erp)s, %(extra_in_erp)s, %(rejected)s, %(known_rejects)s, %(readiness)s,
                %(columns)s, %(keys_kept)s, null, now())
            on conflict (diff_id, table_name) do update set fourd_records = excluded.fourd_records,
                erp_live = excluded.erp_live, identical = excluded.identical,
                different = excluded.different, missing_in_erp = excluded.missing_in_erp,
                extra_in_erp = excluded.extra_in_erp, rejected = excluded.rejected,
                known_rejects = excluded.known_rejects, readiness = excluded.readiness,
                differing_columns = excluded.differing_columns, keys_kept = excluded.keys_kept,
                error_message = null, compared_at = now()
            """,
            {**summary, "diff": diff_id, "columns": Jsonb(summary["differing_columns"])},
        )
    return summary


def diff_tables(conn: Conn, diff_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select * from legacy_sync.diff_table where diff_id = %s order by table_name", (diff_id,)
        ).fetchall()


def finish_diff(conn: Conn, diff_id: str, status: str, readiness: float | None, message: str) -> None:
    conn.execute(
        "update legacy_sync.diff_run set status = %s, readiness = %s, message = %s, finished_at = now()"
        " where diff_id = %s",
        (status, readiness, message[:4000], diff_id),
    )


def latest_diff(conn: Conn) -> dict[str, Any] | None:
    """The newest finished diff run, with its tables (``tables_detail``)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(
            "select * from legacy_sync.diff_run where finished_at is not null"
            " order by finished_at desc limit 1"
        ).fetchone()
    if row is not None:
        row["tables_detail"] = diff_tables(conn, row["diff_id"])
    return row


def diff_keys(
    conn: Conn, diff_id: str, table: str | None = None
) -> list[tuple[str, str, str, list[str], str]]:
    """(table, legacy_id, status, columns, reason) of a diff run's keys that are not identical."""
    return [
        (r[0], r[1], r[2], list(r[3]), r[4] or "")
        for r in conn.execute(
            "select table_name, legacy_id, status, columns, reason from legacy_sync.diff_key"
            " where diff_id = %(diff)s and (%(table)s::text is null or table_name = %(table)s)"
            " order by table_name, status, length(legacy_id), legacy_id",
            {"diff": diff_id, "table": table},
        )
    ]


# -- freshness ------------------------------------------------------------------------------------


def open_stale_alerts(conn: Conn) -> dict[str, dt.datetime]:
    """{table: detected_at} of the stale episodes still open."""
    return dict(
        conn.execute(
            "select table_name, detected_at from legacy_sync.freshness_alert where recovered_at is null"
        ).fetchall()
    )


def open_stale_alert(
    conn: Conn, table: str, last_success: dt.datetime | None, limit_minutes: int, now: dt.datetime
) -> bool:
    """Start a stale episode; False when one is already open (its alert went out then)."""
    cursor = conn.execute(
        "insert into legacy_sync.freshness_alert (table_name, last_success_at, limit_minutes, detected_at)"
        " values (%s, %s, %s, %s) on conflict (table_name) where recovered_at is null do nothing",
        (table, last_success, limit_minutes, now),
    )
    return cursor.rowcount == 1


def close_stale_alert(conn: Conn, table: str, now: dt.datetime, run_id: str | None) -> bool:
    """End a table's open stale episode: a run synced it again. False when none was open."""
    cursor = conn.execute(
        "update legacy_sync.freshness_alert set recovered_at = %s, recovered_run_id = %s"
        " where table_name = %s and recovered_at is null",
        (now, run_id, table),
    )
    return cursor.rowcount == 1


# -- digests ----------------------------------------------------------------------------------------


def digest_done(conn: Conn, run_id: str) -> bool:
    """The run's digest was already decided (sent or suppressed): a retried task sends nothing."""
    row = conn.execute("select 1 from legacy_sync.digest_log where run_id = %s", (run_id,)).fetchone()
    return row is not None


def last_sent_fingerprint(conn: Conn, dag_id: str | None) -> str | None:
    row = conn.execute(
        "select fingerprint from legacy_sync.digest_log where sent and dag_id is not distinct from %s"
        " order by created_at desc limit 1",
        (dag_id,),
    ).fetchone()
    return str(row[0]) if row else None


def record_digest(
    conn: Conn,
    run_id: str,
    dag_id: str | None,
    fingerprint: str,
    sent: bool,
    channels: list[str],
    subject: str,
    body: str,
) -> None:
    conn.execute(
        "insert into legacy_sync.digest_log (run_id, dag_id, fingerprint, sent, channels, subject, body)"
        " values (%s, %s, %s, %s, %s, %s, %s) on conflict (run_id) do nothing",
        (run_id, dag_id, fingerprint, sent, ", ".join(channels), subject, body),
    )


# -- coverage -------------------------------------------------------------------------------------


def record_coverage(conn: Conn, report: Any, source: str) -> int:
    """Keep one coverage report (a ``coverage.CoverageReport``); returns its id."""
    row = conn.execute(
        "insert into legacy_sync.coverage_report (source, taken_at, tables_unsynced, fields_unsynced,"
        " fields_missing, tables_without_key, complete, report)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s) returning id",
        (
            source,
            report.taken_at,
            len(report.unsynced_tables),
            report.fields_unsynced,
            report.fields_missing,
            len(report.without_key),
            report.complete,
            Jsonb(report.as_dict()),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def diff_run(conn: Conn, diff_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("select * from legacy_sync.diff_run where diff_id = %s", (diff_id,)).fetchone()
