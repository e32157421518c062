"""Run the dbt project (models + tests) for one sync run and give each table its verdict.

dbt runs as one ``dbt build`` in this process (``dbtRunner``), over the models of the tables that
landed something in this run (every model carries a ``legacy:<Table>`` tag): no interpreter
start-up, one partial parse (``partial_parse.msgpack`` survives between runs in a target
directory per DAG and database: the run id is data in ``legacy_sync.transform_context``, not a
dbt var), one connection pool, and dbt's rule that a failed node skips only what depends on it --
the per-table isolation the sync needs. Its per-node lines go into the task log.

Which table a node concerns is read from the manifest (every model's ``meta.legacy_tables``; a
test concerns its model's tables), never guessed from names, and each failure becomes one line
in words for ``sync_log``: what went wrong, how many records, example keys, what to do. dbt's
node names stay in the task log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from legacy_sync.registry import get_table

log = logging.getLogger(__name__)

_OK = {"success", "pass", "warn", "skipped_without_failure"}
PACKAGE = "legacy_erp_sync"


def dbt_project_dir() -> Path:
    """``LEGACY_SYNC_DBT_PROJECT_DIR``, else ``dbt_project/`` of this checkout."""
    configured = os.environ.get("LEGACY_SYNC_DBT_PROJECT_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "dbt_project"


@dataclass
class TableVerdict:
    """What dbt did to one legacy table in this build."""

    merged: bool = False
    """Its erp model ran: what it wrote is in ``erp`` and is counted."""
    problems: list[str] = field(default_factory=list)

    @property
    def failure(self) -> str | None:
        if not self.problems:
            return None
        shown = "; ".join(self.problems[:3])
        return shown + (
            f" (+{len(self.problems) - 3} more, see the transform log)" if len(self.problems) > 3 else ""
        )


@dataclass(frozen=True)
class DbtOutcome:
    """Each landed table's verdict, and the warning models' relations with their tables."""

    verdicts: dict[str, TableVerdict]
    warning_relations: list[tuple[str, str]]

    @property
    def failed_tables(self) -> dict[str, str]:
        return {t: v.failure for t, v in self.verdicts.items() if v.failure}


# -- from dbt's nodes to words ----------------------------------------------------------------


def node_tables(unique_id: str, manifest: dict[str, Any]) -> list[str]:
    """The legacy tables a node concerns: its own ``meta.legacy_tables``, else (a test) its
    model's, else every model it reads."""
    nodes = manifest.get("nodes", {})
    node = nodes.get(unique_id, {})
    own = node.get("config", {}).get("meta", {}).get("legacy_tables") or node.get("meta", {}).get(
        "legacy_tables"
    )
    if own:
        return list(own)
    parents = [node.get("attached_node")] if node.get("attached_node") else []
    parents = parents or node.get("depends_on", {}).get("nodes", [])
    found: list[str] = []
    for parent in parents:
        for table in nodes.get(parent, {}).get("config", {}).get("meta", {}).get("legacy_tables") or []:
            if table not in found:
                found.append(table)
    return found


def describe_test(node: dict[str, Any], manifest: dict[str, Any]) -> str:
    """A data test in words: which column of which table, and what it checks."""
    meta = node.get("test_metadata") or {}
    kwargs = meta.get("kwargs", {})
    column = kwargs.get("column_name") or node.get("column_name")
    relation = _relation(node, manifest)
    where = f"{relation}.{column}" if column else relation
    name = meta.get("name")
    if name == "unique":
        return f"{where} is not unique"
    if name == "not_null":
        return f"{where} is empty"
    if name == "relationships":
        return f"{where} points to rows missing from {_ref_name(kwargs.get('to', ''))}"
    if name == "not_negative":
        return f"{where} is negative"
    if name == "accepted_values":
        return f"{where} holds a value outside {kwargs.get('values')}"
    if name == "expression_is_true":
        return f"{relation} breaks the rule `{kwargs.get('expression')}`"
    if name == "staged_records_loaded_or_rejected":
        return "records read from 4D in this run were lost between staging and erp"
    if name == "row_checks":
        return f"{relation} breaks one of its row checks"
    return node.get("description") or f"the check {node.get('name')}"


