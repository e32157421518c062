"""The sync DAG under a real Airflow: REST trigger as the UI does it, Param validation, the scheduler.

One stack for the module (api-server, scheduler, dag-processor, triggerer; LocalExecutor; PostgreSQL
metadata) with ``LEGACY_SYNC_SCHEDULE`` set to every minute, so the scheduler starts runs on its own
once the DAG is unpaused. Runs of one DAG never overlap (``max_active_runs=1``), so the tests look
at their own run's rows only and hold whichever order the scheduler picks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from legacy_sync.registry import TABLES
from tests.e2e.airflow_stack import AirflowStack, FourD, running_stack

pytestmark = pytest.mark.e2e

DAG_ID = "legacy_erp_sync"
USER, PASSWORD = "sync", "e2e-password"
SNAKE = {t.name: t.snake_name for t in TABLES}


@pytest.fixture(scope="module")
def stack(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    dataset = Dataset.generate(3000, seed=5, dirty=0.02)
    erp_url = pg_server.create_database("e2e_sched")
    config = SimulatorConfig(username=USER, password=PASSWORD, licences=3)
    try:
        with (
            SimulatorServer(dataset, config) as sim,
            running_stack(
                pg_server,
                tmp_path_factory.mktemp("airflow-sched"),
                FourD(sim.base_url, USER, PASSWORD),
                erp_url,
                # Read by the DAG file at parse time: the scheduler starts a run every minute.
                extra_env={"LEGACY_SYNC_SCHEDULE": "* * * * *"},
            ) as airflow,
        ):
            yield airflow
    finally:
        pg_server.drop_database(erp_url)


def _logs(erp_url: str, run_id: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(erp_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("select * from legacy_sync.sync_log where run_id = %s", (run_id,)).fetchall()
    return {r["table_name"]: r for r in rows}


def _scalar(erp_url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(erp_url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_a_run_triggered_like_the_ui_syncs_exactly_the_chosen_tables(stack: AirflowStack) -> None:
    conf = {"tables": ["Products", "Customers"], "full_refresh": False}
    run_id = stack.trigger(DAG_ID, conf)
    stack.unpause(DAG_ID)  # a paused DAG keeps manual runs queued

    state = stack.wait_for_run(DAG_ID, run_id, timeout=240)

    logs = _logs(stack.erp_url, run_id)
    assert state == "success", f"{logs}\n{stack.task_instances(DAG_ID, run_id)}"
    assert stack.dag_run(DAG_ID, run_id)["conf"] == conf
    assert set(logs) == {"Products", "Customers"}, "the run synced other tables than the form asked for"
    for name, row in logs.items():
        assert row["status"] in ("COMPLETED", "PARTIALLY_COMPLETED"), (name, row["error_message"])
        assert row["mode"] == "incremental"
        live = _scalar(stack.erp_url, f"select count(*) from erp.{SNAKE[name]} where not is_deleted")
        rejected = _scalar(
            stack.erp_url, "select count(*) from legacy_sync.sync_error where sync_log_id = %s", row["id"]
        )
        assert live > 0, f"erp.{SNAKE[name]} is empty"
        # Whether or not a scheduled run loaded the table first, the log accounts for every live row.
        assert row["records_created"] + row["records_updated"] + row["records_unchanged"] == live, name
        assert row["records_failed"] == rejected, name
        assert row["records_processed"] == (
            row["records_created"] + row["records_updated"] + row["records_unchanged"] + row["records_failed"]
        )
        assert (row["status"] == "PARTIALLY_COMPLETED") == (rejected > 0), name
    extract = [ti for ti in stack.task_instances(DAG_ID, run_id) if ti["task_id"] == "extract_and_land"]
    assert sorted(ti["rendered_map_index"] for ti in extract) == ["Customers", "Products"]


def test_a_conf_that_breaks_a_param_is_refused(stack: AirflowStack) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        stack.trigger(DAG_ID, {"tables": ["NoSuchTable"]})
    assert refused.value.response.status_code == 400
    with pytest.raises(httpx.HTTPStatusError) as refused:
        stack.trigger(DAG_ID, {"full_refresh": "yes please"})
    assert refused.value.response.status_code == 400


def test_the_scheduler_starts_runs_on_its_own(stack: AirflowStack) -> None:
    stack.unpause(DAG_ID)
    runs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = [
            r for r in stack.dag_runs(DAG_ID, run_type=["scheduled"]) if r["state"] in ("success", "failed")
        ]
        if runs:
            break
        time.sleep(2)
    else:
        pytest.fail(f"no scheduled run finished within 240 s: {stack.dag_runs(DAG_ID)}\n{stack.log_tails()}")
    run = runs[0]
    assert run["run_type"] == "scheduled" and run["triggered_by"] != "rest_api"
    logs = _logs(stack.erp_url, run["dag_run_id"])
    assert set(logs) == {t.name for t in TABLES}, "a scheduled run syncs every table (the Param default)"
    assert run["state"] == "success", {name: (r["status"], r["error_message"]) for name, r in logs.items()}
    assert {r["status"] for r in logs.values()} <= {"COMPLETED", "PARTIALLY_COMPLETED"}
