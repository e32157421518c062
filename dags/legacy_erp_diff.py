"""Airflow DAG: legacy 4D ERP vs ERP, the coverage audit and the readiness score (weekly by default).

Wiring only: the DAG is built by ``legacy_sync.cutover_dags``. Set ``LEGACY_SYNC_DIFF_SCHEDULE``
to a cron expression to change the schedule; trigger it any time (param ``tables``).
"""

from legacy_sync.cutover_dags import build_diff_dag, schedule_from_env

dag = build_diff_dag(schedule_from_env("LEGACY_SYNC_DIFF_SCHEDULE", "@weekly"))
