"""The incremental path ends where a full rebuild starts (issue 15): after a sequence of runs
over changes, inserts, deletes, rejects and their retries, the ERP holds exactly what one full
sync of the same 4D data into an empty database holds, and the same records stand rejected.

Incremental runs read only 4D's changes, map only what landed and test only the rows they
touched; this is the check that nothing of that shortcut shows in the result.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from legacy_sync.registry import TABLES

from .conftest import make_simulator
from .sync_harness import SyncHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PARENTS = {
    "category_id": "categories",
    "customer_id": "customers",
    "order_id": "orders",
    "product_id": "products",
    "parent_product_id": "products",
    "component_product_id": "products",
}
"""The erp table each foreign key column points to (its surrogate ``id``)."""

COLUMNS = {"categories": ["name", "description"]} | {
    t.snake_name: [c.name for c in t.erp_columns] for t in TABLES
}


def erp_contents(url: str, skip: set[tuple[str, str]]) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Per erp table: every live row by ``legacy_id``, its business columns and 4D version, foreign
    keys as the parent's ``legacy_id`` (surrogate ids depend on the order rows arrived in).
    Rows of ``skip`` (table, legacy_id) are left out."""
    contents: dict[str, dict[str, tuple[Any, ...]]] = {}
    by_snake = {t.snake_name: t.name for t in TABLES} | {"categories": "categories"}
    with psycopg.connect(url) as conn:
        for table, columns in COLUMNS.items():
            picked = [
                sql.SQL("(select p.legacy_id from {} as p where p.id = t.{})").format(
                    sql.Identifier("erp", PARENTS[c]), sql.Identifier(c)
                )
                if c in PARENTS
                else sql.SQL("t.{}").format(sql.Identifier(c))
                for c in columns
            ]
            query = sql.SQL(
                "select t.legacy_id, t.source_stamp, {} from {} as t where not t.is_deleted"
            ).format(sql.SQL(", ").join(picked), sql.Identifier("erp", table))
            rows = conn.execute(query).fetchall()
            contents[table] = {r[0]: tuple(r[1:]) for r in rows if (by_snake[table], r[0]) not in skip}
    return contents


