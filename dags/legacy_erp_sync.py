"""Airflow DAG: Incremental sync of the legacy 4D ERP into the ERP database (hourly by default).

Wiring only: the DAG is built by ``legacy_sync.dag_factory`` from the table registry.
Set ``LEGACY_SYNC_SCHEDULE`` to a cron expression to change the schedule.
"""

from legacy_sync.contracts import SYNC_DAG_ID
from legacy_sync.dag_factory import build_sync_dag, schedule_from_env

dag = build_sync_dag(
    SYNC_DAG_ID,
    full=False,
    schedule=schedule_from_env("LEGACY_SYNC_SCHEDULE", "@hourly"),
    description="Legacy 4D ERP -> ERP: incremental sync",
)