def _relation(node: dict[str, Any], manifest: dict[str, Any]) -> str:
    parent = manifest.get("nodes", {}).get(node.get("attached_node") or "", {})
    return f"{parent.get('schema', '')}.{parent.get('alias') or parent.get('name', '')}".strip(".")


def describe_failures(
    node: dict[str, Any],
    manifest: dict[str, Any],
    failures: Any,
    conninfo: str | None,
    compiled_sql: str | None,
) -> list[str]:
    """A failed data test in words, with how many records and example keys. A ``row_checks`` test
    (every per-row check of one model in one query) gives one line per check that failed, the
    same words as the single test of that check would."""
    if (node.get("test_metadata") or {}).get("name") == "row_checks":
        relation = _relation(node, manifest)
        lines = []
        for column, problem, count, keys in failed_checks(conninfo, compiled_sql):
            where = f"{relation}.{column}" if column else relation
            lines.append(
                f"{where} {problem}: {count} record(s)" + (f" (e.g. {', '.join(keys)})" if keys else "")
            )
        if lines:
            return lines
    keys = example_keys(conninfo, compiled_sql)
    return [
        f"{describe_test(node, manifest)}: {failures} record(s)"
        + (f" (e.g. {', '.join(keys)})" if keys else "")
    ]


def failed_checks(
    conninfo: str | None, compiled_sql: str | None, limit: int = 5
) -> list[tuple[str | None, str, int, list[str]]]:
    """(column, problem, records, example keys) of each check a failed ``row_checks`` test found."""
    if not conninfo or not compiled_sql:
        return []
    query = (
        "select check_column, problem, count(*),"
        f" (array_agg(legacy_id order by legacy_id))[1:{int(limit)}]"
        f" from ({compiled_sql}) as failing group by check_column, problem order by check_column, problem"
    )
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(query)  # type: ignore[arg-type]
            return [
                (column, problem, int(count), [str(k) for k in keys or []])
                for column, problem, count, keys in cur
            ]
    except psycopg.Error as exc:
        log.warning("could not read the failed checks of a test: %s", exc)
        return []


def _ref_name(text: str) -> str:
    # "{{ ref('orders') }}" -> "erp.orders"
    for quote in ("'", '"'):
        if f"ref({quote}" in text:
            return "erp." + text.split(f"ref({quote}", 1)[1].split(quote, 1)[0]
    return text or "its parent table"


def example_keys(conninfo: str | None, compiled_sql: str | None, limit: int = 5) -> list[str]:
    """Example keys of a failing test's rows (its ``legacy_id``, else its first column)."""
    if not conninfo or not compiled_sql:
        return []
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f"select * from ({compiled_sql}) as failing limit {int(limit)}")  # type: ignore[arg-type]
            names = [d.name for d in cur.description or []]
            index = names.index("legacy_id") if "legacy_id" in names else 0
            return [str(row[index]) for row in cur.fetchall()]
    except psycopg.Error as exc:
        log.warning("could not read example keys of a failed check: %s", exc)
        return []


