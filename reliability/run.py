"""``make reliability``: every fault case, several times; a table and reliability/results.json.

python -m reliability.run [--runs 3] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reliability.cases import CASES, run_case

RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console(width=140)
    rows = []
    for name in args.case or list(CASES):
        outcomes = []
        for attempt in range(args.runs):
            outcome = run_case(name, seed=attempt + 1)
            console.print(
                f"{name} #{attempt + 1}: {'pass' if outcome.passed else 'FAIL'} in {outcome.seconds}s"
                + (f" ({outcome.error or outcome.untruthful})" if not outcome.passed else "")
            )
            outcomes.append(outcome)
        rows.append(
            {
                "fault": name,
                "runs": len(outcomes),
                "records_expected": sum(o.expected for o in outcomes),
                "lost": sum(o.lost for o in outcomes),
                "duplicated": sum(o.duplicated for o in outcomes),
                "stale": sum(o.stale for o in outcomes),
                "extra": sum(o.extra for o in outcomes),
                "result": "pass" if all(o.passed for o in outcomes) else "FAIL",
                "details": [asdict(o) for o in outcomes if not o.passed],
            }
        )
    table = Table(title="Reliability: faults during a sync, reconciled against the 4D simulator")
    for column in ("fault", "runs", "records expected", "lost", "duplicated", "stale", "extra", "result"):
        table.add_column(column, justify="left" if column in ("fault", "result") else "right")
    for row in rows:
        table.add_row(
            row["fault"],
            str(row["runs"]),
            f"{row['records_expected']:,}",
            str(row["lost"]),
            str(row["duplicated"]),
            str(row["stale"]),
            str(row["extra"]),
            row["result"],
        )
    console.print(table)
    RESULTS.write_text(json.dumps(rows, indent=2, default=str))
    console.print(f"written {RESULTS}")
    return 0 if all(r["result"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
