"""Airflow DAG: a person accepts (or not) a frozen table's new 4D structure.

Wiring only: the DAG is built by ``legacy_sync.cutover_dags``. The sync DAGs trigger it when 4D's
structure of a table with the ``freeze`` drift policy changed in a breaking way.
"""

from legacy_sync.cutover_dags import build_drift_approval_dag

dag = build_drift_approval_dag()
