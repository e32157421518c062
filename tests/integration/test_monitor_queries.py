"""The sync monitor's SQL, CSV and charts against a real PostgreSQL with seeded sync_log rows.

The pages themselves (and Airflow's sign-in in front of them) are tested in a real browser against a
real api-server in ``tests/e2e/monitor/test_monitor_ui.py``; here are the parts with many cases.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from legacy_sync import ledger
from legacy_sync.monitor import app as monitor_app
from legacy_sync.monitor import charts, queries

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
TABLES = ("Customers", "Orders", "Products")


@pytest.fixture(scope="module")
def seeded(pg_server: Any) -> Iterator[str]:
    """Four hourly runs x three tables; run 3 fails Orders; rejects in Products and Customers."""
    url = pg_server.create_database("monitor")
    with psycopg.connect(url, autocommit=True) as conn:
        ledger.apply_schema(conn)
        for run in range(4):
            run_id = f"scheduled__2026-03-01T0{6 + run}:00:00+00:00"
            start = T0 + dt.timedelta(hours=run)
            for n, table in enumerate(TABLES):
                failed = table == "Orders" and run == 3
                rejects = {"Products": 3 + run, "Customers": 1 if run == 0 else 0}.get(table, 0)
                status = "FAILED" if failed else ("PARTIALLY_COMPLETED" if rejects else "COMPLETED")
                created = 0 if failed else 100 * (n + 1) if run == 0 else run
                log_id = conn.execute(
                    """
                    insert into legacy_sync.sync_log (run_id, table_name, mode, status, records_processed,
                        records_created, records_unchanged, records_failed, start_time, end_time,
                        error_message, created_at)
                    values (%s, %s, 'incremental', %s, %s, %s, %s, %s, %s, %s, %s, %s) returning id
                    """,
                    (
                        run_id,
                        table,
                        status,
                        0 if failed else created + rejects + 50,
                        created,
                        0 if failed else 50,
                        rejects,
                        start,
                        start + dt.timedelta(seconds=42 + n),
                        "extract failed: 4D error 1800: table Orders is not exposed (50%_off)"
                        if failed
                        else None,
                        start,
                    ),
                ).fetchone()[0]
                for k in range(rejects):
                    record_id = str(10 ** (k % 3) + k)  # 1, 11, 102, 4, ... (mixed lengths)
                    reason = '=HYPERLINK("http://x") name is required' if k == 0 else f"SKU SKU-{k} is taken"
                    conn.execute(
                        "insert into legacy_sync.sync_error"
                        " (sync_log_id, record_id, error_message, record_data) values (%s, %s, %s, %s)",
                        (
                            log_id,
                            record_id,
                            reason,
                            Jsonb({"__KEY": record_id, "Name": f"Widget {k}", "n": k}),
                        ),
                    )
    yield url
    pg_server.drop_database(url)


def _list(url: str, **kwargs: Any) -> queries.ResultPage:
    with queries.read_only(url) as conn:
        return queries.list_logs(conn, queries.LogFilter(**kwargs))


def test_newest_first_and_paginated(seeded: str) -> None:
    first = _list(seeded, per_page=5)
    assert first.total == 12 and first.pages == 3
    starts = [r["start_time"] for r in first.rows]
    assert starts == sorted(starts, reverse=True) and starts[0] == T0 + dt.timedelta(hours=3)
    third = _list(seeded, per_page=5, page=3)
    assert len(third.rows) == 2 and (third.first_index, third.last_index) == (11, 12)
    every = {r["id"] for p in (1, 2, 3) for r in _list(seeded, per_page=5, page=p).rows}
    assert len(every) == 12
    assert _list(seeded, page=99).rows == []


def test_filters_by_status_table_run_and_search(seeded: str) -> None:
    failed = _list(seeded, status="FAILED")
    assert [(r["table_name"], r["run_id"]) for r in failed.rows] == [
        ("Orders", "scheduled__2026-03-01T09:00:00+00:00")
    ]
    assert failed.rows[0]["duration"] == dt.timedelta(seconds=43)
    products = _list(seeded, table="Products", status="PARTIALLY_COMPLETED")
    assert products.total == 4 and {r["table_name"] for r in products.rows} == {"Products"}
    assert _list(seeded, run_id="scheduled__2026-03-01T07:00:00+00:00").total == 3
    assert _list(seeded, search="1800").total == 1, "search looks in error messages"
    assert _list(seeded, search="custom").total == 4, "search is case-insensitive, in table names"
    assert _list(seeded, search="50%_off").total == 1
    assert _list(seeded, search="%").total == 1, "% is a literal, not a wildcard"
    assert _list(seeded, search="'; drop table legacy_sync.sync_log; --").total == 0
    with pytest.raises(ValueError, match="unknown status"):
        queries.LogFilter(status="DROPPED")
    assert queries.LogFilter(per_page=10_000).per_page == queries.MAX_PER_PAGE


def test_errors_of_a_log_paged_and_searchable(seeded: str) -> None:
    with queries.read_only(seeded) as conn:
        log = queries.list_logs(conn, queries.LogFilter(table="Products", per_page=1)).rows[0]
        errors = queries.log_errors(conn, log["id"], None, 1, 50)
        assert errors.total == log["records_failed"] == 6
        ids = [e["record_id"] for e in errors.rows]
        assert ids == sorted(ids, key=lambda i: (len(i), i)), "numeric ids in numeric order"
        assert errors.rows[0]["record_data"]["__KEY"] == errors.rows[0]["record_id"]
        assert queries.log_errors(conn, log["id"], "sku-2", 1, 50).total == 1
        page2 = queries.log_errors(conn, log["id"], None, 2, 4)
        assert len(page2.rows) == 2 and page2.pages == 2


def test_the_connection_cannot_write(seeded: str) -> None:
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), queries.read_only(seeded) as conn:
        conn.execute("delete from legacy_sync.sync_error")
    with psycopg.connect(seeded) as conn:
        assert conn.execute("select count(*) from legacy_sync.sync_error").fetchone()[0] > 0


def test_csv_of_a_log_lists_every_rejected_record_safely(seeded: str) -> None:
    with queries.read_only(seeded) as conn:
        log = queries.list_logs(conn, queries.LogFilter(table="Products", per_page=1)).rows[0]
    body = b"".join(monitor_app._csv_rows(seeded, log)).decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))
    assert len(rows) == log["records_failed"]
    assert rows[0].keys() == {"table", "run_id", "record_id", "reasons", "rejected_at", "record_data"}
    assert {r["table"] for r in rows} == {"Products"} and {r["run_id"] for r in rows} == {log["run_id"]}
    formula = next(r for r in rows if "HYPERLINK" in r["reasons"])
    assert formula["reasons"].startswith("'="), "a reason that looks like a formula is neutralised"
    assert '"__KEY"' in formula["record_data"]


def test_charts_show_the_last_runs(seeded: str) -> None:
    with queries.read_only(seeded) as conn:
        runs = queries.recent_runs(conn, 3)
    assert [r.run_id for r in runs] == [f"scheduled__2026-03-01T0{h}:00:00+00:00" for h in (7, 8, 9)]
    assert runs[-1].failed_tables == ["Orders"] and runs[-1].rejected == 6
    records = charts.records_per_table(runs)
    rejects = charts.rejects_over_time(runs)
    for svg in (records, rejects):
        assert svg.startswith("<svg") and svg.endswith("</svg>") and "role='img'" in svg
    assert all(t in records for t in TABLES) and "table failed" in records
    assert "failed: Orders" in rejects and "Products 6" in rejects
    assert charts.records_per_table([]) == charts.rejects_over_time([]) == "<p class='empty'>No runs yet.</p>"
    point = queries.RunPoint("r<1>", T0, {"<b>": {**runs[0].tables["Products"], "status": "FAILED"}})
    assert "<b>" not in charts.records_per_table([point]) and "&lt;b&gt;" in charts.records_per_table([point])


def test_a_log_shows_its_warnings_held_deletions_and_reconciliation(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        log_id = conn.execute(
            "select id from legacy_sync.sync_log where table_name = 'Orders' order by id limit 1"
        ).fetchone()[0]
        conn.execute(
            "update legacy_sync.sync_log set records_warned = 1, records_deletes_held = 2,"
            " reconciled = false, reconcile_message = 'not reconciled with 4D: it could not be asked'"
            " where id = %s",
            (log_id,),
        )
        conn.execute(
            "insert into legacy_sync.sync_warning (sync_log_id, record_id, warning_message)"
            " values (%s, '43659', 'SubTotal 100 differs from the sum of its 2 line(s) (98) by 2')",
            (log_id,),
        )
        conn.execute(
            "insert into legacy_sync.held_delete (table_name, legacy_id, run_id, first_run_id, reason)"
            " values ('Orders', '7', 'r9', 'r9', 'this run would delete 40 of 300 live rows'),"
            " ('Orders', '8', 'r9', 'r9', 'this run would delete 40 of 300 live rows')"
        )
    try:
        with queries.read_only(seeded) as conn:
            entry = queries.get_log(conn, log_id)
            warnings = queries.log_warnings(conn, log_id)
            held = queries.held_deletes(conn, "Orders")
        assert entry is not None and entry["reconciled"] is False and entry["records_deletes_held"] == 2
        assert [w["record_id"] for w in warnings] == ["43659"]
        assert held.total == 2 and [r["legacy_id"] for r in held.rows] == ["7", "8"]
    finally:
        with psycopg.connect(seeded, autocommit=True) as conn:
            conn.execute("delete from legacy_sync.held_delete")
            conn.execute("delete from legacy_sync.sync_warning")
