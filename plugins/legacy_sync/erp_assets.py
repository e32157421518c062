"""Airflow Assets of the ERP tables: other DAGs run when an ``erp`` table changed, not on a cron guess.

One Asset per ERP table, named (and identified) ``erp.<table>``: ``erp.categories``,
``erp.products``, ``erp.customers``, ``erp.orders``, ``erp.order_lines``, ``erp.invoices``,
``erp.inventory``, ``erp.bill_of_materials``. A consumer DAG schedules on it with plain Airflow::

    from airflow.sdk import Asset, DAG
    with DAG("refresh_price_list", schedule=[Asset("erp.products")], ...): ...

Events: the sync DAGs' ``announce_changes`` task (and the held-deletions DAG's ``apply``) emit one
event per ERP table whose content the run changed (rows created, updated or soft-deleted), and
none for the others, with ``extra`` = the run id, the created / updated / deleted counts, the
table's status and the watermark range. The events go through the Asset alias
``legacy_erp_sync.erp_changes`` because Airflow emits an event for *every* Asset a task declares
as an outlet when it succeeds; only the assets a task adds to an alias get one.

The rows a run changed carry its run id in their audit columns (``created_run_id``,
``updated_run_id``, ``deleted_run_id``), so a consumer reads exactly them with the event's
``run_id``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.sdk import DAG, Asset, AssetAlias, task

from legacy_sync.registry import TABLES, get_table

log = logging.getLogger(__name__)

ERP_TABLES: tuple[str, ...] = ("categories", *(t.snake_name for t in TABLES))
"""Every table of the ``erp`` schema; ``categories`` comes from Products.Category."""
CHANGES_ALIAS = AssetAlias("legacy_erp_sync.erp_changes")
EXAMPLES_ENV = "LEGACY_SYNC_EXAMPLE_DAGS"
EXAMPLE_CONSUMER_DAG_ID = "legacy_erp_example_products_consumer"


def erp_asset(table: str) -> Asset:
    """The Asset of ``erp.<table>`` (name and URI ``erp.<table>``), as a consumer declares it."""
    if table not in ERP_TABLES:
        raise KeyError(f"unknown ERP table {table!r}; the ERP has: {', '.join(ERP_TABLES)}")
    return Asset(f"erp.{table}")


ERP_ASSETS: dict[str, Asset] = {table: erp_asset(table) for table in ERP_TABLES}


def changes(conn: Any, run_id: str, dag_id: str | None = None) -> dict[str, dict[str, Any]]:
    """{ERP table: the event's extra} for every ERP table whose content ``run_id`` changed."""
    # Imported here: DAG files import this module, and the ledger brings psycopg (DAG parse time).
    from legacy_sync import ledger

    found: dict[str, dict[str, Any]] = {}
    for change in ledger.run_changes(conn, run_id):
        extra = {
            "run_id": run_id,
            "dag_id": dag_id,
            "table": f"erp.{get_table(change.table).snake_name}",
            "legacy_table": change.table,
            "mode": change.mode,
            "created": change.created,
            "updated": change.updated,
            "deleted": change.deleted,
            "watermark_from": change.watermark_from,
            "watermark_to": change.watermark_to,
        }
        if change.written:
            found[get_table(change.table).snake_name] = extra
        if change.categories_created:  # erp.categories: get-or-create from the products of the run
            found["categories"] = {
                **extra,
                "table": "erp.categories",
                "created": change.categories_created,
                "updated": 0,
                "deleted": 0,
            }
    return dict(sorted(found.items(), key=lambda item: ERP_TABLES.index(item[0])))


def emit(outlet_events: Any, changed: dict[str, dict[str, Any]]) -> None:
    """One event per changed table through :data:`CHANGES_ALIAS` (the task's outlet)."""
    accessor = outlet_events[CHANGES_ALIAS]
    for table, extra in changed.items():
        accessor.add(ERP_ASSETS[table], extra=extra)
        log.info(
            "asset event erp.%s: created=%d updated=%d deleted=%d",
            table,
            extra["created"],
            extra["updated"],
            extra["deleted"],
        )
    if not changed:
        log.info("no ERP table changed in this run: no asset event")


def announce(conninfo: str, run_id: str, dag_id: str | None, outlet_events: Any) -> dict[str, dict[str, Any]]:
    """The sync DAGs' ``announce_changes``: an event per ERP table the run changed."""
    from legacy_sync import erp_db

    with erp_db.connect(conninfo, autocommit=True) as conn:
        changed = changes(conn, run_id, dag_id)
    emit(outlet_events, changed)
    return changed


def announce_deletions(
    applied: dict[str, int], run_id: str, dag_id: str | None, outlet_events: Any
) -> dict[str, dict[str, Any]]:
    """The held-deletions DAG's ``apply``: an event per table where approved deletions were applied."""
    changed = {
        get_table(name).snake_name: {
            "run_id": run_id,
            "dag_id": dag_id,
            "table": f"erp.{get_table(name).snake_name}",
            "legacy_table": name,
            "mode": "held_deletes",
            "created": 0,
            "updated": 0,
            "deleted": int(rows),
            "watermark_from": None,
            "watermark_to": None,
        }
        for name, rows in applied.items()
        if rows
    }
    emit(outlet_events, changed)
    return changed


# -- the example consumer (dags/examples/, off by default) --------------------------------------


def examples_enabled() -> bool:
    return os.environ.get(EXAMPLES_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def build_products_consumer_dag() -> DAG | None:
    """How the ERP team chains a job on the sync: runs whenever ``erp.products`` changed.

    Only with ``LEGACY_SYNC_EXAMPLE_DAGS=true`` (otherwise None: no DAG), and then paused until
    someone unpauses it.
    """
    if not examples_enabled():
        return None
    products = ERP_ASSETS["products"]
    with DAG(
        dag_id=EXAMPLE_CONSUMER_DAG_ID,
        description="Example: an ERP job that runs when the sync changed erp.products",
        schedule=[products],
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=True,
        tags=["legacy-4d", "erp", "example"],
        doc_md=(
            "Runs after every sync run that created, updated or deleted rows of `erp.products`, never "
            "after one that did not. Each triggering event's `extra` says which sync run it was and "
            "how many rows it created / updated / deleted; the rows themselves carry that run id in "
            "`created_run_id` / `updated_run_id` / `deleted_run_id`."
        ),
        default_args={"owner": "erp-team", "retries": 0},
    ) as dag:

        @task
        def refresh_price_list(triggering_asset_events: Any = None) -> dict[str, Any]:
            """Reads what changed: the events' counts, then exactly the rows those sync runs wrote."""
            from legacy_sync import erp_db

            events = list(triggering_asset_events[products]) if triggering_asset_events else []
            runs = sorted({str(e.extra["run_id"]) for e in events if e.extra.get("run_id")})
            for event in events:
                log.info(
                    "erp.products changed by %s (%s): created=%s updated=%s deleted=%s, watermark %s -> %s",
                    event.extra.get("run_id"),
                    event.source_dag_id,
                    event.extra.get("created"),
                    event.extra.get("updated"),
                    event.extra.get("deleted"),
                    event.extra.get("watermark_from"),
                    event.extra.get("watermark_to"),
                )
            with erp_db.connect(erp_db.conninfo_from_airflow(), autocommit=True) as conn:
                row = conn.execute(
                    "select count(*) filter (where not is_deleted), count(*) filter (where is_deleted)"
                    " from erp.products where created_run_id = any(%(runs)s)"
                    " or updated_run_id = any(%(runs)s) or deleted_run_id = any(%(runs)s)",
                    {"runs": runs},
                ).fetchone()
            live, deleted = (int(v) for v in row) if row else (0, 0)
            log.info("%d live product(s) to refresh, %d to withdraw", live, deleted)
            return {"sync_runs": runs, "products_to_refresh": live, "products_withdrawn": deleted}

        refresh_price_list()
    return dag
