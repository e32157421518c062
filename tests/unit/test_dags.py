"""DAG integrity and policies: every DAG imports with dummy connections and follows the house rules."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from legacy_sync.registry import TABLE_NAMES

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {"legacy_erp_sync": "@hourly", "legacy_erp_full_sync": "@weekly"}
HELD_DELETES = "legacy_erp_held_deletes"
CUTOVER = {
    "legacy_erp_diff": "@weekly",
    "legacy_erp_freshness": "*/15 * * * *",
    "legacy_erp_schema_drift": None,
}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {*EXPECTED, HELD_DELETES, *CUTOVER}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_policies(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and "triage" in dag.doc_md.lower()
    assert "legacy-4d" in dag.tags
    assert dag.start_date is not None and dag.start_date.tzinfo is not None
    assert dag.schedule == EXPECTED[dag_id]
    deadlines = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert deadlines and deadlines[0].interval.total_seconds() >= 3600  # alert when a run drags on
    extract = dag.get_task("extract_and_land")
    assert extract.pool == "legacy_4d"
    assert extract.retries >= 1
    for task_id in ("transform", "summarize"):  # they must run whatever happened upstream
        assert dag.get_task(task_id).trigger_rule == "all_done"


def test_trigger_form_params(dagbag: DagBag) -> None:
    params = dagbag.dags["legacy_erp_sync"].params
    assert params["full_refresh"] is False
    assert params["tables"] == list(TABLE_NAMES)
    schema = params.get_param("tables").schema
    assert schema["items"]["enum"] == list(TABLE_NAMES)
    assert params["replay_errors"] is False
    assert params["keys"] == [] and params["apply_held_deletes"] is False
    assert "full_refresh" not in dagbag.dags["legacy_erp_full_sync"].params


def test_held_deletions_wait_for_a_person(dagbag: DagBag) -> None:
    sync = dagbag.dags["legacy_erp_sync"]
    assert sync.get_task("deletions_held").trigger_rule == "all_done"  # even after a failed table
    assert sync.get_task("request_approval").trigger_dag_id == HELD_DELETES
    # beside the summary: a person hears of held deletions even when a table failed
    assert sync.get_task("deletions_held").upstream_task_ids == {"reconcile"}
    held = dagbag.dags[HELD_DELETES]
    assert held.schedule is None
    decide = held.get_task("decide")
    assert type(decide).__name__ == "HITLBranchOperator"
    assert sorted(decide.downstream_task_ids) == ["apply", "discard"]


def test_schedule_is_overridable_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGACY_SYNC_SCHEDULE", "15 */2 * * *")
    bag = DagBag(dag_folder=str(DAGS_DIR / "legacy_erp_sync.py"))
    assert bag.dags["legacy_erp_sync"].schedule == "15 */2 * * *"


@pytest.mark.parametrize("path", sorted(DAGS_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_dag_files_only_wire(path: Path) -> None:
    """No work at parse time: a DAG file imports the factory (and the DAG id) and calls it, nothing else."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        assert isinstance(node, ast.Expr | ast.ImportFrom | ast.Import | ast.Assign), ast.dump(node)[:80]
    imported = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    factories = imported - {"legacy_sync.contracts"}
    assert len(factories) == 1 and factories <= {"legacy_sync.dag_factory", "legacy_sync.cutover_dags"}