def verdicts_from_results(
    run_results: dict[str, Any], manifest: dict[str, Any], tables: list[str], conninfo: str | None = None
) -> dict[str, TableVerdict]:
    """Each table's verdict from ``run_results.json``, with a readable line per problem."""
    verdicts = {t: TableVerdict() for t in tables}
    nodes = manifest.get("nodes", {})
    failed_by_node: dict[str, list[str]] = {}
    results = run_results.get("results", [])
    for result in results:
        unique_id, status = result["unique_id"], str(result.get("status"))
        if unique_id.startswith("model.") and status in _OK:
            table = _erp_model_table(unique_id)
            if table in verdicts:
                verdicts[table].merged = True
        if status in _OK or status == "skipped":
            continue  # a skipped node is explained below, once its upstream failure is known
        node = nodes.get(unique_id, {})
        if _is_warning_model(node) or _is_warning_model(nodes.get(node.get("attached_node") or "", {})):
            log.warning(
                "the warnings of %s are left out of this run: %s failed (%s)",
                node.get("attached_node") or unique_id,
                unique_id,
                result.get("message"),
            )
            continue
        concerned = [t for t in node_tables(unique_id, manifest) if t in verdicts] or list(verdicts)
        failed_by_node[unique_id] = concerned
        message = (result.get("message") or status).strip().splitlines()[0][:300]
        if unique_id.startswith("test."):
            failures = result.get("failures")
            if status == "error" and (node.get("test_metadata") or {}).get("name") == "row_checks":
                problems = [f"the row checks of {_relation(node, manifest)} could not run: {message}"]
            elif status == "error":
                problems = [f"the check that {describe_test(node, manifest)} could not run: {message}"]
            else:
                compiled = result.get("compiled_code") or node.get("compiled_code")
                problems = describe_failures(node, manifest, failures, conninfo, compiled)
        else:
            relation = f"{node.get('schema', '')}.{node.get('alias') or node.get('name', '')}"
            problems = [
                f"mapping into {relation} failed in the database: {message}; nothing of it was merged"
            ]
        for table in concerned:
            verdicts[table].problems.extend(problems)
    for result in results:
        if str(result.get("status")) != "skipped" or _is_warning_model(nodes.get(result["unique_id"], {})):
            continue
        unique_id = result["unique_id"]
        upstream = _failed_upstream(unique_id, nodes, failed_by_node)
        blamed = sorted({t for node_id in upstream for t in failed_by_node[node_id]})
        for table in [t for t in node_tables(unique_id, manifest) if t in verdicts]:
            if table in blamed and verdicts[table].problems:
                continue  # its own failure already says it
            others = [b for b in blamed if b != table] or blamed
            verdicts[table].problems.append(
                f"not mapped: {', '.join(others) or 'an earlier step'} failed in this run and "
                f"{table} depends on it; nothing more of {table} was merged"
            )
    for table, verdict in verdicts.items():
        if verdict.problems:
            verdict.problems = list(dict.fromkeys(verdict.problems))
            verdict.problems.append(
                "its watermark stays, so the next run reads the same changes again"
                if not verdict.merged
                else f"what was merged is counted; the watermark of {table} stays"
            )
    return verdicts


def _is_warning_model(node: dict[str, Any]) -> bool:
    """Warning models (``warn_*``) only annotate loaded records: when they cannot run, warnings
    are missing from the report, but nothing is lost, so no table fails for it."""
    return node.get("resource_type") == "model" and str(node.get("name", "")).startswith("warn_")


def _erp_model_table(unique_id: str) -> str | None:
    """``model.legacy_erp_sync.order_lines`` -> OrderLines (the table's erp model)."""
    name = unique_id.split(".")[-1]
    from legacy_sync.registry import TABLES

    return next((t.name for t in TABLES if t.snake_name == name), None)


