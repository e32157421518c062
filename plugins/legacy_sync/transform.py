"""Run the dbt project (models + tests) for one sync run and say which tables it failed.

dbt runs as one ``dbt build`` in a child process: one parse, one connection pool, and dbt's
own rule that a failed node skips only what depends on it -- which is the per-table isolation
we want. Its per-node lines stream into the task log; ``run_results.json`` is turned into a
per-table verdict for the sync log.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from legacy_sync.registry import TABLES

log = logging.getLogger(__name__)

_OK = {"success", "pass", "skipped_without_failure"}


def dbt_project_dir() -> Path:
    """``LEGACY_SYNC_DBT_PROJECT_DIR``, else ``dbt_project/`` of this checkout."""
    configured = os.environ.get("LEGACY_SYNC_DBT_PROJECT_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "dbt_project"


@dataclass(frozen=True)
class DbtOutcome:
    """Which tables dbt failed, with a readable reason each, and whether dbt ran at all."""

    ran: bool
    failed_tables: dict[str, str]
    nodes: int
    log_tail: str = ""


def table_of_node(name: str) -> str | None:
    """The legacy table a dbt node belongs to, by the project's naming convention.

    ``stg_legacy_4d__order_lines``, ``int_order_lines__validated`` and ``order_lines`` all
    belong to OrderLines; the longest table name wins so ``order_lines`` is not ``orders``.
    """
    tokens = set()
    for part in name.split("__"):
        tokens.add(part)
        tokens.add(part.removeprefix("stg_").removeprefix("int_"))
    for table in sorted(TABLES, key=lambda t: -len(t.snake_name)):
        snake = table.snake_name
        if snake in tokens or any(t.startswith(snake + "_") or t.endswith("_" + snake) for t in tokens):
            return table.name
    if "categor" in name:
        return "Products"  # categories are derived from Products.Category
    return None


def _node_name(unique_id: str) -> str:
    """``model.<package>.<name>`` / ``test.<package>.<name>.<hash>`` -> ``<name>``."""
    parts = unique_id.split(".")
    return parts[2] if len(parts) > 2 else parts[-1]


def _node_table(result: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    node = manifest.get("nodes", {}).get(result["unique_id"], {})
    candidates = [node.get("attached_node"), *node.get("depends_on", {}).get("nodes", [])]
    if node.get("resource_type") != "test":
        candidates = [result["unique_id"]]
    for unique_id in candidates:
        if unique_id:
            table = table_of_node(_node_name(unique_id))
            if table:
                return table
    return None


def summarise_results(
    run_results: dict[str, Any], manifest: dict[str, Any], tables: list[str]
) -> dict[str, str]:
    """``{table: reason}`` for every table with a failed, errored or skipped dbt node."""
    failed: dict[str, list[str]] = {}
    for result in run_results.get("results", []):
        status = str(result.get("status"))
        if status in _OK or status == "warn":
            continue
        name = _node_name(result["unique_id"])
        message = (result.get("message") or status).strip().splitlines()[0][:300]
        reason = f"dbt {result['unique_id'].split('.')[0]} {name} {status}: {message}"
        table = _node_table(result, manifest)
        for target in [table] if table else tables:
            if target in tables:
                failed.setdefault(target, []).append(reason)
    return {
        t: "; ".join(reasons[:5]) + (f" (+{len(reasons) - 5} more)" if len(reasons) > 5 else "")
        for t, reasons in failed.items()
    }


def run_dbt_build(
    run_id: str, tables: list[str], env: dict[str, str], target_name: str = "default"
) -> DbtOutcome:
    """``dbt build`` for ``run_id``; return which of ``tables`` it failed."""
    project = dbt_project_dir()
    target_path = project / "target" / target_name
    dbt = Path(sys.executable).with_name("dbt")
    command = [
        str(dbt),
        "--no-use-colors",
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target_path),
        "--exclude-resource-type",
        "unit_test",  # mapping unit tests belong to CI (make test), not to every hourly run
        "--vars",
        orjson.dumps({"run_id": run_id}).decode(),
    ]
    results_file = target_path / "run_results.json"
    results_file.unlink(missing_ok=True)  # never read an earlier run's results as ours
    log.info("running dbt build for run %s (%d tables)", run_id, len(tables))
    child_env = {**os.environ, **env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    lines: list[str] = []
    with subprocess.Popen(
        command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=project
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            log.info("dbt | %s", line)
        code = proc.wait()
    if not results_file.exists():
        reason = f"dbt did not run (exit {code}): " + " / ".join(lines[-5:])
        return DbtOutcome(False, {t: reason for t in tables}, 0, "\n".join(lines[-20:]))
    run_results = orjson.loads(results_file.read_bytes())
    manifest_file = target_path / "manifest.json"
    manifest = orjson.loads(manifest_file.read_bytes()) if manifest_file.exists() else {}
    if run_results.get("args", {}).get("vars", {}).get("run_id") not in (None, run_id):
        return DbtOutcome(False, {t: "dbt results belong to another run" for t in tables}, 0)
    failed = summarise_results(run_results, manifest, tables)
    if code != 0 and not failed:
        failed = {t: f"dbt build exited with {code}: " + " / ".join(lines[-3:]) for t in tables}
    return DbtOutcome(True, failed, len(run_results.get("results", [])), "\n".join(lines[-20:]))