def open_rejects(url: str) -> dict[tuple[str, str], str]:
    """{(table, record id): reasons} of the rejects that still stand."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select table_name, record_id, error_message from legacy_sync.open_reject"
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def unequal(left: dict[Any, Any], right: dict[Any, Any]) -> dict[str, dict[Any, Any]]:
    return {
        "only incremental": {k: left[k] for k in sorted(set(left) - set(right))[:10]},
        "only rebuild": {k: right[k] for k in sorted(set(right) - set(left))[:10]},
    }


def differences(left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table in left:
        a, b = left[table], right[table]
        problems = [f"{k}: only incremental {a[k]}" for k in sorted(set(a) - set(b))]
        problems += [f"{k}: only rebuild {b[k]}" for k in sorted(set(b) - set(a))]
        problems += [
            f"{k}: incremental {a[k]} != rebuild {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]
        ]
        if problems:
            found[table] = problems[:10]
    return found


def change_a_bit_of_everything(sync: SyncHarness) -> None:
    data = sync.dataset
    for table, changes in (
        ("Products", {"Price": 321.5, "Color": "Teal"}),
        ("Customers", {"Phone": "555-0199"}),
        ("Orders", {"Status": 5}),
        ("OrderLines", {"Quantity": 7}),
        ("Invoices", {"IsPaid": True}),
        ("Inventory", {"Quantity": 3}),
        ("BillOfMaterials", {"Quantity": 4}),
    ):
        for key in sorted(data.keys(table))[1:4]:
            data.update(table, key, changes)


def test_incremental_runs_end_where_a_full_rebuild_starts(pg_server: Any) -> None:
    incremental_url = pg_server.create_database("incr")
    rebuild_url = pg_server.create_database("rebuild")
    try:
        with make_simulator(scale=600, seed=11) as sim:
            sync = SyncHarness(sim, incremental_url)
            data = sync.dataset
            sync.run()  # the first run reads everything

            # 1. updates everywhere, new records (a new customer with an order and its lines)
            change_a_bit_of_everything(sync)
            template = data.get("Orders", min(data.keys("Orders")))
            customer_template = data.get("Customers", min(data.keys("Customers")))
            customer = data.insert(
                "Customers", {**customer_template, "CustomerID": None, "AccountNumber": "AW-EQ-1"}
            )
            order = data.insert(
                "Orders", {**template, "OrderID": None, "OrderNumber": "SO-EQ-1", "CustomerID": customer}
            )
            line_template = data.get("OrderLines", min(data.keys("OrderLines")))
            for quantity in (1, 2):
                data.insert(
                    "OrderLines",
                    {**line_template, "OrderLineID": None, "OrderID": order, "Quantity": quantity},
                )
            sync.run()

            # 2. deletes, a record updated twice between runs, a rejected product, lines whose
            #    order does not exist yet (wait and are read again every run), one of them under
            #    a key 4D deleted in the same window
            for table in ("OrderLines", "Invoices", "Inventory", "BillOfMaterials"):
                data.delete(table, sorted(data.keys(table))[-3])
            # a line number deleted and saved again, now for that order not saved yet
            again = sorted(data.keys("OrderLines"))[12]
            data.delete("OrderLines", again)
            data.insert(
                "OrderLines", {**line_template, "OrderLineID": again, "OrderID": 990_123, "Quantity": 8}
            )
            twice = sorted(data.keys("Customers"))[5]
            data.update("Customers", twice, {"Phone": "555-0001"})
            data.update("Customers", twice, {"Phone": "555-0002"})
            broken = sorted(data.keys("Products"))[6]
            data.update("Products", broken, {"ProductName": ""})
            waiting = data.insert(
                "OrderLines", {**line_template, "OrderLineID": 990_200, "OrderID": 990_123, "Quantity": 5}
            )
            moved = sorted(data.keys("OrderLines"))[10]  # an existing line moved to that order too
            data.update("OrderLines", moved, {"OrderID": 990_123, "Quantity": 6})
            sync.run()

            # 3. retries resolve: the order arrives, the product is fixed; a new product claims an
            #    existing one's SKU (rejected on both paths: the older record keeps it; a synced
            #    product whose new version is rejected would legitimately differ, see below); an
            #    order is deleted with its lines
            data.insert("Orders", {**template, "OrderID": 990_123, "OrderNumber": "SO-EQ-2"})
            data.update("Products", broken, {"ProductName": "Fixed again"})
            older = sorted(data.keys("Products"))[7]
            newer = data.insert(
                "Products", {**data.get("Products", older), "ProductID": None, "ProductName": "Claimant"}
            )
            gone = sorted(data.keys("Orders"))[-2]
            for key in [k for k in data.keys("OrderLines") if data.get("OrderLines", k)["OrderID"] == gone]:
                data.delete("OrderLines", key)
            data.delete("Orders", gone)
            sync.run()
            last = sync.run()  # a quiet run changes nothing
            assert sync.erp_row("OrderLines", waiting) is not None
            assert sync.erp_row("OrderLines", moved)["quantity"] == 6
            assert sync.erp_row("OrderLines", again)["quantity"] == 8
            assert sync.erp_row("Products", broken)["name"] == "Fixed again"

            rebuild = SyncHarness(sim, rebuild_url)
            rebuild.run(mode="full")

            incremental_rejects, rebuild_rejects = open_rejects(incremental_url), open_rejects(rebuild_url)
            assert ("Products", str(newer)) in incremental_rejects, sync.log(last)
            assert set(incremental_rejects) == set(rebuild_rejects), unequal(
                incremental_rejects, rebuild_rejects
            )
            # A record whose newer version is rejected keeps its last good version in the ERP it
            # was synced into (and its dependents load); an ERP built from scratch never had it
            # (and rejects them). No such record is left here, so everything must be equal.
            rejected = set(incremental_rejects) | set(rebuild_rejects)
            incremental, rebuilt = (
                erp_contents(incremental_url, rejected),
                erp_contents(rebuild_url, rejected),
            )
            assert all(incremental.values()), incremental
            assert not differences(incremental, rebuilt)
            sync.assert_trustworthy()
    finally:
        pg_server.drop_database(incremental_url)
        pg_server.drop_database(rebuild_url)
