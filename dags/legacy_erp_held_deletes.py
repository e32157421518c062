"""Airflow DAG: a person approves or discards deletions the sync's circuit breaker held.

Wiring only: the DAG is built by ``legacy_sync.dag_factory``. The sync DAGs trigger it when a run
would have deleted more than the allowed share of a table (``LEGACY_SYNC_DELETE_HOLD_SHARE``).
"""

from legacy_sync.dag_factory import build_held_deletes_dag

dag = build_held_deletes_dag()