def _failed_upstream(unique_id: str, nodes: dict[str, Any], failed: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(nodes.get(unique_id, {}).get("depends_on", {}).get("nodes", []))
    found: set[str] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in failed:
            found.add(current)
        stack.extend(nodes.get(current, {}).get("depends_on", {}).get("nodes", []))
    # A test that failed on a parent blocks the children too.
    for node_id in failed:
        if node_id.startswith("test.") and nodes.get(node_id, {}).get("attached_node") in seen:
            found.add(node_id)
    return found


def warning_relations(run_results: dict[str, Any], manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(relation name in legacy_transform, table) of the warning models this build refreshed and
    whose own checks passed (a warning without a message or key cannot be recorded)."""
    nodes = manifest.get("nodes", {})
    results = run_results.get("results", [])
    built = {r["unique_id"] for r in results if r.get("status") == "success"}
    checked_badly = {
        nodes.get(r["unique_id"], {}).get("attached_node") for r in results if r.get("status") not in _OK
    }
    found = []
    for unique_id, node in nodes.items():
        if unique_id in built and unique_id not in checked_badly and _is_warning_model(node):
            for table in node.get("config", {}).get("meta", {}).get("legacy_tables") or []:
                found.append((node.get("alias") or node["name"], table))
    return found


# -- running dbt ---------------------------------------------------------------------------------


@dataclass
class DbtInvocation:
    """What one in-process dbt invocation reported, beside the files it wrote."""

    success: bool
    lines: list[str]
    exception: BaseException | None = None
    parse_seconds: float | None = None
    """Start-up + (partial) parse: from the call until dbt reported what it found."""
    partial_parse: str = "unknown"
    """``partial`` (only changed files re-read), ``full`` (a whole parse), or ``unknown``."""
    run_results: dict[str, Any] | None = None
    """``run_results.json`` as written (``results_file``); None when dbt ran nothing."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """``{"nodes": ...}``: the manifest entries of the nodes this invocation ran."""


_DBT_LOCK = threading.Lock()


def invoke_dbt(args: list[str], env: dict[str, str], results_file: Path | None = None) -> DbtInvocation:
    """Run a dbt command in this process (``dbtRunner``): no interpreter start, no re-import of
    dbt and the adapter per build, and the target directory's ``partial_parse.msgpack`` reused.

    With ``results_file`` (a build), dbt writes no JSON artifacts itself (``--no-write-json``):
    its manifest.json holds every node, macro and doc of the project and was written twice per
    build, about a tenth of an hourly run. The run's results are written to ``results_file``
    (dbt's own run_results.json, for people) and returned, with the manifest entries of the
    nodes that ran: all a verdict reads.

    dbt keeps process-wide state (flags, the adapter registry, its event manager): invocations
    are serialised here, and ``env`` (the profile's ``ERP_PG_*``) is put into ``os.environ`` only
    for the call. One invocation per Airflow task is the intended use (each task is a process of
    its own); in the suites and the benchmark, runs follow one another in one process, which
    dbt supports when calls do not overlap.
    """
    from dbt.artifacts.schemas.run import RunExecutionResult
    from dbt.cli.main import dbtRunner

    lines: list[str] = []
    seen: dict[str, Any] = {}
    finished: list[dict[str, Any]] = []
    started = time.perf_counter()

    def on_event(event: Any) -> None:
        name = event.info.name
        if name == "NodeFinished":
            outcome = event.data.run_result
            finished.append(
                {
                    "unique_id": event.data.node_info.unique_id,
                    "status": outcome.status,
                    "message": outcome.message,
                    "failures": outcome.num_failures or None,
                }
            )
        elif name == "FoundStats" and "parse_seconds" not in seen:
            seen["parse_seconds"] = time.perf_counter() - started
        elif name in ("PartialParsingEnabled", "PartialParsingSkipParsing"):
            seen.setdefault("partial_parse", "partial")
        elif name in ("UnableToPartialParse", "PartialParsingNotEnabled", "PartialParsingError"):
            seen["partial_parse"] = "full"
        if event.info.level in ("info", "warn", "error") and event.info.msg:
            line = str(event.info.msg).rstrip()
            lines.append(line)
            log.info("dbt | %s", line)

    overrides = {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    if results_file is not None:
        results_file.unlink(missing_ok=True)  # never read an earlier run's results as ours
        args = [*args, "--no-write-json"]
    with _DBT_LOCK, _environment(overrides):
        result = dbtRunner(callbacks=[on_event]).invoke(["--quiet", "--no-use-colors", *args])
    invocation = DbtInvocation(
        success=bool(result.success),
        lines=lines,
        exception=result.exception,
        parse_seconds=seen.get("parse_seconds"),
        partial_parse=seen.get("partial_parse", "unknown"),
    )
    executed = result.result
    if results_file is not None and isinstance(executed, RunExecutionResult):
        executed.write(str(results_file))
        invocation.run_results = orjson.loads(results_file.read_bytes())
        invocation.manifest = {
            "nodes": {r.node.unique_id: r.node.to_dict(omit_none=True) for r in executed.results}
        }
    elif results_file is not None and finished:
        # dbt raised after running nodes (an on-run-end hook failed): what each node did, from its
        # events, so the merges that ran are still counted (dbt itself then writes no results).
        invocation.run_results = {"results": finished}
        invocation.manifest = {
            "nodes": {r["unique_id"]: {"name": r["unique_id"].split(".")[2]} for r in finished}
        }
    return invocation


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build_selection(tables: list[str]) -> list[str]:
    """The subgraph of one build: the run's context models and the models (with their tests)
    of the tables that landed or retried something."""
    return ["tag:run_context", *(f"tag:legacy:{get_table(t).name}" for t in tables)]


BUILD_EXCLUDE = ["test_type:unit", "tag:whole_erp", "tag:constraint_backed"]
"""Left out of the pipeline's builds: mapping unit tests (CI, ``make test``), whole-ERP checks
and the tests a database constraint already guarantees on every commit (a plain ``dbt test``
still runs both)."""


def run_dbt_build(
    run_id: str,
    tables: list[str],
    env: dict[str, str],
    target_name: str = "default",
    conninfo: str | None = None,
) -> DbtOutcome:
    """``dbt build`` of the landed tables' models and tests for ``run_id``; each table's verdict."""
    project = dbt_project_dir()
    # One target directory per DAG and database: dbt's partial parse state stays valid from run to
    # run, and builds for different databases (test sessions side by side) never read each
    # other's run_results.json. Runs on one database take turns on the ERP lock.
    target_path = project / "target" / target_name / env.get("ERP_PG_DBNAME", "erp")
    args = [
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target_path),
        "--log-path",
        str(project / "logs"),
        # dbt.log at debug level holds every statement of every node, written during the build;
        # the node lines reach the task log (invoke_dbt) anyway.
        "--log-level-file",
        "info",
        "--select",
        *build_selection(tables),
        "--exclude",
        *BUILD_EXCLUDE,
        # Constant: the run id is data (transform_context), so partial parsing stays valid.
        "--vars",
        "{scope: run}",
    ]
    log.info("running dbt build for run %s (%s)", run_id, ", ".join(tables))
    started = time.perf_counter()
    # The run id as a constant in the executed SQL (macros/sync_context.sql: current_run_id), so
    # the planner finds the rows this run touched by index; never read while dbt parses.
    outcome = invoke_dbt(args, {**env, "LEGACY_SYNC_RUN_ID": run_id}, target_path / "run_results.json")
    log.info(
        "dbt build took %.1fs, of which start-up and %s parse %.1fs",
        time.perf_counter() - started,
        outcome.partial_parse,
        outcome.parse_seconds or float("nan"),
    )
    run_results, manifest = outcome.run_results, outcome.manifest
    if run_results is None:
        detail = " / ".join(outcome.lines[-5:]) or repr(outcome.exception)
        reason = f"dbt did not run: {detail}"
        return DbtOutcome({t: TableVerdict(False, [reason]) for t in tables}, [])
    verdicts = verdicts_from_results(run_results, manifest, tables, conninfo)
    if not outcome.success and not any(v.problems for v in verdicts.values()):
        detail = " / ".join(outcome.lines[-3:]) or repr(outcome.exception)
        reason = f"dbt build did not succeed: {detail}"
        for verdict in verdicts.values():
            verdict.problems.append(reason)
    return DbtOutcome(verdicts, warning_relations(run_results, manifest))
