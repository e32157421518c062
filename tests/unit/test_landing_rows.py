"""Turning 4D entities into landing rows, and dbt results into per-table verdicts."""

from __future__ import annotations

import orjson
import pytest

from legacy_sync.landing import prepare_row
from legacy_sync.registry import TABLES, get_table, select_tables
from legacy_sync.transform import summarise_results, table_of_node


def test_row_keeps_the_record_as_sent_and_hashes_only_business_fields() -> None:
    entity = {
        "__KEY": "7",
        "__STAMP": 3,
        "__TIMESTAMP": '"2017-03-06T14:47:38.001Z"',
        "__GlobalStamp": 9,
        "ProductID": 7,
        "ProductName": "Chain\r\nring",
        "SellStartDate": "30!4!2008",
    }
    legacy_id, payload, row_hash = prepare_row(dict(entity), "ProductID")
    assert legacy_id == "7"
    stored = orjson.loads(payload)
    assert stored["ProductName"] == "Chain\r\nring" and stored["SellStartDate"] == "30!4!2008"
    assert stored["__TIMESTAMP"] == "2017-03-06T14:47:38.001Z"  # legacy quoting removed
    # A save that changes nothing but 4D's stamps is not a change.
    _, _, same_hash = prepare_row({**entity, "__STAMP": 4, "__GlobalStamp": 12}, "ProductID")
    assert same_hash == row_hash
    _, _, other_hash = prepare_row({**entity, "ProductName": "Chainring"}, "ProductID")
    assert other_hash != row_hash


def test_nul_characters_are_replaced_and_flagged_for_rejection() -> None:
    _, payload, _ = prepare_row({"__KEY": "1", "ProductID": 1, "ProductName": "bad\x00name"}, "ProductID")
    stored = orjson.loads(payload)
    assert "\x00" not in payload and "\\u0000" not in payload
    assert stored["__landing_issues"] == [
        "ProductName contains NUL characters (U+0000), which PostgreSQL cannot store"
    ]


def test_key_falls_back_to___key_when_the_attribute_is_absent() -> None:
    assert prepare_row({"__KEY": "42", "Name": "x"}, "ProductID")[0] == "42"


def test_registry_names_and_selection() -> None:
    assert [t.snake_name for t in TABLES] == [
        "products",
        "customers",
        "orders",
        "order_lines",
        "invoices",
        "inventory",
        "bill_of_materials",
    ]
    assert [t.name for t in select_tables(["Orders", "Products"])] == ["Products", "Orders"]
    assert len(select_tables(None)) == len(TABLES)
    with pytest.raises(KeyError, match=r"unknown legacy table 'Prodcts'.*Products"):
        get_table("Prodcts")
    for table in TABLES:
        assert table.key in table.fields


@pytest.mark.parametrize(
    ("node", "table"),
    [
        ("stg_legacy_4d__order_lines", "OrderLines"),
        ("int_orders__validated", "Orders"),
        ("orders", "Orders"),
        ("order_lines", "OrderLines"),
        ("bill_of_materials", "BillOfMaterials"),
        ("int_bill_of_materials__validated", "BillOfMaterials"),
        ("categories", "Products"),
        ("stg_legacy_sync__landing_batches", None),
    ],
)
def test_dbt_nodes_map_to_tables(node: str, table: str | None) -> None:
    assert table_of_node(node) == table


def test_failed_dbt_nodes_fail_their_table_only() -> None:
    manifest = {
        "nodes": {
            "test.p.unique_orders_legacy_id.abc": {
                "resource_type": "test",
                "attached_node": "model.p.orders",
                "depends_on": {"nodes": ["model.p.orders"]},
            },
        }
    }
    results = {
        "results": [
            {"unique_id": "model.p.products", "status": "success", "message": "MERGE 3"},
            {"unique_id": "model.p.customers", "status": "error", "message": "division by zero\nline 2"},
            {"unique_id": "test.p.unique_orders_legacy_id.abc", "status": "fail", "message": "Got 2 results"},
            {"unique_id": "model.p.order_lines", "status": "skipped", "message": None},
        ]
    }
    failed = summarise_results(results, manifest, ["Products", "Customers", "Orders", "OrderLines"])
    assert set(failed) == {"Customers", "Orders", "OrderLines"}
    assert failed["Customers"] == "dbt model customers error: division by zero"
    assert "unique_orders_legacy_id" in failed["Orders"]
