"""Issue 19 under a real Airflow: the sync's OpenLineage events (file transport) and the ERP table
Assets that other DAGs schedule on.

One stack for the module (api-server, scheduler, dag-processor, triggerer; LocalExecutor, each task
its own process, as in a deployment) with the OpenLineage provider writing every event to files,
and the example consumer DAG (``LEGACY_SYNC_EXAMPLE_DAGS``) scheduled on ``erp.products``. The
tests build on each other: the first sync loads everything, the next changes only orders, the last
changes one product.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from legacy_sync.registry import TABLES
from tests.e2e.airflow_stack import AirflowStack, FourD, running_stack

pytestmark = pytest.mark.e2e

DAG_ID = "legacy_erp_sync"
CONSUMER = "legacy_erp_example_products_consumer"
USER, PASSWORD = "sync", "e2e-password"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.generate(1000, seed=19, dirty=0.02)


@pytest.fixture(scope="module")
def sim(dataset: Dataset) -> Iterator[SimulatorServer]:
    with SimulatorServer(dataset, SimulatorConfig(username=USER, password=PASSWORD, licences=3)) as server:
        yield server


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openlineage")


@pytest.fixture(scope="module")
def stack(
    pg_server: Any, sim: SimulatorServer, events_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStack]:
    erp_url = pg_server.create_sync_database("e2e_lineage")
    try:
        with running_stack(
            pg_server,
            tmp_path_factory.mktemp("airflow-lineage"),
            FourD(sim.base_url, USER, PASSWORD),
            erp_url,
            extra_env={
                # OpenLineage: one JSON file per event (parallel tasks never share a file).
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(events_dir / "event"), "append": False}
                ),
                "AIRFLOW__OPENLINEAGE__NAMESPACE": "legacy-erp-sync-e2e",
                "LEGACY_SYNC_EXAMPLE_DAGS": "true",
                # Once a year: unpausing starts exactly one scheduled run (the first load), then
                # only the runs the tests trigger.
                "LEGACY_SYNC_SCHEDULE": "0 0 1 1 *",
            },
        ) as airflow:
            yield airflow
    finally:
        pg_server.drop_database(erp_url)


@pytest.fixture(scope="module")
def first_run(stack: AirflowStack) -> str:
    """The first load: the scheduled run that unpausing the sync starts (the consumer listens)."""
    stack.unpause(CONSUMER)
    stack.unpause(DAG_ID)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = stack.dag_runs(DAG_ID)
        if runs:
            state = stack.wait_for_run(DAG_ID, runs[0]["dag_run_id"], timeout=deadline - time.monotonic())
            assert state == "success", stack.task_instances(DAG_ID, runs[0]["dag_run_id"])
            return str(runs[0]["dag_run_id"])
        time.sleep(1)
    pytest.fail(f"unpausing {DAG_ID} started no run\n{stack.log_tails()}")


def _sync_log(stack: AirflowStack, run_id: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(stack.erp_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("select * from legacy_sync.sync_log where run_id = %s", (run_id,)).fetchall()
    return {r["table_name"]: r for r in rows}


def _events_of(events_dir: Path, run_id: str, jobs: set[str], timeout: float = 90) -> list[dict[str, Any]]:
    """The COMPLETE events of ``run_id``'s tasks named in ``jobs``, once each has written one."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = []
        for path in sorted(events_dir.glob("event-*.json")):
            event = json.loads(path.read_text())
            airflow = (event.get("run") or {}).get("facets", {}).get("airflow") or {}
            if (
                event.get("eventType") == "COMPLETE"
                and (airflow.get("dagRun") or {}).get("run_id") == run_id
                and event["job"]["name"] in jobs
            ):
                found.append(event)
        if {e["job"]["name"] for e in found} == jobs:
            return found
        time.sleep(2)
    names = sorted({e["job"]["name"] for e in found})
    pytest.fail(f"OpenLineage events of {sorted(jobs)} not all written within {timeout:.0f}s (got {names})")


def _consumer_runs(stack: AirflowStack) -> list[dict[str, Any]]:
    return [r for r in stack.dag_runs(CONSUMER) if r["run_type"] == "asset_triggered"]


def _wait_for_consumer_runs(stack: AirflowStack, count: int, timeout: float = 180) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = _consumer_runs(stack)
        if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(1)
    pytest.fail(f"expected {count} finished consumer run(s), got {runs}\n{stack.log_tails()}")


def _asset_events(stack: AirflowStack, run_id: str) -> dict[str, dict[str, Any]]:
    """{asset name: event} of the events ``run_id`` emitted."""
    events = stack.get("/api/v2/assets/events", params={"source_run_id": run_id, "limit": 100})
    return {e["name"]: e for e in events["asset_events"]}


def _triggering_events(stack: AirflowStack, run: dict[str, Any]) -> list[dict[str, Any]]:
    path = f"/api/v2/dags/{CONSUMER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    return list(stack.get(path)["asset_events"])