def test_cutover_dags(dagbag: DagBag) -> None:
    """Issue 18: the diff (coverage first), the freshness watchdog, drift approval, the run's digest."""
    for dag_id, schedule in CUTOVER.items():
        dag = dagbag.dags[dag_id]
        assert dag.schedule == schedule and dag.catchup is False and dag.max_active_runs == 1
        assert "cutover" in dag.tags and dag.doc_md
    diff = dagbag.dags["legacy_erp_diff"]
    assert diff.get_task("read_4d").pool == "legacy_4d" and diff.get_task("coverage").pool == "legacy_4d"
    assert diff.get_task("compare").trigger_rule == "all_done" == diff.get_task("finish").trigger_rule
    assert diff.params["tables"] == list(TABLE_NAMES)
    assert type(dagbag.dags["legacy_erp_schema_drift"].get_task("decide")).__name__ == "ApprovalOperator"
    assert dagbag.dags["legacy_erp_schema_drift"].get_task("decide").downstream_task_ids == {"accept"}
    for dag_id in EXPECTED:
        sync = dagbag.dags[dag_id]
        assert sync.get_task("send_digest").trigger_rule == "all_done"  # a digest whatever happened
        assert sync.get_task("send_digest").upstream_task_ids == {"summarize"}
        assert sync.get_task("request_drift_approval").trigger_dag_id == "legacy_erp_schema_drift"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_changed_erp_tables_are_announced_even_after_a_failed_table(dagbag: DagBag, dag_id: str) -> None:
    from airflow.sdk import AssetAlias

    announce = dagbag.dags[dag_id].get_task("announce_changes")
    assert announce.trigger_rule == "all_done"
    assert announce.upstream_task_ids == {"reconcile"}  # beside the summary
    # Through an alias: Airflow emits an event for every Asset a task declares when it succeeds.
    assert announce.outlets == [AssetAlias("legacy_erp_sync.erp_changes")]
    assert dagbag.dags[HELD_DELETES].get_task("apply").outlets == announce.outlets


def test_example_consumer_is_off_unless_asked_for_and_then_starts_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk import Asset

    example = DAGS_DIR / "examples" / "legacy_erp_products_consumer.py"
    monkeypatch.delenv("LEGACY_SYNC_EXAMPLE_DAGS", raising=False)
    assert DagBag(dag_folder=str(example)).dags == {}
    monkeypatch.setenv("LEGACY_SYNC_EXAMPLE_DAGS", "true")
    bag = DagBag(dag_folder=str(example))
    assert bag.import_errors == {}
    dag = bag.dags["legacy_erp_example_products_consumer"]
    assert dag.is_paused_upon_creation is True
    assert dag.timetable.asset_condition.objects == (Asset("erp.products"),)


# Needed only when a task runs, never to parse a DAG file (issue 15: each file parses in < 0.5 s).
RUN_TIME_ONLY = (
    "psycopg",
    "dbt",
    "pandas",
    "orjson",
    "legacy_sync.ledger",
    "legacy_sync.pipeline",
    "legacy_sync.landing",
    "legacy_sync.dbt_build",
    "legacy_sync.erp_db",
    "legacy_sync.hook",
    "legacy_sync.fourd",
    "legacy_sync.cutover_ledger",
    "legacy_sync.diff",
    "legacy_sync.digest",
    "legacy_sync.notify",
    "legacy_sync.monitor",
)
# Airflow modules only the DAGs that declare their operator may import.
DECLARED_BY = {"airflow.providers.standard.operators.hitl": {HELD_DELETES, "legacy_erp_schema_drift"}}


def test_dag_files_import_no_run_time_module_at_parse_time() -> None:
    """Each DAG file parsed in turn in a fresh interpreter, as ``airflow dags report`` does (the sync
    DAG files first, so they are charged for what they import themselves): a module a task needs
    only when it runs must not be imported while parsing, nor the operators of another DAG."""
    files = sorted(DAGS_DIR.rglob("*.py"), key=lambda p: (p.stem not in EXPECTED, p.name))
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "seen = set(sys.modules); out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    bag = DagBag(dag_folder=path)\n"
        "    assert not bag.import_errors, bag.import_errors\n"
        "    out[path] = {'dags': sorted(bag.dags), 'new': sorted(set(sys.modules) - seen)}\n"
        "    seen = set(sys.modules)\n"
        "print(json.dumps({'before': sorted(set(sys.modules) - {m for v in out.values() for m in v['new']}),"
        " 'files': out}))\n"
    )
    env = {**os.environ, "LEGACY_SYNC_EXAMPLE_DAGS": "true"}
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, files)], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    def matches(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    # Parsing needs none of them before the first DAG file either (else this test would prove nothing).
    assert not [m for m in report["before"] for p in RUN_TIME_ONLY if matches(m, p)]
    offenders = {
        f"{Path(path).name} imports {module}"
        for path, parsed in report["files"].items()
        for module in parsed["new"]
        if any(matches(module, p) for p in RUN_TIME_ONLY)
        or any(matches(module, p) and not set(parsed["dags"]) <= dags for p, dags in DECLARED_BY.items())
    }
    assert not offenders, sorted(offenders)
    assert all(parsed["dags"] for parsed in report["files"].values())  # every file parsed into a DAG
