"""The dbt project end to end: landing -> dbt build -> erp tables, rejects and audit counts.

Each test lands 4D entities in wire format, runs the real ``dbt build`` (models, data tests,
singular tests and the dbt unit tests) against a fresh database and checks the outcome.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .landing import (
    DBT_PROJECT,
    ERP_TABLES,
    TABLE_NAMES,
    TABLES,
    Landing,
    build,
    csv_row_to_payload,
    query,
    read_csv,
    run_dbt,
)

pytestmark = pytest.mark.timeout(900)

#: Runs after the first in a test skip the dbt unit tests (they do not depend on data).
FAST = ("--exclude", "test_type:unit")


def entity(key: int, **fields: Any) -> dict[str, Any]:
    return {
        "__KEY": str(key),
        "__STAMP": 1,
        "__GlobalStamp": 1,
        **fields,
        "ModifiedDate": "1!1!2020",
        "ModifiedTime": 0,
    }


def product(key: int, **over: Any) -> dict[str, Any]:
    base = {
        "ProductID": key,
        "ProductName": f"Product {key}",
        "SKU": f"SKU-{key}",
        "Category": "Bikes",
        "Price": 10.5,
        "Cost": 5.25,
        "IsPurchased": True,
        "IsManufactured": False,
        "SellStartDate": "30!4!2008",
        "SellEndDate": "0!0!0",
        "DiscontinuedDate": None,
    }
    return entity(key, **{**base, **over})


def customer(key: int, **over: Any) -> dict[str, Any]:
    base = {
        "CustomerID": key,
        "AccountNumber": f"AW{key:08d}",
        "CompanyName": None,
        "FirstName": "Ann",
        "LastName": "Lee",
    }
    return entity(key, **{**base, **over})


def order(key: int, customer_id: int, subtotal: float, **over: Any) -> dict[str, Any]:
    base = {
        "OrderID": key,
        "OrderNumber": f"SO{key}",
        "CustomerID": customer_id,
        "OrderDate": "31!5!2011",
        "DueDate": "12!6!2011",
        "ShipDate": "7!6!2011",
        "Status": 5,
        "SubTotal": subtotal,
        "TaxAmt": 1,
        "Freight": 1,
        "TotalDue": subtotal + 2,
    }
    return entity(key, **{**base, **over})


def line(key: int, order_id: int, product_id: int, total: float, **over: Any) -> dict[str, Any]:
    base = {
        "OrderLineID": key,
        "OrderID": order_id,
        "ProductID": product_id,
        "Quantity": 1,
        "UnitPrice": total,
        "UnitPriceDiscount": 0,
        "LineTotal": total,
    }
    return entity(key, **{**base, **over})


def good_data() -> dict[str, list[dict[str, Any]]]:
    """A small consistent data set touching all seven tables."""
    return {
        "Products": [product(k) for k in (1, 2, 3, 4)],
        "Customers": [customer(1, CompanyName="A Bike Store"), customer(2)],
        "Orders": [order(100, 1, 30.0), order(101, 2, 10.5)],
        "OrderLines": [line(1000, 100, 1, 10.5), line(1001, 100, 2, 19.5), line(1002, 101, 3, 10.5)],
        "Invoices": [
            entity(
                1,
                InvoiceID=1,
                InvoiceNumber="INV-1",
                OrderID=100,
                CustomerID=1,
                InvoiceDate="7!6!2011",
                DueDate="7!7!2011",
                Amount=32.0,
                TaxAmt=1,
                IsPaid=True,
                PaidDate="21!6!2011",
            )
        ],
        "Inventory": [
            entity(1, InventoryID=1, ProductID=1, LocationName="Tool Crib", Shelf="A", Bin=1, Quantity=408)
        ],
        "BillOfMaterials": [
            entity(
                1,
                BOMID=1,
                ParentProductID=None,
                ComponentProductID=4,
                Quantity=1,
                UnitOfMeasure="EA",
                BOMLevel=0,
                StartDate="4!3!2010",
                EndDate="0!0!0",
            ),
            entity(
                2,
                BOMID=2,
                ParentProductID=4,
                ComponentProductID=1,
                Quantity=2,
                UnitOfMeasure="EA",
                BOMLevel=1,
                StartDate="4!3!2010",
                EndDate=None,
            ),
        ],
    }


def land_all(url: str, run_id: str, data: dict[str, list[dict[str, Any]]], **kwargs: Any) -> None:
    landing = Landing(url, run_id)
    for table, rows in data.items():
        landing.land(table, rows, **kwargs)


def counts(url: str) -> dict[str, tuple[int, ...]]:
    rows = query(
        url,
        "select table_name, records_staged, records_loaded, records_rejected, records_created,"
        " records_updated, records_unchanged, records_deleted from legacy_transform.sync_run_counts",
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def rejects(url: str, run_id: str) -> dict[tuple[str, str], str]:
    rows = query(
        url,
        "select table_name, record_id, error_message from legacy_transform.sync_rejects where run_id = %s",
        (run_id,),
    )
    return {(r[0], r[1]): r[2] for r in rows}


def test_bad_records_are_rejected_with_all_their_reasons(erp_db: str) -> None:
    data = good_data()
    data["Products"] += [
        product(5, ProductName="  ", SKU=None, Price=-1),  # name, SKU required; price
        product(6, SKU="SKU-1"),  # SKU held by product 1 (lower key)
        product(7, SellStartDate="31!2!2020", Cost="abc"),  # unparseable date and number
    ]
    data["Customers"] += [customer(3, AccountNumber=None)]
    data["Orders"] += [
        order(102, 999, 5.0),  # customer never synced
        order(103, 3, 5.0),  # customer rejected
        order(104, 1, -5.0, Status=9),  # negative money, bad status
    ]
    data["OrderLines"] += [
        line(1003, 102, 1, 5.0),  # its order was rejected
        line(1004, 100, 5, 5.0, Quantity=-2),  # product rejected, negative qty
    ]
    data["BillOfMaterials"] += [
        entity(3, BOMID=3, ParentProductID=2, ComponentProductID=2, Quantity=1, BOMLevel=1),
    ]
    land_all(erp_db, "r1", data, complete_key_set=True, mode="full")

    result = build(erp_db, "r1", check=False)
    # The singular order-total test may not fail: the only mismatching order has a rejected line.
    assert result.returncode == 0, result.stdout[-8000:]

    assert rejects(erp_db, "r1") == {
        ("Products", "5"): "ProductName is required; SKU is required; Price must not be negative (-1)",
        ("Products", "6"): "SKU 'SKU-1' is also claimed by product 1 in this run (the lowest key keeps it)",
        (
            "Products",
            "7",
        ): 'Cost is not a number: "abc"; SellStartDate is not a 4D date (d!m!yyyy): "31!2!2020"',
        ("Customers", "3"): "AccountNumber is required",
        ("Orders", "102"): "customer 999 does not exist in the ERP (rejected or never synced)",
        ("Orders", "103"): "customer 3 does not exist in the ERP (rejected or never synced)",
        ("Orders", "104"): "Status must be 1..6 (got 9); SubTotal must not be negative (-5.0);"
        " TotalDue must not be negative (-3.0)",
        ("OrderLines", "1003"): "order 102 does not exist in the ERP (rejected or never synced)",
        ("OrderLines", "1004"): "product 5 does not exist in the ERP (rejected or never synced);"
        " Quantity must not be negative (-2)",
        (
            "BillOfMaterials",
            "3",
        ): "ComponentProductID 2 is its own parent (a BOM row cannot reference itself)",
    }
    # The raw record travels with the reasons.
    raw = query(erp_db, "select record_data from legacy_transform.sync_rejects where record_id = '7'")[0][0]
    assert raw["SellStartDate"] == "31!2!2020"

    # loaded + rejected = staged for every table, and the erp holds exactly the loaded ones.
    c = counts(erp_db)
    for table in TABLE_NAMES:
        staged, loaded, rejected, created, updated, unchanged, deleted = c[table]
        assert loaded + rejected == staged == len(data[table]), table
        live = query(erp_db, f"select count(*) from erp.{ERP_TABLES[table]} where not is_deleted")[0][0]
        assert live == loaded == created, table
        assert (updated, unchanged, deleted) == (0, 0, 0)

    # Mappings landed as the contract says.
    assert query(erp_db, "select name, description from erp.categories") == [
        ("Bikes", "Imported from legacy: Bikes")
    ]
    assert query(erp_db, "select customer_type from erp.customers order by legacy_id") == [
        ("store",),
        ("person",),
    ]
    assert query(
        erp_db,
        "select o.status, c.legacy_id, o.order_date::text from erp.orders o"
        " join erp.customers c on c.id = o.customer_id where o.legacy_id = '100'",
    ) == [("shipped", "1", "2011-05-31")]
    assert query(
        erp_db,
        "select parent_product_id is null, sell_end_date from erp.bill_of_materials b"
        " join erp.products p on p.id = b.component_product_id where b.legacy_id = '1'",
    ) == [(True, None)]


def test_incremental_runs_touch_only_changed_rows_and_soft_delete(erp_db: str) -> None:
    data = good_data()
    land_all(erp_db, "r1", data, complete_key_set=True, mode="full")
    build(erp_db, "r1", *FAST)
    ids_before = dict(query(erp_db, "select legacy_id, id from erp.products"))
    synced_before = query(erp_db, "select max(synced_at) from erp.order_lines")[0][0]

    # Run 2: the same data again -> nothing created, updated or deleted; no row rewritten.
    land_all(erp_db, "r2", data, complete_key_set=True, mode="full")
    build(erp_db, "r2", *FAST)
    for table in TABLE_NAMES:
        assert counts(erp_db)[table][3:] == (0, 0, len(data[table]), 0), table
        assert (
            query(erp_db, f"select count(*) from erp.{ERP_TABLES[table]} where updated_run_id = 'r2'")[0][0]
            == 0
        )
    assert query(erp_db, "select max(synced_at) from erp.order_lines")[0][0] == synced_before

    # Run 3 (incremental, Products only): two products change, one new; other tables untouched.
    Landing(erp_db, "r3").land(
        "Products", [product(2, Price=11), product(3, ProductName="Renamed"), product(9)]
    )
    build(erp_db, "r3", *FAST)
    assert counts(erp_db)["Products"] == (3, 3, 0, 1, 2, 0, 0)
    assert query(
        erp_db,
        "select legacy_id from erp.products where updated_run_id = 'r3' and created_run_id <> 'r3'"
        " order by legacy_id",
    ) == [("2",), ("3",)]
    ids_after = dict(query(erp_db, "select legacy_id, id from erp.products"))
    assert {k: ids_after[k] for k in ids_before} == ids_before  # ids are stable
    assert ids_after["9"] == max(ids_before.values()) + 1
    for table in TABLE_NAMES[1:]:
        assert counts(erp_db)[table] == (0, 0, 0, 0, 0, 0, 0), table

    # Run 4: a complete key set without product 3, and 4D reports order line 1002 deleted.
    full = [product(k) for k in (1, 2, 4, 9)]
    landing = Landing(erp_db, "r4")
    landing.land("Products", full, complete_key_set=True, mode="full")
    landing.land("OrderLines", [], deleted_keys=["1002"])
    build(erp_db, "r4", *FAST)
    assert counts(erp_db)["Products"][6] == 1
    assert query(
        erp_db, "select legacy_id, deleted_run_id, deleted_at is not null from erp.products where is_deleted"
    ) == [("3", "r4", True)]
    assert query(erp_db, "select legacy_id, deleted_run_id from erp.order_lines where is_deleted") == [
        ("1002", "r4")
    ]
    assert counts(erp_db)["OrderLines"] == (0, 0, 0, 0, 0, 0, 1)

    # Run 5: product 3 reappears -> undeleted, counted as updated, keeps its id.
    Landing(erp_db, "r5").land("Products", [product(3, ProductName="Renamed")])
    build(erp_db, "r5", *FAST)
    assert counts(erp_db)["Products"] == (1, 1, 0, 0, 1, 0, 0)
    assert query(
        erp_db,
        "select is_deleted, deleted_run_id, updated_run_id, id from erp.products where legacy_id = '3'",
    ) == [(False, None, "r5", ids_before["3"])]

    # Run 6: a rejected new version leaves the existing row untouched.
    Landing(erp_db, "r6").land("Products", [product(2, Price=-5)])
    build(erp_db, "r6", *FAST)
    assert query(erp_db, "select list_price, updated_run_id from erp.products where legacy_id = '2'") == [
        (10.5, "r4")
    ]
    assert rejects(erp_db, "r6") == {("Products", "2"): "Price must not be negative (-5)"}


def test_changed_mapping_breaks_a_unit_test(erp_db: str, tmp_path: Path) -> None:
    land_all(erp_db, "r1", good_data())
    build(erp_db, "r1", "--exclude", "test_type:unit")
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "intermediate" / "int_orders__validated.sql"
    model.write_text(model.read_text().replace("when 6 then 'cancelled'", "when 6 then 'canceled'"))
    result = run_dbt(
        erp_db,
        "test",
        "--select",
        "test_type:unit",
        "--vars",
        '{"run_id": "r1"}',
        "--target-path",
        str(tmp_path / "target"),
        check=False,
        project_dir=project,
    )
    assert result.returncode != 0
    assert "int_orders_status_customer_and_money_rules" in result.stdout


def test_adventureworks_loads_all_seven_tables(erp_db: str, shared_dataset: Path) -> None:
    landing = Landing(erp_db, "aw1")
    expected = {}
    for table in TABLE_NAMES:
        rows = read_csv(shared_dataset / f"{table}.csv")
        expected[table] = len(rows)
        landing.land(table, (csv_row_to_payload(table, r) for r in rows), complete_key_set=True, mode="full")
    build(erp_db, "aw1")  # models, data tests, singular tests and unit tests

    c = counts(erp_db)
    for table in TABLE_NAMES:
        staged, loaded, rejected, created, *_ = c[table]
        assert staged == expected[table], table
        assert loaded + rejected == staged, table
        live = query(erp_db, f"select count(*) from erp.{ERP_TABLES[table]} where not is_deleted")[0][0]
        assert live == loaded == created > 0, table
    assert query(erp_db, "select count(*) from legacy_transform.sync_rejects")[0][0] == sum(
        v[2] for v in c.values()
    )
    # 504 products and 37 subcategories in AdventureWorks
    assert query(erp_db, "select count(*) from erp.categories")[0][0] == 37

    # A second run over the same data changes no row.
    landing = Landing(erp_db, "aw2")
    for table in ("Products", "Orders", "OrderLines"):
        landing.land(
            table,
            (csv_row_to_payload(table, r) for r in read_csv(shared_dataset / f"{table}.csv")),
            complete_key_set=True,
            mode="full",
        )
    build(erp_db, "aw2", "--exclude", "test_type:unit")
    for table in TABLE_NAMES:
        assert (
            query(
                erp_db,
                f"select count(*) from erp.{ERP_TABLES[table]} where updated_run_id = 'aw2'"
                " or deleted_run_id = 'aw2'",
            )[0][0]
            == 0
        ), table
    assert counts(erp_db)["OrderLines"][5] == expected["OrderLines"]  # all unchanged
    assert TABLES  # registry mirror is importable
