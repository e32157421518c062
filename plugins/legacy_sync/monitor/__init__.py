"""The sync monitor: a read-only view of ``legacy_sync.sync_log`` / ``sync_error`` inside the Airflow UI.

What the original Django admin for ``SyncLog``/``SyncError`` did, as an Airflow plugin: a FastAPI
app served by the api-server (:mod:`legacy_sync.monitor.app`) behind Airflow's own sign-in, and a
"Legacy sync" entry in Airflow's navigation (:mod:`legacy_sync.monitor.plugin`).
"""
