"""(5) peak memory of extracting one table (OrderLines) at 100,000 and at 1,000,000 records.

Each measurement is a fresh child process that imports what an Airflow task imports for the
extract (the 4D client, psycopg, the landing module), lands the table once in full mode and
reports its peak resident set and its resident set before the extract. The peak is the kernel's
high-water mark ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would be useless here, Linux
carries it over ``fork`` + ``execve`` from the (large) benchmark process.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Sim, log, simulator

TABLE = "OrderLines"
SHARE = 0.60  # generator.PROPORTIONS["OrderLines"]


def scale_for(rows: int) -> int:
    return math.ceil(rows / SHARE)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(base_url: str, user: str, password: str, url: str, run_id: str) -> None:
    import psycopg

    from legacy_sync import ledger
    from legacy_sync.fourd import FourDClient
    from legacy_sync.fourd.client import FourDSettings
    from legacy_sync.landing import land_table
    from legacy_sync.registry import get_table

    before = _status_kb("VmRSS")
    with (
        psycopg.connect(url, autocommit=True) as conn,
        FourDClient(FourDSettings(base_url, user, password)) as client,
    ):
        ledger.apply_schema(conn)
        started = time.perf_counter()
        result = land_table(client, conn, get_table(TABLE), run_id, "full")
        seconds = time.perf_counter() - started
        conn.execute("delete from legacy_staging.order_lines_raw where run_id = %s", (run_id,))
    peak = _status_kb("VmHWM")
    print(
        json.dumps(
            {"records": result.records_landed, "seconds": seconds, "peak_kb": peak, "before_kb": before}
        )
    )


def measure_in(sim: Sim, url: str, label: str) -> dict[str, Any]:
    """Peak RSS of a fresh child landing OrderLines (the largest table) from ``sim``."""
    from bench.common import SIM_USER

    command = [sys.executable, "-m", "bench.memory", sim.base_url, SIM_USER, sim.password, url]
    command.append(f"bench-mem-{label}")
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory child failed: {out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["peak_mb"] = data["peak_kb"] / 1024
    data["before_mb"] = data["before_kb"] / 1024
    data["rows_per_s"] = data["records"] / data["seconds"]
    data["dataset_records"] = sum(sim.counts.values())
    log(
        f"peak RSS extracting {TABLE} ({data['records']:,} of {data['dataset_records']:,} records): "
        f"{data['peak_mb']:.1f} MB (after imports {data['before_mb']:.1f} MB), "
        f"{data['rows_per_s']:,.0f} records/s"
    )
    return data


def measure_one(rows: int, url: str) -> dict[str, Any]:
    with simulator(scale_for(rows), log_name=f"simulator-mem-{rows}") as sim:
        assert sim.counts[TABLE] == rows, sim.counts
        return measure_in(sim, url, str(rows))


def measure(url: str) -> dict[str, Any]:
    small = measure_one(100_000, url)
    large = measure_one(1_000_000, url)
    return {
        "table": TABLE,
        "at_100k": small,
        "at_1m": large,
        "ratio": large["peak_mb"] / small["peak_mb"],
    }


if __name__ == "__main__":
    child(*sys.argv[1:6])
