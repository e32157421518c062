"""The scale curve: a full sync and an incremental run after the same 1,000 changed records, at
several dataset sizes (``BENCH_SCALE``, default 100,000, 1,000,000 and 5,000,000 records), with
the peak RSS of extracting the largest table at each size; plotted to ``bench/scale.png``.

Each size gets its own simulator (same generator, same table proportions) and an empty
database; the runs are the DAG's own steps in process (:func:`bench.e2e.sync_run`), so the
in-process figures exclude Airflow's fixed start-up (measured apart). dbt's target directory is
the same for every size (one database name): the incremental run's dbt parse is a partial one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import e2e, memory
from bench.common import log, reset_database, simulator

CHANGED = 1000


def sizes_from(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def measure_size(size: int, url: str, incr_reps: int) -> dict[str, Any]:
    """Full sync, then ``incr_reps`` incremental runs, each after its own 1,000 changed records
    (other records each time); the incremental figure is their median, as at the main size."""
    with simulator(size, log_name=f"simulator-scale-{size}") as sim:
        records = sum(sim.counts.values())
        reset_database(url)
        mem = memory.measure_in(sim, url, f"scale-{size}")
        reset_database(url)
        full = e2e.sync_run(sim, url, f"bench-scale-full-{size}", "full")
        incrementals = []
        for round_no in range(incr_reps):
            changed = e2e.change_records(sim, CHANGED / records, round_no)
            incrementals.append(e2e.sync_run(sim, url, f"bench-scale-incr-{size}-{round_no}", "incremental"))
    incr = sorted(incrementals, key=lambda run: run["seconds"])[(len(incrementals) - 1) // 2]
    runs = [round(run["seconds"], 2) for run in incrementals]
    log(
        f"scale {records:,}: full {full['seconds']:.1f}s {full['steps']}; incremental after {changed:,} "
        f"changes {incr['seconds']:.2f}s (median of {runs}) {incr['steps']}; peak RSS {mem['peak_mb']:.0f} MB"
    )
    return {
        "records": records,
        "changed": changed,
        "full_seconds": full["seconds"],
        "full_steps": full["steps"],
        "incremental_seconds": incr["seconds"],
        "incremental_runs_seconds": runs,
        "incremental_steps": incr["steps"],
        "incremental_records_landed": incr["records_landed"],
        "peak_rss_mb": mem["peak_mb"],
        "memory": mem,
    }


def plot(scale: dict[str, Any], date: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (uv sync --group bench): no scale plot")
        return
    points = scale["points"]
    xs = [p["records"] for p in points]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(xs, [p["full_seconds"] for p in points], marker="o", label="full sync")
    ax.plot(
        xs,
        [p["incremental_seconds"] for p in points],
        marker="s",
        label=f"incremental after {scale['changed_records']:,} changed records",
    )
    ax.plot(
        xs,
        [p["incremental_steps"].get("dbt_build", 0.0) for p in points],
        marker=".",
        linestyle=":",
        label="of which dbt build",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records in 4D (all tables)")
    ax.set_ylabel("seconds (in process, Airflow start-up excluded)")
    ax.set_title(f"Run time against dataset size ({date})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
