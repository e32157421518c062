"""The dbt project end to end: landing -> dbt build -> erp tables, rejects and audit counts.

Each test lands 4D entities in wire format, runs the real ``dbt build`` (models, data tests,
singular tests and the dbt unit tests) against a fresh database and checks the outcome.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
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


def entity(key: int, stamp: int = 1, **fields: Any) -> dict[str, Any]:
    """A 4D entity as the server sends it: every registry attribute of its table, null unless given."""
    wire = next(w for _, pk, w in TABLES.values() if pk in fields and set(fields) <= set(w))
    return {
        "__KEY": str(key),
        "__STAMP": stamp,
        "__GlobalStamp": stamp,
        "__TIMESTAMP": f"2020-01-01T00:00:{stamp:02d}.000Z",
        **dict.fromkeys(wire),
        **fields,
        "ModifiedDate": "1!1!2020",
        "ModifiedTime": 0,
    }


def product(key: int, stamp: int = 1, **over: Any) -> dict[str, Any]:
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
    return entity(key, stamp, **{**base, **over})


def customer(key: int, stamp: int = 1, **over: Any) -> dict[str, Any]:
    base = {
        "CustomerID": key,
        "AccountNumber": f"AW{key:08d}",
        "CompanyName": None,
        "FirstName": "Ann",
        "LastName": "Lee",
    }
    return entity(key, stamp, **{**base, **over})


def order(key: int, customer_id: int, subtotal: float, stamp: int = 1, **over: Any) -> dict[str, Any]:
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
    return entity(key, stamp, **{**base, **over})


def line(
    key: int, order_id: int, product_id: int, total: float, stamp: int = 1, **over: Any
) -> dict[str, Any]:
    base = {
        "OrderLineID": key,
        "OrderID": order_id,
        "ProductID": product_id,
        "Quantity": 1,
        "UnitPrice": total,
        "UnitPriceDiscount": 0,
        "LineTotal": total,
    }
    return entity(key, stamp, **{**base, **over})


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


def counts(url: str, run_id: str) -> dict[str, tuple[int, ...]]:
    """(processed, created, updated, unchanged, deleted, failed) per table, as the ledger recorded."""
    rows = query(
        url,
        "select table_name, records_processed, records_created, records_updated, records_unchanged,"
        " records_deleted, records_failed from legacy_sync.sync_log where run_id = %s",
        (run_id,),
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def rejects(url: str, run_id: str) -> dict[tuple[str, str], str]:
    rows = query(
        url,
        "select l.table_name, e.record_id, e.error_message from legacy_sync.sync_error e"
        " join legacy_sync.sync_log l on l.id = e.sync_log_id where l.run_id = %s",
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

    assert build(erp_db, "r1") == {}  # rejects are verdicts on records, not failures of tables

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
        ("OrderLines", "1004"): "Quantity must not be negative (-2);"
        " product 5 does not exist in the ERP (rejected or never synced)",
        (
            "BillOfMaterials",
            "3",
        ): "ComponentProductID 2 is its own parent (a BOM row cannot reference itself)",
    }
    # The raw record travels with the reasons, and the open rejects say which wait for others.
    raw = query(
        erp_db,
        "select record_data, retry from legacy_sync.open_reject"
        " where table_name = 'Products' and record_id = '7'",
    )
    assert raw[0][0]["SellStartDate"] == "31!2!2020" and raw[0][1] is False
    waiting = query(
        erp_db, "select table_name, record_id from legacy_sync.open_reject where retry order by 1, 2"
    )
    assert waiting == [("OrderLines", "1003"), ("Orders", "102"), ("Orders", "103"), ("Products", "6")]

    # read = created + rejected for every table, and the erp holds exactly the loaded ones.
    c = counts(erp_db, "r1")
    for table in TABLE_NAMES:
        processed, created, updated, unchanged, deleted, failed = c[table]
        assert processed == created + failed == len(data[table]), table
        live = query(erp_db, f"select count(*) from erp.{ERP_TABLES[table]} where not is_deleted")[0][0]
        assert live == created, table
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
    build(erp_db, "r1")
    ids_before = dict(query(erp_db, "select legacy_id, id from erp.products"))
    synced_before = query(erp_db, "select max(synced_at) from erp.order_lines")[0][0]

    # Run 2: the same data again -> nothing created, updated or deleted; no row rewritten.
    land_all(erp_db, "r2", data, complete_key_set=True, mode="full")
    build(erp_db, "r2")
    for table in TABLE_NAMES:
        assert counts(erp_db, "r2")[table] == (len(data[table]), 0, 0, len(data[table]), 0, 0), table
        assert (
            query(erp_db, f"select count(*) from erp.{ERP_TABLES[table]} where updated_run_id = 'r2'")[0][0]
            == 0
        )
    assert query(erp_db, "select max(synced_at) from erp.order_lines")[0][0] == synced_before

    # Run 3 (incremental, Products only): two products change, one new; other tables untouched.
    Landing(erp_db, "r3").land(
        "Products", [product(2, 2, Price=11), product(3, 2, ProductName="Renamed"), product(9)]
    )
    build(erp_db, "r3")
    assert counts(erp_db, "r3")["Products"] == (3, 1, 2, 0, 0, 0)
    assert query(
        erp_db,
        "select legacy_id from erp.products where updated_run_id = 'r3' and created_run_id <> 'r3'"
        " order by legacy_id",
    ) == [("2",), ("3",)]
    ids_after = dict(query(erp_db, "select legacy_id, id from erp.products"))
    assert {k: ids_after[k] for k in ids_before} == ids_before  # ids are stable
    assert ids_after["9"] == max(ids_before.values()) + 1

    # Run 4: a complete key set without product 3, and 4D reports order line 1002 deleted.
    full = [product(1), product(2, 2, Price=11), product(4), product(9)]
    landing = Landing(erp_db, "r4")
    landing.land("Products", full, complete_key_set=True, mode="full")
    landing.land("OrderLines", [], deleted_keys=["1002"])
    build(erp_db, "r4")
    assert counts(erp_db, "r4")["Products"][4] == 1
    assert query(
        erp_db, "select legacy_id, deleted_run_id, deleted_at is not null from erp.products where is_deleted"
    ) == [("3", "r4", True)]
    assert query(erp_db, "select legacy_id, deleted_run_id from erp.order_lines where is_deleted") == [
        ("1002", "r4")
    ]
    assert counts(erp_db, "r4")["OrderLines"] == (1, 0, 0, 0, 1, 0)

    # Run 5: product 3 reappears (a newer version) -> undeleted, counted as updated, keeps its id.
    Landing(erp_db, "r5").land("Products", [product(3, 3, ProductName="Renamed")])
    build(erp_db, "r5")
    assert counts(erp_db, "r5")["Products"] == (1, 0, 1, 0, 0, 0)
    assert query(
        erp_db,
        "select is_deleted, deleted_run_id, updated_run_id, id from erp.products where legacy_id = '3'",
    ) == [(False, None, "r5", ids_before["3"])]

    # Run 6: a rejected new version keeps the last good one and marks it.
    Landing(erp_db, "r6").land("Products", [product(2, 3, Price=-5)])
    build(erp_db, "r6")
    assert query(
        erp_db,
        "select list_price, updated_run_id, rejected_since_run_id from erp.products where legacy_id = '2'",
    ) == [(11, "r3", "r6")]
    assert rejects(erp_db, "r6") == {("Products", "2"): "Price must not be negative (-5)"}

    # Run 7: an older version (a replay of stale data) is never written over the newer one.
    Landing(erp_db, "r7").land("Products", [product(2, 1, Price=99)])
    build(erp_db, "r7")
    assert query(erp_db, "select list_price from erp.products where legacy_id = '2'") == [(11,)]


def test_business_keys_move_swap_and_never_collide(erp_db: str) -> None:
    land_all(erp_db, "r1", {"Products": [product(k) for k in (1, 2, 3, 4, 5)]}, complete_key_set=True)
    build(erp_db, "r1")
    landing = Landing(erp_db, "r2")
    landing.land(
        "Products",
        [
            product(1, 2, SKU="SKU-2"),  # 1 and 2 swap: both load
            product(2, 2, SKU="SKU-1"),
            product(3, 2, SKU="SKU-4"),  # 3 wants 4's SKU, but 4 moves to a SKU 5 holds and keeps:
            product(4, 2, SKU="SKU-5"),  # 4 is rejected, so 3 is too (a chain fails as a whole)
            product(6, 1, SKU="SKU-3"),  # a newcomer wants the SKU 3 could not give up
        ],
    )
    assert build(erp_db, "r2") == {}
    skus = dict(query(erp_db, "select legacy_id, sku from erp.products where not is_deleted"))
    assert skus == {"1": "SKU-2", "2": "SKU-1", "3": "SKU-3", "4": "SKU-4", "5": "SKU-5"}
    assert rejects(erp_db, "r2") == {
        ("Products", "4"): "SKU 'SKU-5' is already held by product 5 in the ERP",
        ("Products", "3"): "SKU 'SKU-4' is already held by product 4 in the ERP",
        ("Products", "6"): "SKU 'SKU-3' is already held by product 3 in the ERP",
    }
    # The ERP itself refuses a duplicate, whatever writes it.
    with pytest.raises(psycopg.errors.ExclusionViolation), psycopg.connect(erp_db, autocommit=True) as conn:
        conn.execute("update erp.products set sku = 'SKU-1' where legacy_id = '5'")


def test_the_mapping_unit_tests_pass_and_a_changed_mapping_breaks_one(erp_db: str, tmp_path: Path) -> None:
    land_all(erp_db, "r1", good_data())
    build(erp_db, "r1")  # dbt reads the column types of a unit test's inputs from the built models
    run_dbt(erp_db, "test", "--select", "test_type:unit", "--target-path", str(tmp_path / "ok"))
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "intermediate" / "int_orders__checked.sql"
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
    assert build(erp_db, "aw1") == {}

    c = counts(erp_db, "aw1")
    for table in TABLE_NAMES:
        processed, created, _, _, _, failed = c[table]
        assert processed == expected[table], table
        live = query(erp_db, f"select count(*) from erp.{ERP_TABLES[table]} where not is_deleted")[0][0]
        assert live == created == processed - failed > 0, table
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
    assert build(erp_db, "aw2") == {}
    for table in TABLE_NAMES:
        assert (
            query(
                erp_db,
                f"select count(*) from erp.{ERP_TABLES[table]} where updated_run_id = 'aw2'"
                " or deleted_run_id = 'aw2'",
            )[0][0]
            == 0
        ), table
    assert counts(erp_db, "aw2")["OrderLines"][3] == expected["OrderLines"]  # all unchanged
