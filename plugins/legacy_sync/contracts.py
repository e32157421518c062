"""The names other people and tools depend on (the README's Contracts), each defined once.

Renaming one needs a migration note in the README. Nothing here imports anything: the 4D client,
the DAG files and the monitor all read their names from this module.
"""

from __future__ import annotations

# Airflow connections
FOURD_CONN_ID = "legacy_4d_default"
"""The 4D REST server."""
FOURD_CONN_TYPE = "legacy_4d"
"""Its connection type (the provider entry point's form and "Test" button)."""
ERP_CONN_ID = "erp_postgres_default"
"""The ERP database as the sync's read-write role; dbt takes its credentials from it."""
MONITOR_CONN_ID = "erp_postgres_monitor"
"""The sync monitor's own connection: a SELECT-only role on the ledger tables it shows."""

# Airflow pool capping the 4D sessions (client licences) the sync holds at once.
POOL = "legacy_4d"

# DAG ids
SYNC_DAG_ID = "legacy_erp_sync"
FULL_SYNC_DAG_ID = "legacy_erp_full_sync"
SYNC_DAG_IDS = (SYNC_DAG_ID, FULL_SYNC_DAG_ID)
HELD_DELETES_DAG_ID = "legacy_erp_held_deletes"
DIFF_DAG_ID = "legacy_erp_diff"
FRESHNESS_DAG_ID = "legacy_erp_freshness"
DRIFT_DAG_ID = "legacy_erp_schema_drift"

# Where Airflow's api-server serves the sync monitor.
MONITOR_URL_PREFIX = "/legacy-sync"
