"""Airflow DAG: the freshness watchdog (every 15 minutes by default).

Wiring only: the DAG is built by ``legacy_sync.cutover_dags``. Alerts once when a table's last
successful sync is older than its limit, even when no sync runs. ``LEGACY_SYNC_FRESHNESS_SCHEDULE``
changes the schedule.
"""

from legacy_sync.cutover_dags import build_freshness_dag, schedule_from_env

dag = build_freshness_dag(schedule_from_env("LEGACY_SYNC_FRESHNESS_SCHEDULE", "*/15 * * * *"))
