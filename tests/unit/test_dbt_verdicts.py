"""From dbt's run results to one verdict per table, in words: every node knows its tables from
the manifest (meta), a failure fails only the tables it concerns, a skipped node names the
table that failed upstream, and no dbt node name reaches the message."""

from __future__ import annotations

from typing import Any

import pytest

from legacy_sync import dbt_build
from legacy_sync.dbt_build import node_tables, verdicts_from_results

P = "legacy_erp_sync"


def model(name: str, tables: list[str], *parents: str, schema: str = "legacy_transform") -> dict[str, Any]:
    return {
        "resource_type": "model",
        "name": name,
        "schema": schema,
        "config": {"meta": {"legacy_tables": tables}},
        "depends_on": {"nodes": [f"model.{P}.{p}" for p in parents]},
    }


MANIFEST: dict[str, Any] = {
    "nodes": {
        f"model.{P}.int_orders__validated": model("int_orders__validated", ["Orders"], "customers"),
        f"model.{P}.orders": model("orders", ["Orders"], "int_orders__validated", schema="erp"),
        f"model.{P}.customers": model("customers", ["Customers"], schema="erp"),
        f"model.{P}.products": model("products", ["Products"], schema="erp"),
        f"model.{P}.int_order_lines__validated": model(
            "int_order_lines__validated", ["OrderLines"], "orders", "products"
        ),
        f"model.{P}.order_lines": model(
            "order_lines", ["OrderLines"], "int_order_lines__validated", schema="erp"
        ),
        f"model.{P}.warn_order_totals": model(
            "warn_order_totals", ["Orders", "OrderLines"], "orders", "order_lines"
        ),
        f"test.{P}.not_negative_orders_subtotal.abc": {
            "resource_type": "test",
            "name": "not_negative_orders_subtotal",
            "attached_node": f"model.{P}.orders",
            "test_metadata": {"name": "not_negative", "kwargs": {"column_name": "subtotal"}},
            "depends_on": {"nodes": [f"model.{P}.orders"]},
        },
        f"test.{P}.row_checks_order_lines.ghi": {
            "resource_type": "test",
            "name": "row_checks_order_lines",
            "attached_node": f"model.{P}.order_lines",
            "test_metadata": {"name": "row_checks", "kwargs": {"checks": [], "model": "..."}},
            "depends_on": {"nodes": [f"model.{P}.order_lines", f"model.{P}.orders", f"model.{P}.products"]},
        },
        f"test.{P}.row_checks_warn_order_totals.jkl": {
            "resource_type": "test",
            "name": "row_checks_warn_order_totals",
            "attached_node": f"model.{P}.warn_order_totals",
            "test_metadata": {"name": "row_checks", "kwargs": {"checks": [], "model": "..."}},
            "depends_on": {"nodes": [f"model.{P}.warn_order_totals"]},
        },
        f"test.{P}.lost.def": {
            "resource_type": "test",
            "name": "staged_records_loaded_or_rejected_int_order_lines",
            "attached_node": f"model.{P}.int_order_lines__validated",
            "test_metadata": {"name": "staged_records_loaded_or_rejected", "kwargs": {}},
            "depends_on": {"nodes": [f"model.{P}.int_order_lines__validated", f"model.{P}.order_lines"]},
        },
    }
}


def result(node: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"unique_id": node, "status": status, **extra}


def test_every_node_knows_its_tables() -> None:
    assert node_tables(f"model.{P}.warn_order_totals", MANIFEST) == ["Orders", "OrderLines"]
    assert node_tables(f"test.{P}.not_negative_orders_subtotal.abc", MANIFEST) == ["Orders"]
    assert node_tables(f"test.{P}.lost.def", MANIFEST) == ["OrderLines"]
    assert node_tables(f"test.{P}.row_checks_order_lines.ghi", MANIFEST) == ["OrderLines"]


def test_a_failed_check_fails_only_its_table_in_words() -> None:
    results = {
        "results": [
            result(f"model.{P}.customers", "success"),
            result(f"model.{P}.products", "success"),
            result(f"model.{P}.orders", "success"),
            result(f"test.{P}.not_negative_orders_subtotal.abc", "fail", failures=2),
            result(f"model.{P}.int_order_lines__validated", "skipped"),
            result(f"model.{P}.order_lines", "skipped"),
        ]
    }
    verdicts = verdicts_from_results(results, MANIFEST, ["Customers", "Products", "Orders", "OrderLines"])
    assert verdicts["Customers"].failure is None and verdicts["Products"].failure is None
    orders = verdicts["Orders"]
    assert orders.merged  # what was merged is counted
    assert orders.failure is not None
    assert "erp.orders.subtotal is negative: 2 record(s)" in orders.failure
    assert "not_negative_orders_subtotal" not in orders.failure  # node names stay in the task log
    lines = verdicts["OrderLines"]
    assert not lines.merged
    assert lines.failure is not None and "Orders failed in this run" in lines.failure
    assert "watermark stays" in lines.failure


