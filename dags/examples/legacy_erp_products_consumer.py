"""Example Airflow DAG (off by default): a job of the ERP team that runs whenever a sync changed
``erp.products`` -- scheduled on the Asset ``erp.products``, not on a cron guess.

Wiring only: the DAG is built by ``legacy_sync.dag_factory`` (its code is in
``legacy_sync/erp_assets.py``). It exists only when ``LEGACY_SYNC_EXAMPLE_DAGS=true``, and then
starts paused. Your own DAG needs nothing of this package: ``schedule=[Asset("erp.products")]``.
"""

from legacy_sync.dag_factory import build_example_consumer_dag

dag = build_example_consumer_dag()
