"""Airflow DAG: Full sync of the legacy 4D ERP with delete detection (weekly by default).

Wiring only: the DAG is built by ``legacy_sync.dag_factory`` from the table registry.
Set ``LEGACY_SYNC_FULL_SCHEDULE`` to a cron expression to change the schedule.
"""

from legacy_sync.contracts import FULL_SYNC_DAG_ID
from legacy_sync.dag_factory import build_sync_dag, schedule_from_env

dag = build_sync_dag(
    FULL_SYNC_DAG_ID,
    full=True,
    schedule=schedule_from_env("LEGACY_SYNC_FULL_SCHEDULE", "@weekly"),
    description="Legacy 4D ERP -> ERP: full sync with delete detection",
)
