"""Scale-out proven: docker-compose's topology run natively with the CeleryExecutor.

The services are started from ``deploy/services.py``, the definition ``docker-compose.yml`` is
generated from (``tests/unit/test_compose.py`` keeps the two equal): a broker, PostgreSQL for
Airflow's metadata and Celery's results, two Celery workers, scheduler, dag-processor, triggerer
and api-server. A full sync is triggered through the REST API, as the UI does; the mapped extract
tasks must land on both workers and the ERP database must hold every source record (loaded or
rejected with a reason).

Broker, in order: ``LEGACY_SYNC_TEST_REDIS_URL`` (CI's Redis; a queue of our own so other runs on
the same Redis cannot take our tasks), else a private ``redis-server`` when one is on PATH, else
kombu's SQLAlchemy transport on the test's PostgreSQL (nothing extra to install; a warning says
so). ``LEGACY_SYNC_TEST_BROKER=postgres`` forces the last.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.native import NativeDeployment, free_port, native_site, sqlalchemy_url
from deploy.services import ErpDatabase, FourDServer
from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from legacy_sync.registry import TABLES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "legacy_erp_full_sync"
USER, PASSWORD = "sync", "scaleout-password"
WORKERS = 2
TUNING = {
    # Test pacing only: a scheduler that loops every second.
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    # Deployment knobs: schedules whose last tick lies before the DAGs' start date, so unpausing
    # creates no scheduled run in the way of the triggered one (max_active_runs=1).
    "LEGACY_SYNC_SCHEDULE": "0 0 29 2 *",
    "LEGACY_SYNC_FULL_SCHEDULE": "0 0 29 2 *",
}


def _raise_on_sigterm(signum: int, frame: object) -> None:
    # As in tests/conftest.py: SIGTERM becomes an exception, so every teardown below runs.
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def celery_broker(pg_server: Any, home: Path) -> Iterator[tuple[str, str, str]]:
    """``(broker_url, queue, description)`` for this run; see the module docstring for the order."""
    forced = os.environ.get("LEGACY_SYNC_TEST_BROKER", "")
    external = os.environ.get("LEGACY_SYNC_TEST_REDIS_URL")
    redis_server = shutil.which("redis-server")
    if external and forced != "postgres":
        yield (
            external,
            f"scaleout-{uuid.uuid4().hex[:8]}",
            f"Redis at {external} (LEGACY_SYNC_TEST_REDIS_URL)",
        )
    elif redis_server and forced != "postgres":
        port = free_port()
        with (home / "redis.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    redis_server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {home / 'redis.log'}")
                time.sleep(0.1)
            yield f"redis://127.0.0.1:{port}/0", "default", f"a private redis-server on port {port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    else:
        url = pg_server.create_database("broker")
        warnings.warn(
            "Celery test broker: kombu's SQLAlchemy transport on PostgreSQL"
            + (
                " (LEGACY_SYNC_TEST_BROKER=postgres)"
                if forced == "postgres"
                else " (neither LEGACY_SYNC_TEST_REDIS_URL nor redis-server on PATH)"
            ),
            UserWarning,
            stacklevel=1,
        )
        try:
            yield (
                sqlalchemy_url(url, "sqla+postgresql+psycopg"),
                "default",
                "kombu's SQLAlchemy transport on PostgreSQL",
            )
        finally:
            pg_server.drop_database(url)


class ScaleOut:
    """The running deployment, its simulator and ERP database."""

    def __init__(self, deployment: NativeDeployment, sim: SimulatorServer, erp_url: str, broker: str) -> None:
        self.deployment = deployment
        self.sim = sim
        self.erp_url = erp_url
        self.broker = broker

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.erp_url) as conn:
            return conn.execute(sql, params).fetchall()


def _celery_provider_error() -> str | None:
    """Why the Celery provider cannot run with the installed Celery, if it cannot."""
    try:
        import airflow.providers.celery.executors.celery_executor_utils  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def scaleout(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    error = _celery_provider_error()
    if error:
        # Celery 5.7 removed celery.backends.database.retry, which apache-airflow-providers-celery
        # 3.26 imports: every worker would die at start-up with a misleading message.
        pytest.fail(f"the Celery provider does not import with the installed celery: {error}")
    home = tmp_path_factory.mktemp("celery")
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    erp_url = pg_server.create_database("scaleout")
    metadata_url = pg_server.create_database("airflow")
    dataset = Dataset.generate(3000, seed=3, dirty=0.02)
    try:
        with (
            SimulatorServer(dataset, SimulatorConfig(username=USER, password=PASSWORD, licences=3)) as sim,
            celery_broker(pg_server, home) as (broker_url, queue, broker),
        ):
            site = native_site(
                home=home,
                project_root=PROJECT_ROOT,
                metadata_url=metadata_url,
                broker_url=broker_url,
                queue=queue,
                # >= 2 slots so both workers get extract tasks at once (3 licences in the simulator).
                pool_slots=3,
                fourd=FourDServer.at(sim.base_url, USER, PASSWORD),
                erp=ErpDatabase.at(erp_url),
            )
            with NativeDeployment(site, home, workers=WORKERS, tuning=TUNING) as deployment:
                deployment.wait_for_dags([DAG_ID])
                yield ScaleOut(deployment, sim, erp_url, broker)
    finally:
        signal.signal(signal.SIGTERM, previous)
        pg_server.drop_database(metadata_url)
        pg_server.drop_database(erp_url)


@dataclass
class FullSync:
    """One triggered run of the full sync and where its task instances ran."""

    run_id: str
    state: str
    seconds: float
    task_instances: list[dict[str, Any]]
    by_worker: dict[str, set[tuple[str, int]]]


@pytest.fixture(scope="module")
def full_sync(scaleout: ScaleOut) -> FullSync:
    deployment = scaleout.deployment
    started = time.monotonic()
    deployment.unpause(DAG_ID)
    run_id = deployment.trigger(DAG_ID)
    state = deployment.wait_for_run(DAG_ID, run_id, timeout=240)
    seconds = time.monotonic() - started
    by_worker = {node: tasks_run_by(deployment, node, run_id) for node in deployment.workers}
    sync = FullSync(run_id, state, seconds, deployment.task_instances(DAG_ID, run_id), by_worker)
    # The test's report (shown with -s): over which broker, how long, where the work went.
    print(
        f"\nCelery scale-out over {scaleout.broker}: the full sync took {seconds:.0f}s; "
        + "; ".join(f"{node}: {sorted(f'{t}[{i}]' for t, i in ran)}" for node, ran in by_worker.items())
    )
    return sync


# Airflow's Celery task logs each workload it runs: "Executing workload in Celery: ...
# ti=TaskInstanceDTO(... task_id='x', dag_id=..., run_id='r', ..., map_index=3, ...".
_WORKLOAD = re.compile(r"task_id='(?P<task>[^']+)'.*?run_id='(?P<run>[^']+)'.*?map_index=(?P<index>-?\d+)")


def tasks_run_by(deployment: NativeDeployment, node: str, run_id: str) -> set[tuple[str, int]]:
    """(task_id, map_index) of every task instance of ``run_id`` the worker ``node`` executed."""
    return {
        (m["task"], int(m["index"]))
        for line in deployment.worker_log(node).splitlines()
        if "Executing workload" in line and (m := _WORKLOAD.search(line)) and m["run"] == run_id
    }


def test_full_sync_succeeds_with_work_on_both_celery_workers(scaleout: ScaleOut, full_sync: FullSync) -> None:
    tis = full_sync.task_instances
    summary = sorted((ti["task_id"], ti["map_index"], ti["state"]) for ti in tis)
    assert full_sync.state == "success", (
        f"run {full_sync.state} (broker: {scaleout.broker}); tasks: {summary}\n"
        + scaleout.deployment.log_tails()
    )
    # Nothing was held and no table froze, so both approval requests are skipped; the rest succeeded.
    assert {(ti["task_id"], ti["state"]) for ti in tis if ti["state"] != "success"} <= {
        ("request_approval", "skipped"),
        ("request_drift_approval", "skipped"),
    }, summary
    executed = [ti for ti in tis if ti["state"] == "success"]
    extracts = {(ti["task_id"], ti["map_index"]) for ti in tis if ti["task_id"] == "extract_and_land"}
    assert len(extracts) == len(TABLES)
    ran = list(full_sync.by_worker.values())
    # Every task instance of the run went through one of our workers, and through one only.
    assert set().union(*ran) == {(ti["task_id"], ti["map_index"]) for ti in executed}, full_sync.by_worker
    assert sum(len(r) for r in ran) == len(executed), full_sync.by_worker
    for node, tasks in full_sync.by_worker.items():
        assert tasks & extracts, (
            f"{node} ran no extract task (broker: {scaleout.broker}): {full_sync.by_worker}"
        )


def test_erp_database_holds_every_source_record(scaleout: ScaleOut, full_sync: FullSync) -> None:
    logs = {
        name: (log_id, status, processed)
        for log_id, name, status, processed in scaleout.query(
            "select id, table_name, status, records_processed from legacy_sync.sync_log where run_id = %s",
            full_sync.run_id,
        )
    }
    assert set(logs) == {t.name for t in TABLES}
    dataset = scaleout.sim.dataset
    for table in TABLES:
        log_id, status, processed = logs[table.name]
        source = dataset.count(table.name)
        loaded = scaleout.query(f"select count(*) from erp.{table.snake_name} where not is_deleted")[0][0]
        rejected = scaleout.query(
            "select count(*) from legacy_sync.sync_error where sync_log_id = %s", log_id
        )[0][0]
        assert loaded + rejected == source, f"{table.name}: {loaded} loaded + {rejected} rejected != {source}"
        assert processed == source
        assert status == ("PARTIALLY_COMPLETED" if rejected else "COMPLETED"), table.name
