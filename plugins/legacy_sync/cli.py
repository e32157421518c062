"""``legacy-sync``: the project's command line.

- ``legacy-sync sync [--full] [--table T ...]``: run the sync DAG once (the original management command).
- ``legacy-sync status`` / ``legacy-sync errors --table T``: read the sync log.
- ``legacy-sync probe``: what a 4D server is like (version, tables, tracking, limits).
- ``legacy-sync session [--release]``: the shared 4D session (a client licence); ``--release`` logs
  it out of 4D and forgets it.
- ``legacy-sync coverage`` / ``diff`` / ``drift`` / ``freshness``: cutover confidence (see
  :mod:`legacy_sync.cutover_cli`).
- ``legacy-sync check-secrets [--env-file .env] [--for compose|airflow]``: refuse placeholder or
  weak secrets (see :mod:`legacy_sync.secret_policy`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from legacy_sync.contracts import FOURD_CONN_ID
from legacy_sync.ledger import Status
from legacy_sync.terminal import console, erp_conninfo, plain


def _database_url(args: argparse.Namespace) -> str:
    url = getattr(args, "database_url", None) or os.environ.get("ERP_DATABASE_URL")
    if not url:
        console.print("[red]Set ERP_DATABASE_URL (or pass --database-url) to the ERP database.[/red]")
        raise SystemExit(2)
    return url


def print_summary(conninfo: str, run_id: str | None = None, errors: int = 10) -> bool:
    """Print the sync log of a run (default: the latest) and its first rejects; True if no table failed."""
    from legacy_sync import erp_db, ledger

    with erp_db.connect(conninfo) as conn:
        run_id = run_id or ledger.latest_run_id(conn)
        if run_id is None:
            console.print("No sync has run yet.")
            return True
        summary = ledger.run_summary(conn, run_id)
        rejects = ledger.first_errors(conn, run_id, errors)
    table = Table(title=plain(f"Sync run {run_id}"))
    columns = (
        "processed",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "rejected",
        "open rejects",
        "warned",
    )
    for column in ("table", "status", *columns):
        table.add_column(column, justify="left" if column in ("table", "status") else "right")
    colours: dict[str, str] = {
        Status.COMPLETED: "green",
        Status.PARTIALLY_COMPLETED: "yellow",
        Status.FAILED: "red",
    }
    for row in summary:
        table.add_row(
            plain(row.table),
            Text(str(row.status), style=colours.get(row.status, "white")),
            f"{row.processed:,}",
            f"{row.created:,}",
            f"{row.updated:,}",
            f"{row.unchanged:,}",
            f"{row.deleted:,}",
            f"{row.failed:,}",
            f"{row.open_rejects:,}",
            f"{row.warned:,}",
        )
    console.print(table)
    for row in summary:
        if row.error_message:
            console.print(f"[red]{escape(row.table)} failed:[/red] {escape(row.error_message)}")
    if rejects:
        console.print(f"First {len(rejects)} rejected records:")
        for table_name, record_id, reasons in rejects:
            console.print(plain(f"  {table_name} {record_id}: {reasons}"))
    return not any(row.status == Status.FAILED for row in summary)


def cmd_status(args: argparse.Namespace) -> int:
    return 0 if print_summary(_database_url(args), args.run_id) else 1


def cmd_errors(args: argparse.Namespace) -> int:
    from legacy_sync import erp_db, ledger

    with erp_db.connect(_database_url(args)) as conn:
        rows = ledger.table_errors(conn, args.table, args.limit)
    table = Table(title=plain(f"Rejected {args.table} records (newest first)"))
    for column in ("run", "record", "reasons", "at"):
        table.add_column(column)
    for run_id, record_id, reasons, at in rows:
        table.add_row(plain(run_id), plain(record_id), plain(reasons), at[:16])
    console.print(table)
    return 0


def cmd_session(args: argparse.Namespace) -> int:
    from legacy_sync import erp_db
    from legacy_sync.session_store import PostgresSessionStore

    conninfo = erp_conninfo(args)
    store = PostgresSessionStore(conninfo, args.conn_id)
    if not args.release:
        with erp_db.connect(conninfo) as conn:
            row = conn.execute(
                "select cookie_name, created_at, last_used_at from legacy_sync.fourd_session"
                " where conn_id = %s",
                (args.conn_id,),
            ).fetchone()
        if row is None:
            console.print(plain(f"No 4D session stored for {args.conn_id}."))
        else:
            name, created, used = row
            console.print(
                plain(
                    f"4D session of {args.conn_id}: cookie {name}, opened {created:%Y-%m-%d %H:%M:%S %Z},"
                    f" last used {used:%Y-%m-%d %H:%M:%S %Z}. `legacy-sync session --release` frees it."
                )
            )
        return 0
    if not store.encrypted:
        console.print(
            "No usable Fernet key here, so no session is shared through the database: each task kept "
            "its own in memory, and 4D frees those licences after their idle timeout."
        )
        return 0
    from legacy_sync.fourd import FourDClient
    from legacy_sync.hook import Legacy4DHook

    with FourDClient(Legacy4DHook(args.conn_id).settings(), store=store) as client:
        outcome = client.logout()
    if outcome is None:
        console.print(plain(f"No 4D session stored for {args.conn_id}: nothing to release."))
    else:
        console.print(plain(f"Released the 4D session of {args.conn_id}: {outcome}."))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from legacy_sync.dags_test import run_sync_once

    return run_sync_once(full=args.full, tables=args.table or None)


def cmd_probe(args: argparse.Namespace) -> int:
    import orjson

    from legacy_sync.fourd import FourDClient, FourDSettings
    from legacy_sync.hook import Legacy4DHook
    from legacy_sync.probe import probe

    if args.url:
        from urllib.parse import urlsplit

        from legacy_sync.hook import is_loopback

        url = urlsplit(args.url)
        if url.scheme == "http" and not is_loopback(url.hostname) and not args.allow_insecure_http:
            console.print(
                "[red]Plain http to a remote 4D server sends the password in clear.[/red] Use https "
                "(--ca-bundle for an internal CA) or pass --allow-insecure-http."
            )
            return 2
        password = os.environ.get(args.password_env) if args.password_env else None
        settings = FourDSettings(
            args.url, args.user, password, verify_tls=not args.insecure, ca_bundle=args.ca_bundle
        )
    else:
        settings = Legacy4DHook(args.conn_id).settings()
    with FourDClient(settings) as client:
        report = probe(client)
    if args.json:
        console.print_json(orjson.dumps(report.as_dict()).decode())
        return 0
    # Everything below comes from the 4D server: printed as text, never as markup.
    console.print(plain(f"4D version: {report.version}   session cookie: {report.cookie_name}"))
    console.print(
        plain(f"__DeletedRecords exposed: {report.deleted_records_exposed}   time unit: {report.time_unit}")
    )
    for label, verdict in report.date_filter.items():
        console.print(plain(f"date filter as {label}: {verdict}"))
    console.print(plain(f"largest page: {report.largest_page}"))
    table = Table(title="Registry tables on this server")
    for column in ("table", "exposed", "key", "records", "change tracking", "missing fields"):
        table.add_column(column)
    for t in report.tables:
        table.add_row(
            plain(t.name),
            str(t.exposed),
            plain(t.key or ""),
            f"{t.records or 0:,}",
            str(t.change_tracking),
            plain(", ".join(t.missing_fields)),
        )
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legacy-sync", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sync = sub.add_parser("sync", help="run the sync DAG once with `airflow dags test`")
    sync.add_argument("--full", action="store_true", help="re-read everything and detect deletions")
    sync.add_argument("--table", action="append", help="legacy table to sync (repeatable; default all)")
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser("status", help="the sync log of the latest run (or --run-id)")
    status.add_argument("--run-id")
    status.add_argument("--database-url")
    status.set_defaults(func=cmd_status)

    errors = sub.add_parser("errors", help="rejected records of a table")
    errors.add_argument("--table", required=True)
    errors.add_argument("--limit", type=int, default=50)
    errors.add_argument("--database-url")
    errors.set_defaults(func=cmd_errors)

    probe = sub.add_parser("probe", help="report what a 4D server is like, before the first sync")
    probe.add_argument("--conn-id", default=FOURD_CONN_ID, help="Airflow connection (default)")
    probe.add_argument("--url", help="or a server URL, e.g. https://erp.example.com:8044")
    probe.add_argument("--user", help="4D user (with --url)")
    probe.add_argument("--password-env", help="name of the env variable holding the password (with --url)")
    probe.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    probe.add_argument("--ca-bundle", help="PEM file of the CA that signed the server's certificate")
    probe.add_argument(
        "--allow-insecure-http", action="store_true", help="accept plain http to a remote server"
    )
    probe.add_argument("--json", action="store_true", help="print the report as JSON")
    probe.set_defaults(func=cmd_probe)

    session = sub.add_parser(
        "session", help="the shared 4D session (a client licence); --release logs it out of 4D"
    )
    session.add_argument(
        "--release",
        action="store_true",
        help="log the session out of 4D ($directory/logout) and forget it; the next run logs in again",
    )
    session.add_argument("--conn-id", default=FOURD_CONN_ID, help="Airflow 4D connection (default)")
    session.add_argument("--database-url", help="ERP database (default: ERP_DATABASE_URL, else Airflow's)")
    session.set_defaults(func=cmd_session)

    from legacy_sync.cutover_cli import add_commands

    add_commands(sub)  # coverage, diff, drift, freshness (issue 18)

    sub.add_parser(
        "check-secrets",
        help="refuse placeholder or weak secrets (options: legacy-sync check-secrets --help)",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request is noise here
    if argv[:1] == ["check-secrets"]:
        from legacy_sync.secret_policy import main as check_secrets

        return check_secrets(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
