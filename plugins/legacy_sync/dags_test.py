"""One run of a DAG with ``airflow dags test``: ``legacy-sync sync`` (the original management command).

``airflow dags test`` runs a DAG in-process (no scheduler). Airflow's own output goes to a log
file; the console shows progress lines (landing, each dbt model, failures).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from legacy_sync.contracts import SYNC_DAG_ID

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

# Lines worth showing while a run works: landing progress, each dbt model, failures.
_PROGRESS = re.compile(
    r"(records/s|landed \d+ records|\d+ of \d+ (OK created|ERROR|FAIL|WARN|SKIP)|Done\. PASS="
    r"|table\(s\) failed|Traceback|Error:)"
)


def console_script(name: str) -> str:
    """A console script installed beside this Python (the project's virtualenv)."""
    return str(Path(sys.executable).with_name(name))


def run_logged(command: list[str], env: dict[str, str], log_file: Path, show_progress: bool) -> int:
    """Run a command, its output to ``log_file``; echo the progress lines to the console."""
    with (
        log_file.open("a") as log,
        subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if show_progress and _PROGRESS.search(line):
                console.print("  " + _shorten(line.rstrip()), markup=False, soft_wrap=True)
        return proc.wait()


def _shorten(line: str) -> str:
    # Airflow's structured log lines: keep the message, drop timestamps and key=value noise.
    match = re.search(r"\[(?:info|warning|error)\s*\]\s*(.*?)(?:\s+\[[\w.]+\].*)?$", line)
    text = match.group(1) if match else line
    return text[:200]


def dags_test(
    env: dict[str, str], log_file: Path, dag_id: str = SYNC_DAG_ID, conf: dict[str, Any] | None = None
) -> int:
    """One DAG run with ``airflow dags test``; returns its exit code."""
    command = [console_script("airflow"), "dags", "test", dag_id]
    if conf:
        command += ["-c", orjson.dumps(conf).decode()]
    console.print(f"[bold]Running {dag_id}[/bold] (full log: {log_file})")
    return run_logged(command, env, log_file, True)


def run_sync_once(full: bool, tables: list[str] | None) -> int:
    """``legacy-sync sync``: one run of the sync DAG in the current Airflow environment."""
    conf: dict[str, Any] = {"full_refresh": full}
    if tables:
        conf["tables"] = tables
    log_dir = Path(os.environ.get("AIRFLOW_HOME", ".")) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return dags_test({}, log_dir / "legacy-sync-cli.log", conf=conf)
