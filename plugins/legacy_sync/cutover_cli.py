"""The cutover commands of ``legacy-sync`` (issue 18); ``cli.build_parser`` adds them.

- ``legacy-sync coverage``: what 4D's REST user can see that the sync does not move;
- ``legacy-sync diff [--table T ...] [--csv FILE]``: compare 4D with the ERP now (readiness);
  ``legacy-sync diff --show [DIFF_ID] [--csv FILE]``: a diff already made (default: the latest);
- ``legacy-sync drift [--accept TABLE ...]``: structure changes reported, frozen tables; accept;
- ``legacy-sync freshness``: per table, the age of its last successful sync and its limit.

Every command reads the ERP database from ``--database-url``, ``ERP_DATABASE_URL``, else Airflow's
``erp_postgres_default``; 4D through the Airflow connection ``--conn-id`` and the shared session.
Text from 4D or the database is printed as text, never as markup.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from legacy_sync.contracts import FOURD_CONN_ID
from legacy_sync.terminal import console, erp_conninfo, plain


def _client_factory(conninfo: str, conn_id: str) -> Any:
    from legacy_sync.fourd import FourDClient
    from legacy_sync.hook import Legacy4DHook
    from legacy_sync.session_store import PostgresSessionStore

    settings = Legacy4DHook(conn_id).settings()
    store = PostgresSessionStore(conninfo, conn_id)
    return lambda: FourDClient(settings, store=store)


def cmd_coverage(args: argparse.Namespace) -> int:
    import orjson

    from legacy_sync import coverage, erp_db, ledger

    conninfo = erp_conninfo(args)
    with erp_db.connect(conninfo, autocommit=True) as conn:
        ledger.apply_schema(conn)  # the shared 4D session lives there too
    with _client_factory(conninfo, args.conn_id)() as client:
        report = coverage.audit(client)
    if not args.no_store:
        with erp_db.connect(conninfo, autocommit=True) as conn:
            coverage.store(conn, report, "cli")
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0 if report.complete else 1
    table = Table(title="What 4D shows that the sync does not move")
    table.add_column("finding")
    table.add_column("where")
    for kind, text in report.lines():
        table.add_row(plain(kind), plain(text))
    if report.lines():
        console.print(table)
    console.print(plain(report.verdict()))
    console.print(plain(coverage.INVISIBLE))
    return 0 if report.complete else 1


def _print_diff(rows: list[dict[str, Any]], diff_row: dict[str, Any] | None) -> None:
    from legacy_sync.diff import percent

    table = Table(title=plain(f"Legacy vs ERP: {diff_row['diff_id'] if diff_row else ''}"))
    for column in (
        "table",
        "readiness",
        "4D",
        "identical",
        "different",
        "missing in ERP",
        "extra in ERP",
        "rejected (known)",
        "columns",
    ):
        table.add_column(column, justify="left" if column in ("table", "columns") else "right")
    for row in rows:
        if row.get("error_message"):
            table.add_row(plain(row["table_name"]), "—", "", "", "", "", "", "", plain(row["error_message"]))
            continue
        columns = ", ".join(f"{c} ({n})" for c, n in (row["differing_columns"] or {}).items())
        table.add_row(
            plain(row["table_name"]),
            percent(row["readiness"]),
            f"{row['fourd_records']:,}",
            f"{row['identical']:,}",
            f"{row['different']:,}",
            f"{row['missing_in_erp']:,}",
            f"{row['extra_in_erp']:,}",
            f"{row['rejected']:,} ({row['known_rejects']:,})",
            plain(columns),
        )
    console.print(table)
    if diff_row:
        console.print(
            plain(
                f"Readiness {percent(diff_row['readiness'])} (threshold {percent(diff_row['threshold'])}): "
                f"{diff_row['status']}"
            )
        )


def cmd_diff(args: argparse.Namespace) -> int:
    from legacy_sync import cutover_ledger, diff, erp_db

    conninfo = erp_conninfo(args)
    if args.show is not None or args.show_latest:
        with erp_db.connect(conninfo) as conn:
            found = (
                cutover_ledger.latest_diff(conn)
                if args.show_latest
                else cutover_ledger.diff_run(conn, args.show)
            )
        if found is None:
            console.print("No such diff (run `legacy-sync diff` first).")
            return 2
        diff_id = found["diff_id"]
        status = str(found["status"])
    else:
        diff_id = diff.diff_id_for(f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
        outcome = diff.run_diff(
            conninfo, diff_id, _client_factory(conninfo, args.conn_id), args.table or None
        )
        status = outcome.status
    with erp_db.connect(conninfo) as conn:
        rows = cutover_ledger.diff_tables(conn, diff_id)
        run = cutover_ledger.diff_run(conn, diff_id)
        keys = cutover_ledger.diff_keys(conn, diff_id) if args.csv else []
    _print_diff(rows, run)
    if args.csv:
        with Path(args.csv).open("w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            from legacy_sync.monitor.app import _cell  # the monitor's guard against CSV formulas

            for line in diff.keys_csv_rows(keys):
                writer.writerow([_cell(v) for v in line])
        console.print(plain(f"Wrote {len(keys):,} keys that differ to {args.csv}"))
    return 0 if status == "READY" else 1


def cmd_drift(args: argparse.Namespace) -> int:
    from legacy_sync import cutover_ledger, drift, erp_db

    conninfo = erp_conninfo(args)
    with erp_db.connect(conninfo, autocommit=True) as conn:
        if args.accept:
            accepted = drift.accept(
                conn, None if args.accept == ["all"] else args.accept, "legacy-sync drift"
            )
            console.print(plain(f"Accepted: {accepted or 'nothing was waiting'}"))
        reports = cutover_ledger.drift_reports(conn, limit=args.limit)
        pending = cutover_ledger.pending_tables(conn)
    table = Table(title="Schema drift reported (newest first)")
    for column in ("detected", "table", "severity", "policy", "status", "change"):
        table.add_column(column)
    for row in reports:
        table.add_row(
            f"{row['detected_at']:%Y-%m-%d %H:%M}",
            plain(row["table_name"]),
            plain(row["severity"]),
            plain(row["policy"]),
            plain(row["status"]),
            plain(row["message"]),
        )
    console.print(table)
    for name, lines in pending.items():
        console.print(plain(f"{name} is frozen until accepted (`legacy-sync drift --accept {name}`):"))
        for line in lines:
            console.print(plain(f"  {line}"))
    return 1 if pending else 0


def cmd_freshness(args: argparse.Namespace) -> int:
    from legacy_sync import erp_db, freshness

    with erp_db.connect(erp_conninfo(args)) as conn:
        ages = freshness.table_ages(conn)
    table = Table(title="Freshness: age of each table's last successful sync")
    for column in ("table", "last success (UTC)", "age", "limit", "stale"):
        table.add_column(column)
    for age in ages:
        table.add_row(
            plain(age.table),
            f"{age.last_success.astimezone(dt.UTC):%Y-%m-%d %H:%M}" if age.last_success else "never",
            freshness._span(age.age) if age.age is not None else "—",
            freshness._span(age.limit),
            "STALE" if age.stale else "",
        )
    console.print(table)
    return 1 if any(a.stale for a in ages) else 0


def add_commands(sub: Any) -> None:
    """The cutover sub-commands, on ``legacy-sync``'s parser."""

    def common(parser: argparse.ArgumentParser, fourd: bool = False) -> None:
        parser.add_argument("--database-url", help="ERP database (default: ERP_DATABASE_URL, else Airflow's)")
        if fourd:
            parser.add_argument("--conn-id", default=FOURD_CONN_ID, help="Airflow 4D connection (default)")

    coverage = sub.add_parser(
        "coverage", help="4D tables and fields the sync does not move; tables without a key"
    )
    coverage.add_argument("--json", action="store_true", help="print the report as JSON")
    coverage.add_argument("--no-store", action="store_true", help="do not keep the report for the monitor")
    common(coverage, fourd=True)
    coverage.set_defaults(func=cmd_coverage)

    diff = sub.add_parser("diff", help="compare 4D with the ERP by key and column; the readiness score")
    diff.add_argument("--table", action="append", help="legacy table to compare (repeatable; default all)")
    diff.add_argument("--csv", help="write the keys that are not identical to this CSV file")
    diff.add_argument("--show", metavar="DIFF_ID", help="print (and export) a diff already made")
    diff.add_argument("--show-latest", action="store_true", help="print (and export) the latest diff")
    common(diff, fourd=True)
    diff.set_defaults(func=cmd_diff)

    drift = sub.add_parser(
        "drift", help="4D structure changes reported; accept a frozen table's new structure"
    )
    drift.add_argument(
        "--accept", nargs="+", metavar="TABLE", help="accept the pending structure of these tables (or `all`)"
    )
    drift.add_argument("--limit", type=int, default=50)
    common(drift)
    drift.set_defaults(func=cmd_drift)

    fresh = sub.add_parser("freshness", help="age of each table's last successful sync, and its limit")
    common(fresh)
    fresh.set_defaults(func=cmd_freshness)
