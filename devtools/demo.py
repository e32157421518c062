"""``make demo``: a local PostgreSQL + the 4D simulator + one run of the sync DAG, then its summary.

python -m devtools.demo [--runs N]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from devtools.local_run import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="how many sync runs in a row (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request is noise here
    return run_demo(Path.cwd(), runs=args.runs)


if __name__ == "__main__":
    raise SystemExit(main())
