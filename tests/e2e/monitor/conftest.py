"""One Airflow stack for both monitor modules (a stack costs about a minute to start here).

``synced`` is that stack after real sync runs (what ``test_monitor_ui.py`` describes): every
component (api-server, scheduler, dag-processor, triggerer; LocalExecutor), the 4D simulator, and
the auth manager ``test_monitor_access.py`` needs: Airflow's simple auth manager extended to deny
two users (tests/e2e/denying_auth_manager.py), for more users than the admin. For every user the
extension does not deny it answers as the simple auth manager does, so the browser's admin sees
what it would see without it.

The fixtures are package-scoped: the stack stops when the last test of this folder has run, not at
the end of the session (an idle scheduler would slow the modules after it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from tests.e2e.airflow_stack import PROJECT_ROOT, AirflowStack, FourD, running_stack

DAG_ID = "legacy_erp_sync"
DIFF_DAG_ID = "legacy_erp_diff"
FRESHNESS_DAG_ID = "legacy_erp_freshness"
SIM_USER, SIM_PASSWORD = "sync", "e2e-password"
# test_monitor_access.py's users: roles of the simple auth manager; "outsider" and "hourly" are the
# ones tests/e2e/denying_auth_manager.py denies.
USERS = "admin:admin,viewer:viewer,operator:user,outsider:viewer,hourly:op"


@dataclass
class Synced:
    stack: AirflowStack
    scheduled_run: str
    failed_run: str
    diff_run: str
    planted_product: str
    admin_url: str
    """The ERP database as its superuser (the stack's erp_postgres_default is the sync's role)."""


def wait_for_first_scheduled_run(stack: AirflowStack, dag_id: str = DAG_ID, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scheduled = stack.dag_runs(dag_id, run_type=["scheduled"])
        if scheduled:
            run_id = str(scheduled[0]["dag_run_id"])
            assert stack.wait_for_run(dag_id, run_id, timeout) == "success"
            return run_id
        time.sleep(1)
    raise AssertionError(f"the scheduler started no run\n{stack.log_tails()}")


@pytest.fixture(scope="package")
def synced(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    """The stack after two sync runs and the cutover DAGs' runs (see test_monitor_ui.py)."""
    erp_url = pg_server.create_sync_database("e2e_monitor")
    config = SimulatorConfig(username=SIM_USER, password=SIM_PASSWORD, licences=3)
    try:
        with (
            SimulatorServer(Dataset.generate(2000, seed=7, dirty=0.03), config) as sim,
            running_stack(
                pg_server,
                tmp_path_factory.mktemp("airflow-monitor"),
                FourD(sim.base_url, SIM_USER, SIM_PASSWORD),
                erp_url,
                extra_env={
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
                    "AIRFLOW__CORE__AUTH_MANAGER": "tests.e2e.denying_auth_manager.DenyingAuthManager",
                    "PYTHONPATH": str(PROJECT_ROOT),
                    "PYTHONUNBUFFERED": "1",  # test_monitor_access.py reads the api-server's log
                    # The diff only on demand here; a table is stale one minute after its last sync.
                    "LEGACY_SYNC_DIFF_SCHEDULE": "none",
                    "LEGACY_SYNC_STALE_AFTER_MINUTES": "1",
                },
            ) as stack,
        ):
            stack.unpause(DAG_ID)  # the scheduler starts this hour's run at once
            scheduled_run = wait_for_first_scheduled_run(stack)
            sim.schema.add_field("Customers", "Region", "string", "EU")  # the 4D developer adds a field
            sim.faults.set("refuse_table", table="Invoices", hidden=True)
            try:
                failed_run = stack.trigger(DAG_ID, {})
                assert stack.wait_for_run(DAG_ID, failed_run, 240) == "failed"
            finally:
                sim.faults.clear()
            with psycopg.connect(erp_url, autocommit=True) as conn:  # a difference for the diff to find
                [(planted,)] = conn.execute(
                    "update erp.products set list_price = list_price + 1"
                    " where id = (select min(id) from erp.products where not is_deleted) returning legacy_id"
                ).fetchall()
            stack.unpause(DIFF_DAG_ID)
            diff_run = stack.trigger(DIFF_DAG_ID, {})
            assert stack.wait_for_run(DIFF_DAG_ID, diff_run, 300) == "success"
            # Invoices' last successful sync must be older than the one-minute limit when the
            # watchdog's first run looks (a fast machine gets here within the minute).
            with psycopg.connect(erp_url) as conn:
                [(age,)] = conn.execute(
                    "select extract(epoch from now() - max(end_time)) from legacy_sync.sync_log"
                    " where table_name = 'Invoices' and status in ('COMPLETED', 'PARTIALLY_COMPLETED')"
                ).fetchall()
            time.sleep(max(0.0, 65 - float(age)))
            stack.unpause(FRESHNESS_DAG_ID)  # its first run starts at once: Invoices is stale
            wait_for_first_scheduled_run(stack, FRESHNESS_DAG_ID)
            yield Synced(
                stack, scheduled_run, failed_run, diff_run, planted, pg_server.admin_url_for(erp_url)
            )
    finally:
        pg_server.drop_database(erp_url)
