"""``make reliability``: every fault case, several times; a table and reliability/results.json.

python -m reliability.run [--runs 3] [--case NAME ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table

# The cases share the 4D session through the DAG's store, which keeps the cookie only encrypted with
# Airflow's Fernet key: as in a deployment, give this process a key (and a throw-away Airflow home)
# before anything reads Airflow's configuration.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="lsync-rel-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())

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
                + (f" ({outcome.error or outcome.untruthful or outcome})" if not outcome.passed else "")
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
                "wrongly_rejected": sum(o.wrongly_rejected for o in outcomes),
                "bad_loaded": sum(o.bad_loaded for o in outcomes),
                "fault_fired": all(o.fault_fired for o in outcomes),
                "result": "pass" if all(o.passed for o in outcomes) else "FAIL",
                "details": [asdict(o) for o in outcomes if not o.passed],
            }
        )
    table = Table(title="Reliability: faults during a sync, reconciled against the 4D simulator")
    columns = ("fault", "runs", "records expected", "lost", "duplicated", "stale", "extra")
    for column in (*columns, "wrongly rejected", "bad loaded", "fired", "result"):
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
            str(row["wrongly_rejected"]),
            str(row["bad_loaded"]),
            "yes" if row["fault_fired"] else "NO",
            row["result"],
        )
    console.print(table)
    RESULTS.write_text(json.dumps(rows, indent=2, default=str))
    console.print(f"written {RESULTS}")
    return 0 if all(r["result"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