def test_records_lost_between_staging_and_erp_fail_that_table() -> None:
    results = {
        "results": [
            result(f"model.{P}.order_lines", "success"),
            result(f"test.{P}.lost.def", "fail", failures=1),
        ]
    }
    verdicts = verdicts_from_results(results, MANIFEST, ["Orders", "OrderLines"])
    assert verdicts["Orders"].failure is None
    assert "lost between staging and erp: 1 record(s)" in (verdicts["OrderLines"].failure or "")


def test_a_database_error_in_a_model_says_nothing_was_merged() -> None:
    results = {
        "results": [
            result(
                f"model.{P}.orders",
                "error",
                message="conflicting key value violates exclusion constraint\nDETAIL",
            ),
        ]
    }
    failure = verdicts_from_results(results, MANIFEST, ["Orders"])["Orders"].failure or ""
    assert "erp.orders failed in the database: conflicting key value violates exclusion constraint" in failure
    assert "nothing of it was merged" in failure and "DETAIL" not in failure


def test_a_warning_model_that_cannot_run_fails_no_table() -> None:
    results = {
        "results": [
            result(f"model.{P}.orders", "success"),
            result(f"model.{P}.order_lines", "success"),
            result(f"model.{P}.warn_order_totals", "skipped"),
        ]
    }
    verdicts = verdicts_from_results(results, MANIFEST, ["Orders", "OrderLines"])
    assert verdicts["Orders"].failure is None and verdicts["OrderLines"].failure is None


def test_checks_of_a_warning_model_that_fail_fail_no_table() -> None:
    """A malformed warning (no message, no key) is a fault of the report, not of the records: the
    tables load, and the log says the warnings are incomplete."""
    results = {
        "results": [
            result(f"model.{P}.orders", "success"),
            result(f"model.{P}.order_lines", "success"),
            result(f"model.{P}.warn_order_totals", "success"),
            result(f"test.{P}.row_checks_warn_order_totals.jkl", "fail", failures=1),
        ]
    }
    verdicts = verdicts_from_results(results, MANIFEST, ["Orders", "OrderLines"])
    assert verdicts["Orders"].failure is None and verdicts["OrderLines"].failure is None
    assert dbt_build.warning_relations(results, MANIFEST) == []  # nothing of it is recorded
    results["results"].pop()
    assert dbt_build.warning_relations(results, MANIFEST) == [
        ("warn_order_totals", "Orders"),
        ("warn_order_totals", "OrderLines"),
    ]


def test_a_models_row_checks_fail_its_table_with_one_line_per_check_in_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = [
        ("order_id", "points to rows missing from erp.orders", 1, ["1042"]),
        ("quantity", "is negative", 2, ["7", "9"]),
    ]
    monkeypatch.setattr(dbt_build, "failed_checks", lambda conninfo, sql: found if conninfo else [])
    results = {
        "results": [
            result(f"model.{P}.orders", "success"),
            result(f"model.{P}.order_lines", "success"),
            result(f"test.{P}.row_checks_order_lines.ghi", "fail", failures=3, compiled_code="select 1"),
        ]
    }
    verdicts = verdicts_from_results(results, MANIFEST, ["Orders", "OrderLines"], conninfo="postgresql://")
    assert verdicts["Orders"].failure is None
    failure = verdicts["OrderLines"].failure or ""
    assert (
        "erp.order_lines.order_id points to rows missing from erp.orders: 1 record(s) (e.g. 1042)" in failure
    )
    assert "erp.order_lines.quantity is negative: 2 record(s) (e.g. 7, 9)" in failure
    assert "row_checks" not in failure and "watermark of OrderLines stays" in failure

    # Without the database the line still names the table and the count.
    verdicts = verdicts_from_results(results, MANIFEST, ["Orders", "OrderLines"])
    assert "erp.order_lines breaks one of its row checks: 3 record(s)" in (
        verdicts["OrderLines"].failure or ""
    )


def test_row_checks_that_cannot_run_say_so() -> None:
    results = {
        "results": [
            result(f"model.{P}.order_lines", "success"),
            result(f"test.{P}.row_checks_order_lines.ghi", "error", message="no column x\nLINE 3"),
        ]
    }
    failure = verdicts_from_results(results, MANIFEST, ["OrderLines"])["OrderLines"].failure or ""
    assert "the row checks of erp.order_lines could not run: no column x" in failure
