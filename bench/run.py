"""``make bench``: every figure of issues 8 and 15 in one run, on this machine; see bench/README.md.

Knobs (environment): BENCH_RECORDS (default 1,000,000), BENCH_REPS (3), BENCH_E2E_REPS (1 full
sync), BENCH_INCR_REPS (3 incremental runs after each full sync, each after its own 0.1 % changes),
BENCH_DLT_RECORDS (100,000: the data set dlt and extract+land are compared on), BENCH_DLT_REPS (1),
BENCH_SAMPLE (2,000 records for the per-record way: a durable commit each), BENCH_PARSE_REPS (3),
BENCH_AIRFLOW (1), BENCH_SCALE (sizes of the scale curve, default ``100000,1000000,5000000``; empty to skip),
ERP_DATABASE_URL (an existing PostgreSQL instead of the embedded, durable one).

Every process of the run keeps its compiled bytecode in ``.data/bench/pycache`` (as a deployed
Airflow has its ``.pyc`` files), whatever ``PYTHONDONTWRITEBYTECODE`` says; see bench/README.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    WORK,
    durability,
    env_int,
    log,
    machine,
    median,
    postgres,
    reset_database,
    simulator,
)

RESULTS = ROOT / "bench" / "results.json"
PLOT = ROOT / "bench" / "throughput.png"
SCALE_PLOT = ROOT / "bench" / "scale.png"


def target(name: str, value: float, limit: float, higher_is_better: bool) -> dict[str, Any]:
    met = value >= limit if higher_is_better else value <= limit
    return {"name": name, "value": round(value, 4), "limit": limit, "met": bool(met)}


def keep_bytecode() -> None:
    """Compiled modules are kept (in ``.data/bench/pycache``) for this process and its children.

    A deployed Airflow has them: the image's ``pip install`` compiles every module, and a
    long-lived process writes what it compiles. ``make install`` compiles the installed packages
    too (UV_COMPILE_BYTECODE), but ``python -m bench.run`` may run from any environment, and with
    ``PYTHONDONTWRITEBYTECODE=1`` nothing else would be kept: every fresh process -- each
    ``airflow`` command, each DAG parse, each task -- would compile what it imports again."""
    prefix = str(WORK / "pycache")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    sys.dont_write_bytecode = False
    sys.pycache_prefix = prefix


def main() -> int:
    # Imported now: a concurrent `uv sync` without the bench group must not pull them from under us.
    import dlt
    import matplotlib  # noqa: F401
    from dlt.sources.rest_api import rest_api_source  # noqa: F401

    from bench import dlt_load, e2e, extract_land, memory, per_record, scale, startup

    records = env_int("BENCH_RECORDS", 1_000_000)
    reps = env_int("BENCH_REPS", 3)
    e2e_reps = env_int("BENCH_E2E_REPS", 1)
    incr_reps = env_int("BENCH_INCR_REPS", 3)
    dlt_records = env_int("BENCH_DLT_RECORDS", 100_000)
    dlt_reps = env_int("BENCH_DLT_REPS", 1)
    sample = env_int("BENCH_SAMPLE", 2_000)
    sizes = scale.sizes_from(os.environ.get("BENCH_SCALE", "100000,1000000,5000000"))
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    parts: dict[str, float] = {}
    figures["parts_seconds"] = parts

    @contextlib.contextmanager
    def part(name: str) -> Iterator[None]:
        """Wall time of each part of the run (results.json ``parts_seconds``)."""
        t0 = time.perf_counter()
        yield
        parts[name] = round(parts.get(name, 0.0) + time.perf_counter() - t0, 1)
        log(f"part {name}: {parts[name]:.0f}s (run so far {time.perf_counter() - started:.0f}s)")

    keep_bytecode()
    with postgres() as url, simulator(records) as sim:
        figures["durability"] = durability(url)
        log(f"PostgreSQL durability: {figures['durability']}")
        total = sum(sim.counts.values())
        log(f"4D simulator: {total:,} records over {len(sim.counts)} tables {sim.counts}")
        figures["records"] = total
        figures["records_by_table"] = dict(sim.counts)

        with part("extract+land and COPY ceiling"):
            reset_database(url)
            el = extract_land.measure_extract_land(sim, url, reps)
            rows = extract_land.load_landed_rows(url, el.pop("last_run_id"))
            ceiling = extract_land.measure_ceiling(url, rows, reps)
            del rows
            gc.collect()
        figures["copy_ceiling"] = ceiling
        figures["extract_land"] = el
        figures["extract_land_vs_ceiling"] = el["rows_per_s"] / ceiling["rows_per_s"]

        fulls, incrementals = [], []
        syncs_started = time.perf_counter()
        for rep in range(e2e_reps):
            reset_database(url)
            full = e2e.sync_run(sim, url, f"bench-full-{rep}", "full")
            log(
                f"full sync #{rep + 1}: {full['records_landed']:,} records in {full['seconds']:.1f}s "
                f"= {full['records_landed'] / full['seconds']:,.0f} records/s {full['steps']}"
            )
            fulls.append(full)
            # An incremental run costs what changed: several after one full sync, each after its own
            # 0.1 % of changes (other records each time), are cheap repetitions of figure (4).
            for i in range(incr_reps):
                round_no = rep * incr_reps + i
                changed = e2e.change_records(sim, 0.001, round_no)
                incr = e2e.sync_run(sim, url, f"bench-incr-{round_no}", "incremental")
                incr["changed"] = changed
                log(
                    f"incremental #{round_no + 1} after {changed:,} changes: {incr['records_landed']:,} "
                    f"records in {incr['seconds']:.1f}s ({incr['seconds'] / full['seconds']:.1%} of full) "
                    f"{incr['steps']}"
                )
                incrementals.append(incr)
        full_s = median([f["seconds"] for f in fulls])
        incr_s = median([i["seconds"] for i in incrementals])
        figures["full_sync"] = {
            "rows_per_s": median([f["records_landed"] / f["seconds"] for f in fulls]),
            "seconds": full_s,
            "runs_seconds": [round(f["seconds"], 2) for f in fulls],
            "steps": {k: median([f["steps"][k] for f in fulls]) for k in fulls[0]["steps"]},
        }
        figures["incremental"] = {
            "changed_records": incrementals[0]["changed"],
            "records_landed": median([i["records_landed"] for i in incrementals]),
            "seconds": incr_s,
            "runs_seconds": [round(i["seconds"], 2) for i in incrementals],
            "steps": {k: median([i["steps"][k] for i in incrementals]) for k in incrementals[0]["steps"]},
            "ratio_to_full": incr_s / full_s,
        }
        quiet = e2e.sync_run(sim, url, "bench-quiet", "incremental")
        log(f"no-change incremental in process: {quiet['seconds']:.1f}s {quiet['steps']}")
        figures["no_change_incremental"] = {"seconds": quiet["seconds"], "steps": quiet["steps"]}
        parts["full and incremental syncs"] = round(time.perf_counter() - syncs_started, 1)
        if env_int("BENCH_AIRFLOW", 1):
            with part("Airflow (dags test, DAG parse, task start-up)"):
                figures["airflow"] = e2e.airflow_startup(sim, url, quiet["seconds"])
                figures["airflow"].update(startup.measure(sim, url))
        figures["incremental"]["airflow_startup_seconds"] = figures.get("airflow", {}).get("startup_seconds")
        main_point = {
            "records": total,
            "changed": incrementals[0]["changed"],
            "full_seconds": full_s,
            "full_steps": figures["full_sync"]["steps"],
            "incremental_seconds": incr_s,
            "incremental_runs_seconds": figures["incremental"]["runs_seconds"],
            "incremental_steps": figures["incremental"]["steps"],
            "incremental_records_landed": figures["incremental"]["records_landed"],
        }
        if total in sizes:  # the scale curve's point at this size: these runs, and memory here
            with part("scale curve"):
                mem = memory.measure_in(sim, url, "main")
            main_point.update({"peak_rss_mb": mem["peak_mb"], "memory": mem})

        with part("one transaction per record"):
            per = per_record.measure(sim, url, sample, max(1, min(reps, 3)))
        figures["per_record"] = per
        figures["full_sync_vs_per_record"] = figures["full_sync"]["rows_per_s"] / per["rows_per_s"]

        with part("dlt (and extract+land on its data set)"):
            if 0 < dlt_records < records:
                # dlt's cost is per record (its extract and normalise steps in Python): a smaller data
                # set gives the same records/s in a fraction of the time. extract+land is measured
                # again on the same data, so the ratio compares like with like.
                with simulator(dlt_records, log_name="simulator-dlt") as dlt_sim:
                    reset_database(url)
                    el_dlt = extract_land.measure_extract_land(dlt_sim, url, reps)
                    el_dlt.pop("last_run_id", None)
                    dlt = dlt_load.measure(dlt_sim, url, dlt_reps)
            else:
                el_dlt = el
                dlt = dlt_load.measure(sim, url, dlt_reps)
        figures["dlt_rest_api"] = dlt
        figures["extract_land_at_dlt_size"] = {k: v for k, v in el_dlt.items() if k != "tables"}
        figures["extract_land_vs_dlt"] = el_dlt["rows_per_s"] / dlt["rows_per_s"]

        if sizes:
            points = []
            for size in sizes:
                if size == total and "peak_rss_mb" in main_point:
                    points.append(main_point)
                else:
                    with part("scale curve"):
                        points.append(scale.measure_size(size, url, incr_reps))
            figures["scale"] = {"changed_records": scale.CHANGED, "points": points}
            smallest, largest = points[0], points[-1]
            figures["memory"] = {
                "table": memory.TABLE,
                "smallest": smallest["memory"],
                "largest": largest["memory"],
                "ratio": largest["peak_rss_mb"] / smallest["peak_rss_mb"],
            }

    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    figures["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    figures["machine"] = machine()
    figures["repetitions"] = {
        "extract_land": reps,
        "copy_ceiling": reps,
        "full_sync": e2e_reps,
        "incremental": e2e_reps * incr_reps,
        "per_record": max(1, min(reps, 3)),
        "dlt": dlt_reps,
        "scale_curve": 1,
        "airflow": 1,
    }

    targets = [
        target("extract+land / COPY ceiling", figures["extract_land_vs_ceiling"], 0.5, True),
        target("full sync / one transaction per record", figures["full_sync_vs_per_record"], 20, True),
        target("extract+land / dlt rest_api", figures["extract_land_vs_dlt"], 2, True),
        target(
            "incremental (0.1% changed) / full sync time",
            figures["incremental"]["ratio_to_full"],
            0.05,
            False,
        ),
    ]
    if "scale" in figures:
        points = figures["scale"]["points"]
        at = {p["records"]: p for p in points}
        largest = points[-1]
        if 1_000_000 in at and largest["records"] > 1_000_000:
            targets.append(
                target(
                    f"incremental at {largest['records']:,} / at 1,000,000 (same changes)",
                    largest["incremental_seconds"] / at[1_000_000]["incremental_seconds"],
                    1.5,
                    False,
                )
            )
        targets += [
            target(
                f"peak RSS at {largest['records']:,} / at {points[0]['records']:,} records",
                figures["memory"]["ratio"],
                1.2,
                False,
            ),
            target(f"peak RSS at {largest['records']:,} records (MB)", largest["peak_rss_mb"], 300, False),
        ]
    if "dags_report" in figures.get("airflow", {}):
        targets.append(
            target(
                "slowest DAG file parse (s)",
                figures["airflow"]["dags_report"]["slowest_seconds"],
                0.5,
                False,
            )
        )
    RESULTS.write_text(json.dumps({"figures": figures, "targets": targets}, indent=2, default=str) + "\n")
    print_report(figures, targets)
    plot(figures, PLOT)
    if "scale" in figures:
        scale.plot(figures["scale"], figures["date"], SCALE_PLOT)
    log(f"parts: {parts}")
    log(
        f"wrote {RESULTS.relative_to(ROOT)}, the plots in bench/; whole run {figures['bench_seconds']:.0f}s "
        f"({figures['bench_seconds'] / 60:.1f} min)"
    )
    return 0


def print_report(figures: dict[str, Any], targets: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    f = figures
    table = Table(title=f"legacy-erp-sync benchmark, {f['records']:,} records ({f['date']})")
    table.add_column("#")
    table.add_column("measurement")
    table.add_column("figure", justify="right")
    table.add_column("note")
    table.add_row(
        "1",
        "COPY ceiling (same records, from memory)",
        f"{f['copy_ceiling']['rows_per_s']:,.0f} rec/s",
        f"runs {f['copy_ceiling']['runs_rows_per_s']}",
    )
    table.add_row(
        "2",
        "extract+land (client + simulator)",
        f"{f['extract_land']['rows_per_s']:,.0f} rec/s",
        f"{f['extract_land_vs_ceiling']:.0%} of ceiling; runs {f['extract_land']['runs_rows_per_s']}",
    )
    fs = f["full_sync"]
    table.add_row(
        "3",
        "full sync end to end",
        f"{fs['rows_per_s']:,.0f} rec/s",
        f"{fs['seconds']:.1f}s: " + ", ".join(f"{k} {v:.1f}s" for k, v in fs["steps"].items()),
    )
    inc = f["incremental"]
    airflow = inc.get("airflow_startup_seconds")
    table.add_row(
        "4",
        f"incremental after {inc['changed_records']:,} changes (0.1%)",
        f"{inc['seconds']:.1f} s",
        f"{inc['ratio_to_full']:.1%} of full; "
        + ", ".join(f"{k} {v:.1f}s" for k, v in inc["steps"].items())
        + (f"; + Airflow start-up {airflow:.1f}s" if airflow is not None else ""),
    )
    if "memory" in f:
        m = f["memory"]
        table.add_row(
            "5",
            "peak RSS extracting OrderLines",
            f"{m['largest']['peak_mb']:.0f} MB at {m['largest']['dataset_records']:,}",
            f"{m['smallest']['peak_mb']:.0f} MB at {m['smallest']['dataset_records']:,}; "
            f"ratio {m['ratio']:.2f}",
        )
    table.add_row(
        "6",
        "one transaction per record (original)",
        f"{f['per_record']['rows_per_s']:,.0f} rec/s",
        f"sample {f['per_record']['sample']:,}; full sync is {f['full_sync_vs_per_record']:.1f}x; "
        f"one durable commit {f['per_record']['commit_ms']:.2f} ms",
    )
    dlt = f["dlt_rest_api"]
    table.add_row(
        "7",
        f"dlt rest_api -> PostgreSQL ({dlt['loader_file_format']}, its fastest)",
        f"{dlt['rows_per_s']:,.0f} rec/s",
        f"{dlt['records']:,} records; extract+land on them is {f['extract_land_vs_dlt']:.1f}x; "
        + ", ".join(f"{k} {v['rows_per_s']:,.0f}" for k, v in dlt.get("formats", {}).items()),
    )
    for point in f.get("scale", {}).get("points", []):
        table.add_row(
            "8",
            f"scale {point['records']:,}: full / incremental ({point['changed']:,} changed)",
            f"{point['full_seconds']:.1f} s / {point['incremental_seconds']:.2f} s",
            f"incremental runs {point.get('incremental_runs_seconds')}; "
            f"peak RSS {point.get('peak_rss_mb', float('nan')):.0f} MB",
        )
    airflow = f.get("airflow", {})
    if "dags_report" in airflow:
        table.add_row(
            "9",
            "DAG file parse (airflow dags report), slowest",
            f"{airflow['dags_report']['slowest_seconds']:.3f} s",
            ", ".join(f"{k} {v['seconds']:.3f}" for k, v in airflow["dags_report"]["files"].items())
            + f"; cold (no bytecode) slowest {airflow['dags_report']['cold']['slowest_seconds']:.3f} s",
        )
        table.add_row(
            "10",
            "task start-up (fresh process)",
            f"{sum(airflow['task_startup']['steps'].values()):.2f} s",
            ", ".join(f"{k} {v:.2f}" for k, v in airflow["task_startup"]["steps"].items()),
        )
    console.print(table)
    tt = Table(title="targets")
    for col in ("target", "value", "limit", "met"):
        tt.add_column(col)
    for t in targets:
        tt.add_row(
            t["name"],
            f"{t['value']:.3g}",
            f"{t['limit']}",
            "[green]met[/green]" if t["met"] else "[red]MISSED[/red]",
        )
    console.print(tt)


def plot(figures: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (uv sync --group bench): no plot")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, label, marker in (
        ("copy_ceiling", "COPY ceiling (from memory)", "s"),
        ("extract_land", "extract+land (simulator -> staging)", "o"),
    ):
        points = sorted((v["records"], v["rows_per_s"]) for v in figures[key]["tables"].values())
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=label)
    mem_points = [p["memory"] for p in figures.get("scale", {}).get("points", []) if "memory" in p]
    if mem_points:
        ax.plot(
            [m["records"] for m in mem_points],
            [m["rows_per_s"] for m in mem_points],
            marker="^",
            linestyle="--",
            label="extract+land OrderLines alone (memory runs of the scale curve)",
        )
    for file_format, run in figures["dlt_rest_api"].get("formats", {}).items():
        ax.axhline(
            run["rows_per_s"],
            color="grey" if file_format == "csv" else "silver",
            linestyle=":",
            label=f"dlt rest_api, {file_format} loader (all tables)",
        )
    ax.axhline(
        figures["per_record"]["rows_per_s"],
        color="red",
        linestyle=":",
        label="one transaction per record (durable server)",
    )
    ax.set_xscale("log")
    ax.set_xlabel("table size (records)")
    ax.set_ylabel("records/s")
    ax.set_title(f"Throughput against table size ({figures['records']:,} records, {figures['date']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