def test_a_sync_run_writes_openlineage_events_naming_what_it_read_and_wrote(
    stack: AirflowStack, first_run: str, events_dir: Path, sim: SimulatorServer
) -> None:
    jobs = {f"{DAG_ID}.{task}" for task in ("extract_and_land", "transform", "reconcile")}
    events = _events_of(events_dir, first_run, jobs)
    port = int(sim.base_url.rsplit(":", 1)[1])
    database = stack.erp_url.rsplit("/", 1)[1]
    log = _sync_log(stack, first_run)
    with psycopg.connect(stack.erp_url) as conn:
        landed = dict(
            conn.execute(
                "select table_name, records_landed from legacy_sync.landing_batch where run_id = %s",
                (first_run,),
            ).fetchall()
        )

    extracts = [e for e in events if e["job"]["name"] == f"{DAG_ID}.extract_and_land"]
    assert len(extracts) == len(TABLES), "one COMPLETE event per mapped extract"
    for event in extracts:
        # Each task is its own process here: exactly its own table, nothing another task read.
        (read,) = event["inputs"]
        table = next(t for t in TABLES if t.name == read["name"])
        assert read["namespace"] == f"legacy4d://127.0.0.1:{port}"
        assert read["facets"]["schema"]["fields"][0]["name"] == table.key
        (wrote,) = event["outputs"]
        assert wrote["name"] == f"{database}.legacy_staging.{table.raw_table}"
        assert wrote["namespace"].startswith("postgres://")
        assert wrote["outputFacets"]["outputStatistics"]["rowCount"] == landed[table.name] > 0
    assert {e["inputs"][0]["name"] for e in extracts} == {t.name for t in TABLES}

    (transform,) = [e for e in events if e["job"]["name"] == f"{DAG_ID}.transform"]
    assert {i["name"] for i in transform["inputs"]} == {
        f"{database}.legacy_staging.{t.raw_table}" for t in TABLES
    }
    written = {o["name"]: o["outputFacets"]["outputStatistics"]["rowCount"] for o in transform["outputs"]}
    for table in TABLES:
        row = log[table.name]
        expected = row["records_created"] + row["records_updated"] + row["records_deleted"]
        assert written[f"{database}.erp.{table.snake_name}"] == expected > 0, table.name
    assert written[f"{database}.erp.categories"] > 0

    (reconcile,) = [e for e in events if e["job"]["name"] == f"{DAG_ID}.reconcile"]
    checked = {
        i["name"]: i["inputFacets"]["dataQualityAssertions"]["assertions"] for i in reconcile["inputs"]
    }
    assert set(checked) == {f"{database}.erp.{t.snake_name}" for t in TABLES}
    for assertions in checked.values():
        by_kind = {a["assertion"]: a for a in assertions}
        assert by_kind["no_records_lost"]["success"] is True
        assert by_kind["row_count"]["success"] is True


def test_the_consumer_runs_after_a_sync_that_changed_products(stack: AirflowStack, first_run: str) -> None:
    (run,) = _wait_for_consumer_runs(stack, 1)
    assert run["state"] == "success", stack.task_instances(CONSUMER, run["dag_run_id"])
    (event,) = [e for e in _triggering_events(stack, run) if e["name"] == "erp.products"]
    products = _sync_log(stack, first_run)["Products"]
    assert event["source_run_id"] == first_run and event["source_task_id"] == "announce_changes"
    assert event["extra"]["run_id"] == first_run
    assert (event["extra"]["created"], event["extra"]["updated"], event["extra"]["deleted"]) == (
        products["records_created"],
        0,
        0,
    )
    assert products["records_created"] > 0
    # The first load changed every ERP table: one event each.
    assert set(_asset_events(stack, first_run)) == {
        "erp.categories",
        *(f"erp.{t.snake_name}" for t in TABLES),
    }


def test_a_sync_that_changed_only_orders_does_not_run_the_consumer(
    stack: AirflowStack, first_run: str, dataset: Dataset
) -> None:
    before = len(_wait_for_consumer_runs(stack, 1))
    defects = {(t, k) for t, k, _ in dataset.planted_defects()}
    order = next(k for k in sorted(dataset.keys("Orders")) if ("Orders", k) not in defects)
    dataset.update("Orders", order, {"Freight": 99.5})
    run_id = stack.trigger(DAG_ID)
    assert stack.wait_for_run(DAG_ID, run_id, timeout=300) == "success"

    events = _asset_events(stack, run_id)
    assert set(events) == {"erp.orders"}, "only the table whose content changed is announced"
    assert (events["erp.orders"]["extra"]["updated"], events["erp.orders"]["extra"]["created"]) == (1, 0)
    time.sleep(10)  # the scheduler would have started the consumer within a few loops
    assert len(_consumer_runs(stack)) == before


def test_a_sync_that_changed_a_product_runs_the_consumer_with_its_counts(
    stack: AirflowStack, first_run: str, dataset: Dataset
) -> None:
    before = len(_wait_for_consumer_runs(stack, 1))
    defects = {(t, k) for t, k, _ in dataset.planted_defects()}
    product = next(k for k in sorted(dataset.keys("Products")) if ("Products", k) not in defects)
    dataset.update("Products", product, {"Color": "Teal"})
    run_id = stack.trigger(DAG_ID)
    assert stack.wait_for_run(DAG_ID, run_id, timeout=300) == "success"

    runs = _wait_for_consumer_runs(stack, before + 1)
    newest = max(runs, key=lambda r: r["run_after"])
    assert newest["state"] == "success"
    (event,) = _triggering_events(stack, newest)
    extra = event["extra"]
    assert extra["run_id"] == run_id and extra["table"] == "erp.products"
    assert (extra["created"], extra["updated"], extra["deleted"]) == (0, 1, 0)
    log = _sync_log(stack, run_id)["Products"]
    assert (extra["watermark_from"], extra["watermark_to"]) == (log["watermark_from"], log["watermark_to"])
    assert extra["watermark_from"] is not None
    # The consumer found exactly the product that sync run wrote, through the audit columns.
    (refresh,) = stack.task_instances(CONSUMER, newest["dag_run_id"])
    assert refresh["state"] == "success"
    ti_path = f"/api/v2/dags/{CONSUMER}/dagRuns/{newest['dag_run_id']}/taskInstances/refresh_price_list"
    xcom = stack.get(f"{ti_path}/xcomEntries/return_value")
    value = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])
    assert value["sync_runs"] == [run_id] and value["products_to_refresh"] == 1
