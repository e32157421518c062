"""Airflow overhead we control: DAG file parse times and the start-up work of a task.

- **DAG parse**: ``airflow dags report -o json`` (Airflow's own DagBag timing per file; each
  file must parse in under 0.5 s), ``BENCH_PARSE_REPS`` times (median per file) with compiled
  bytecode kept (as a deployment has it: the target), and once cold (every module compiled from
  source: a fresh, empty bytecode cache; a cold report costs ~3x a warm one, so only one).
- **Task start-up**: a fresh process (as a task runner is) times what a task does before it
  works: importing the DAG factory (Airflow's SDK), the pipeline, the dbt runner (only the
  transform task imports dbt), opening the ERP connection, and the 4D client's first request
  on the shared session (a login only when the session is new).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import ROOT, WORK, Sim, env_int, log


def dags_report_once(env: dict[str, str]) -> dict[str, Any]:
    """Per DAG file: parse seconds and DAG ids, from ``airflow dags report``.

    The report parses every file in one process: the first file (alphabetically) also pays the
    imports the files share (Airflow's SDK, our DAG factory), as every file does in a fresh
    dag-processor process."""
    from legacy_sync.dags_test import console_script

    started = time.perf_counter()
    out = subprocess.run(
        [console_script("airflow"), "dags", "report", "-o", "json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    cli_seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"airflow dags report failed: {out.stderr[-2000:]}")
    text = out.stdout[out.stdout.index("[{") :]  # after Airflow's own warnings
    files = {}
    for row in json.loads(text):
        duration = row.get("duration")
        seconds = _seconds(duration)
        files[os.path.basename(str(row.get("file", "?")))] = {"seconds": seconds, "dags": row.get("dags")}
    slowest = max((f["seconds"] for f in files.values()), default=0.0)
    return {"files": files, "slowest_seconds": slowest, "cli_seconds": cli_seconds}


def dags_report(env: dict[str, str], reps: int) -> dict[str, Any]:
    """Median per file of ``reps`` reports with the bytecode cache of the run (after one report
    that fills it), and one cold report (an empty cache: everything compiled again)."""
    dags_report_once(env)  # fills the bytecode cache, as a dag processor's first parse does
    warm = [dags_report_once(env) for _ in range(reps)]
    with tempfile.TemporaryDirectory(prefix="pycache-cold-", dir=WORK) as empty:
        no_cache = {"PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        cold = [dags_report_once({**env, **no_cache})]

    def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
        files = {
            name: {
                "seconds": statistics.median(r["files"][name]["seconds"] for r in runs),
                "runs_seconds": [round(r["files"][name]["seconds"], 3) for r in runs],
                "dags": info["dags"],
            }
            for name, info in runs[0]["files"].items()
        }
        return {
            "files": files,
            "slowest_seconds": max((f["seconds"] for f in files.values()), default=0.0),
            "cli_seconds": statistics.median(r["cli_seconds"] for r in runs),
        }

    report = medians(warm)
    report["reps"] = reps
    report["cold"] = medians(cold)
    for name, info in sorted(report["files"].items()):
        log(
            f"DAG file {name}: parsed in {info['seconds']:.3f}s (median of {info['runs_seconds']}), "
            f"cold {report['cold']['files'][name]['seconds']:.3f}s ({info['dags']})"
        )
    return report


def _seconds(duration: Any) -> float:
    """``0:00:00.123456`` (a timedelta's str) or a number of seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    text = str(duration)
    if ":" in text:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return float(text)


def child(base_url: str, user: str, password: str, url: str) -> None:
    """In a fresh interpreter: seconds of each start-up step, as JSON on stdout."""
    steps: dict[str, float] = {}

    def step(name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        out = fn()
        steps[name] = round(time.perf_counter() - t0, 4)
        return out

    step("import airflow sdk + DAG factory", lambda: __import__("legacy_sync.dag_factory"))
    step("import pipeline (hook client, landing, ledger)", lambda: __import__("legacy_sync.pipeline"))
    step("import dbt runner (transform only)", lambda: __import__("dbt.cli.main"))
    import psycopg

    from legacy_sync.fourd import FourDClient
    from legacy_sync.fourd.client import FourDSettings

    conn = step("open ERP connection", lambda: psycopg.connect(url, autocommit=True))
    conn.close()
    client = FourDClient(FourDSettings(base_url, user, password))
    step("4D: first request (login on a new session)", lambda: client.page("Products", top=1))
    step("4D: next request (session reused)", lambda: client.page("Products", top=1))
    client.close()
    print(json.dumps(steps))


def task_startup(sim: Sim, url: str) -> dict[str, Any]:
    from bench.common import SIM_USER

    started = time.perf_counter()
    command = [sys.executable, "-m", "bench.startup", sim.base_url, SIM_USER, sim.password, url]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"start-up child failed: {out.stderr[-2000:]}")
    steps = json.loads(out.stdout.strip().splitlines()[-1])
    log(f"task start-up (fresh process, {wall:.1f}s wall with the interpreter): {steps}")
    return {"steps": steps, "process_wall_seconds": wall}


def measure(sim: Sim, url: str) -> dict[str, Any]:
    from devtools.local_run import airflow_env

    home = WORK / "airflow"
    env = airflow_env(home, ROOT, url, sim.base_url, "bench", sim.password)
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    return {
        "dags_report": dags_report(env, max(1, env_int("BENCH_PARSE_REPS", 3))),
        "task_startup": task_startup(sim, url),
    }


if __name__ == "__main__":
    child(*sys.argv[1:5])
