"""Command line: ``legacy4d-simulator serve ...`` / ``python -m legacy4d_simulator serve ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from legacy4d_simulator.config import SimulatorConfig
from legacy4d_simulator.dataset import Dataset
from legacy4d_simulator.server import SimulatorServer

_DEFAULT_DATA = Path("..") / "shared" / "datasets" / "adventureworks"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for ``--help`` tests and the project CLI)."""
    parser = argparse.ArgumentParser(prog="legacy4d-simulator", description="A 4D REST server simulator.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the simulated 4D REST API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8044)
    src = s.add_mutually_exclusive_group()
    src.add_argument(
        "--data", type=Path, help=f"folder of AdventureWorks CSVs (default: {_DEFAULT_DATA} if present)"
    )
    src.add_argument("--generate", type=int, metavar="N", help="generate about N records instead")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--dirty", type=float, default=0.0, help="fraction of planted bad records (generated data)"
    )
    s.add_argument("--user", help="REST user (default: open access)")
    s.add_argument("--password")
    s.add_argument("--force-login", action="store_true")
    s.add_argument("--cookie-name", default="WASID4D", help="WASID4D or 4DSID_<AppName>")
    s.add_argument("--licences", type=int, default=10)
    s.add_argument("--session-idle", type=float, default=3600, help="session idle timeout, seconds")
    s.add_argument("--default-top", type=int, default=100)
    s.add_argument("--legacy-quirks", action="store_true")
    s.add_argument("--no-shuffle", action="store_true", help="serve unsorted selections in key order")
    s.add_argument("--untracked", default="", help="comma-separated tables without __GlobalStamp")
    s.add_argument("--hidden", default="", help="comma-separated tables not exposed")
    s.add_argument("--null-dates", action="store_true", help="serve blank dates as null")
    s.add_argument("--showcase-fields", action="store_true")
    s.add_argument("--control-token", help="require X-Sim-Token on /_sim endpoints")
    s.add_argument("--clock-offset-days", type=float, default=0, help="server clock offset from real time")
    s.add_argument("--balancer-cookie", help="a load balancer's cookie name set on every response")
    s.add_argument("--page-cap", type=int, help="server-side cap on $top")
    s.add_argument("--fail-rate", type=float, help="probability of a 500 __ERROR per request")
    s.add_argument("--latency", type=float, help="extra seconds before every response")
    s.add_argument("--drop-rate", type=float, help="probability of a dropped connection per request")
    s.add_argument("--log-level", default="info")
    return parser


def _tables(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve until interrupted. Returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.generate:
        dataset = Dataset.generate(args.generate, args.seed, args.dirty)
    else:
        data = args.data or (_DEFAULT_DATA if _DEFAULT_DATA.is_dir() else None)
        if data is None:
            dataset = Dataset.generate(250_000, args.seed, args.dirty)
        elif not Path(data).is_dir():
            print(f"error: data folder {data} not found", file=sys.stderr)
            return 2
        else:
            dataset = Dataset.from_csv_dir(data)
    config = SimulatorConfig(
        username=args.user,
        password=args.password,
        force_login=args.force_login,
        cookie_name=args.cookie_name,
        licences=args.licences,
        session_idle_seconds=args.session_idle,
        default_top=args.default_top,
        max_page_size=args.page_cap,
        legacy_quirks=args.legacy_quirks,
        shuffle_unsorted=not args.no_shuffle,
        untracked_tables=_tables(args.untracked),
        hidden_tables=_tables(args.hidden),
        null_dates_as_null=args.null_dates,
        showcase_fields=args.showcase_fields,
        control_token=args.control_token,
        clock_offset_days=args.clock_offset_days,
        balancer_cookie=args.balancer_cookie,
    )
    server = SimulatorServer(dataset, config, host=args.host, port=args.port, log_level=args.log_level)
    if args.fail_rate:
        server.faults.set("error_500", rate=args.fail_rate)
    if args.drop_rate:
        server.faults.set("drop_connection", rate=args.drop_rate)
    if args.latency:
        server.faults.set("slow", delay=args.latency)
    print(
        f"4D simulator serving {dataset.total_records()} records from {dataset.source} "
        f"at http://{args.host}:{args.port}/rest",
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
