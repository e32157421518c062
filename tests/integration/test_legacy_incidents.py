"""What a parallel-run migration meets on real legacy data (issue 13), each provoked through the
simulator and run through the whole pipeline (landing, dbt, reconcile, summary) several times.
Each starts after its data set's first sync (a copy of it: ``FirstSyncs``).

Every scenario ends with the two invariants of ``SyncHarness.assert_trustworthy``: no two live
ERP rows share a business key, and every 4D record is live in ``erp`` with 4D's content or an
open reject with a reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from legacy4d_simulator import RawJson, WireValue

from .conftest import make_simulator
from .sync_harness import FirstSyncs, SyncHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture
def sync(first_syncs: FirstSyncs) -> Iterator[SyncHarness]:
    """The generated data set (with its planted defects) after its first sync."""
    with first_syncs.harness(scale=1500, seed=3) as harness:
        yield harness


def two_products(sync: SyncHarness) -> tuple[int, int]:
    low, high = sorted(sync.dataset.keys("Products"))[:2]
    return low, high


def sku(sync: SyncHarness, key: int) -> str:
    return sync.dataset.get("Products", key)["SKU"]


# -- 1. business keys that cannot collide ----------------------------------------------------


def test_an_older_product_cannot_take_the_sku_of_a_holder_that_changed_too(sync: SyncHarness) -> None:
    low, high = two_products(sync)
    holder_sku, old_sku = sku(sync, high), sku(sync, low)
    sync.dataset.update("Products", low, {"SKU": holder_sku})  # the older record claims it
    sync.dataset.update("Products", high, {"Price": 123.45})  # the holder changes its price

    run = sync.run()
    statuses = sync.statuses(run)
    assert "FAILED" not in statuses.values(), statuses
    assert sync.erp_row("Products", high)["sku"] == holder_sku
    assert float(sync.erp_row("Products", high)["list_price"]) == 123.45  # the holder's change landed
    assert sync.erp_row("Products", low)["sku"] == old_sku  # the claimant keeps its own
    assert f"SKU '{holder_sku}' is already held by product {high}" in sync.rejects(run, "Products")[str(low)]
    assert statuses["Products"] == "PARTIALLY_COMPLETED"

    quiet = sync.run()  # and the next run is not failed either
    assert "FAILED" not in sync.statuses(quiet).values(), sync.statuses(quiet)
    sync.assert_trustworthy()


def test_a_full_sync_keeps_every_business_key_with_its_holder(sync: SyncHarness) -> None:
    low, high = two_products(sync)
    holder_sku = sku(sync, high)
    sync.dataset.update("Products", low, {"SKU": holder_sku})

    run = sync.run(mode="full")  # every holder is re-staged beside the lower-key claimant
    assert "FAILED" not in sync.statuses(run).values(), sync.statuses(run)
    assert sync.erp_row("Products", high)["sku"] == holder_sku
    assert str(low) in sync.rejects(run, "Products")
    sync.assert_trustworthy()


def test_a_rejected_move_keeps_the_old_key_from_a_newcomer(sync: SyncHarness) -> None:
    low, high = two_products(sync)
    x, y = sku(sync, low), sku(sync, high)
    sync.dataset.update("Products", low, {"SKU": y})  # A moves X -> Y, but Y is held by B
    newcomer = sync.dataset.insert(
        "Products", {**sync.dataset.get("Products", low), "ProductID": None, "SKU": x}
    )

    run = sync.run()
    assert "FAILED" not in sync.statuses(run).values(), sync.statuses(run)
    rejects = sync.rejects(run, "Products")
    assert {str(low), str(newcomer)} <= set(rejects), rejects
    assert sync.erp_row("Products", low)["sku"] == x  # A still holds X
    assert sync.erp_row("Products", newcomer) is None
    sync.assert_trustworthy()


def test_two_products_swapping_their_skus_both_load(sync: SyncHarness) -> None:
    low, high = two_products(sync)
    x, y = sku(sync, low), sku(sync, high)
    sync.dataset.update("Products", low, {"SKU": y})
    sync.dataset.update("Products", high, {"SKU": x})

    run = sync.run()
    assert sync.statuses(run)["Products"] == "COMPLETED", sync.log(run)["Products"]
    assert (sync.erp_row("Products", low)["sku"], sync.erp_row("Products", high)["sku"]) == (y, x)
    sync.assert_trustworthy()


def test_order_numbers_follow_the_same_rule(sync: SyncHarness) -> None:
    low, high = sorted(sync.dataset.keys("Orders"))[:2]
    taken = sync.dataset.get("Orders", high)["OrderNumber"]
    sync.dataset.update("Orders", low, {"OrderNumber": taken})
    sync.dataset.update("Orders", high, {"Freight": 12.5})

    run = sync.run()
    assert "FAILED" not in sync.statuses(run).values(), sync.statuses(run)
    assert sync.erp_row("Orders", high)["order_number"] == taken
    assert str(low) in sync.rejects(run, "Orders")
    sync.assert_trustworthy()


# -- 2. no stranded dependents ---------------------------------------------------------------


def new_order_with_lines(sync: SyncHarness, **customer: Any) -> tuple[int, int, list[int]]:
    """A new customer, an order for it and two lines, as the 4D application saves them."""
    template = sync.dataset.get("Customers", min(sync.dataset.keys("Customers")))
    cust = sync.dataset.insert(
        "Customers",
        {**template, "CustomerID": None, "AccountNumber": "AW-NEW-1", **customer},
    )
    order_template = sync.dataset.get("Orders", min(sync.dataset.keys("Orders")))
    order = sync.dataset.insert(
        "Orders",
        {**order_template, "OrderID": None, "OrderNumber": "SO-NEW-1", "CustomerID": cust, "SubTotal": 30},
    )
    product = min(sync.dataset.keys("Products"))
    lines = [
        sync.dataset.insert(
            "OrderLines",
            {
                "OrderID": order,
                "ProductID": product,
                "Quantity": 1,
                "UnitPrice": total,
                "UnitPriceDiscount": 0,
                "LineTotal": total,
            },
        )
        for total in (10, 20)
    ]
    return cust, order, lines


def assert_loaded(sync: SyncHarness, table: str, *keys: int) -> None:
    for key in keys:
        row = sync.erp_row(table, key)
        assert row is not None and not row["is_deleted"], f"{table} {key} is not live in the ERP"


def test_dependents_of_a_table_4d_refused_for_one_run_load_on_the_next(sync: SyncHarness) -> None:
    sync.sim.faults.set("refuse_table", table="Customers", hidden=True)  # 404 / 1800 for one run
    cust, order, lines = new_order_with_lines(sync)
    refused = sync.run()
    assert sync.statuses(refused)["Customers"] == "FAILED"

    sync.sim.faults.clear()
    back = sync.run()  # no replay, no full sync
    assert_loaded(sync, "Customers", cust)
    assert_loaded(sync, "Orders", order)
    assert_loaded(sync, "OrderLines", *lines)
    statuses = sync.statuses(back)
    assert [statuses[t] for t in ("Customers", "Orders", "OrderLines")] == ["COMPLETED"] * 3, statuses
    sync.assert_trustworthy()


def test_dependents_left_out_by_a_table_subset_load_on_the_next_run(sync: SyncHarness) -> None:
    cust, order, lines = new_order_with_lines(sync)
    sync.run(tables=["Orders", "OrderLines"])  # the customer is not read in this run
    sync.run()
    assert_loaded(sync, "Customers", cust)
    assert_loaded(sync, "Orders", order)
    assert_loaded(sync, "OrderLines", *lines)
    sync.assert_trustworthy()


def test_dependents_of_a_rejected_parent_load_once_it_is_fixed(sync: SyncHarness) -> None:
    cust, order, lines = new_order_with_lines(sync, AccountNumber=None)  # rejected: no account
    first = sync.run()
    assert str(cust) in sync.rejects(first, "Customers")
    assert str(order) in sync.rejects(first, "Orders")

    sync.dataset.update("Customers", cust, {"AccountNumber": "AW-FIXED-1"})  # fixed in 4D only
    sync.run()
    assert_loaded(sync, "Customers", cust)
    assert_loaded(sync, "Orders", order)
    assert_loaded(sync, "OrderLines", *lines)
    sync.assert_trustworthy()


def test_an_order_saved_between_two_tables_reads_is_not_stranded(sync: SyncHarness) -> None:
    saved: list[Any] = []

    def save_after_orders_were_read(extract_number: int) -> None:
        # Extracts run in registry order: Products, Customers, Orders, OrderLines, ...
        if extract_number == 4 and not saved:
            saved.append(new_order_with_lines(sync))

    sync.before_extract = save_after_orders_were_read
    sync.run()
    sync.before_extract = None
    sync.run()
    _, order, lines = saved[0]
    assert_loaded(sync, "Orders", order)
    assert_loaded(sync, "OrderLines", *lines)
    sync.assert_trustworthy()


# -- 3. paging that checks the server ---------------------------------------------------------


def test_a_server_that_ignores_orderby_fails_the_table_and_deletes_nothing(sync: SyncHarness) -> None:
    live_before = sync.query("select count(*) from erp.order_lines where not is_deleted")[0][0]
    sync.sim.faults.set("ignore_orderby", table="OrderLines")  # a proxy that drops $orderby
    run = sync.run(mode="full")
    log = sync.log(run)["OrderLines"]
    assert log["status"] == "FAILED"
    assert "$orderby" in log["error_message"]
    assert sync.query("select count(*) from erp.order_lines where not is_deleted")[0][0] == live_before
    assert sync.statuses(run)["Products"] != "FAILED"
    sync.sim.faults.clear()
    sync.run(mode="full")
    sync.assert_trustworthy()


def test_a_repeated_primary_key_fails_the_table_with_the_key(sync: SyncHarness) -> None:
    keys = sorted(sync.dataset.keys("OrderLines"))
    twin = keys[len(keys) // 2]
    sync.dataset.add_twin("OrderLines", twin, {"Quantity": 99})
    run = sync.run(mode="full")
    log = sync.log(run)["OrderLines"]
    assert log["status"] == "FAILED"
    assert str(twin) in log["error_message"] and "OrderLineID" in log["error_message"]
    assert not sync.query("select 1 from erp.order_lines where is_deleted")  # nothing deleted


# -- 4. a future date never freezes a table --------------------------------------------------


@pytest.fixture
def dated_sync(erp_db_url: str) -> Iterator[SyncHarness]:
    """Products without change tracking: synced by ModifiedDate."""
    with make_simulator(scale=1500, seed=5, untracked_tables={"Products"}) as sim:
        yield SyncHarness(sim, erp_db_url)


def test_a_future_modified_date_loads_and_does_not_freeze_the_table(dated_sync: SyncHarness) -> None:
    sync = dated_sync
    sync.run()
    typo, later = two_products(sync)
    future = dt.date.today() + dt.timedelta(days=5 * 365)
    sync.dataset.update("Products", typo, {"Price": 1.25, "ModifiedDate": future})
    run = sync.run()
    assert float(sync.erp_row("Products", typo)["list_price"]) == 1.25  # the record still loads
    assert sync.log(run)["Products"]["records_warned"] >= 1
    assert dt.date.fromisoformat(sync.watermark("Products")) <= dt.date.today() + dt.timedelta(days=1)

    sync.dataset.update("Products", later, {"Price": 2.5})  # an ordinary change, dated today
    sync.run()
    assert float(sync.erp_row("Products", later)["list_price"]) == 2.5

    sync.run(mode="full")  # nor does the weekly full sync write the future back
    assert dt.date.fromisoformat(sync.watermark("Products")) <= dt.date.today() + dt.timedelta(days=1)
    sync.assert_trustworthy()


# -- 5. a rejected new version is explicit ---------------------------------------------------


def test_a_rejected_new_version_is_marked_and_counted_until_a_good_one_loads(sync: SyncHarness) -> None:
    key = min(sync.dataset.keys("Products"))
    good_price = sync.erp_row("Products", key)["list_price"]
    sync.dataset.update("Products", key, {"Price": -5})
    bad = sync.run()
    row = sync.erp_row("Products", key)
    assert row["list_price"] == good_price  # the last good version stays
    assert row["rejected_since_run_id"] == bad
    quiet = sync.run()
    log = sync.log(quiet)["Products"]
    assert log["status"] == "PARTIALLY_COMPLETED"  # not COMPLETED while the record is missing
    assert log["records_open_rejects"] == 1

    sync.dataset.update("Products", key, {"Price": 7})
    fixed = sync.run()
    assert sync.erp_row("Products", key)["rejected_since_run_id"] is None
    assert sync.statuses(fixed)["Products"] == "COMPLETED"
    sync.assert_trustworthy()


# -- 6. safe replay --------------------------------------------------------------------------


def test_replay_never_brings_back_a_record_4d_deleted(sync: SyncHarness) -> None:
    sync.sim.faults.set("refuse_table", table="Customers", hidden=True)
    _, order, lines = new_order_with_lines(sync)
    sync.run()  # the order is rejected: its customer was not read
    sync.sim.faults.clear()
    for line in lines:
        sync.dataset.delete("OrderLines", line)
    sync.dataset.delete("Orders", order)  # gone from 4D before anyone replays it
    sync.run()
    sync.run(mode="replay")
    row = sync.erp_row("Orders", order)
    assert row is None or row["is_deleted"], "replay resurrected an order 4D deleted"
    sync.assert_trustworthy()


def test_replay_never_writes_an_older_version_over_newer_data(sync: SyncHarness) -> None:
    order = min(sync.dataset.keys("Orders"))
    original = sync.dataset.get("Orders", order)["CustomerID"]
    sync.sim.faults.set("refuse_table", table="Customers", hidden=True)
    template = sync.dataset.get("Customers", min(sync.dataset.keys("Customers")))
    newcomer = sync.dataset.insert("Customers", {**template, "CustomerID": None, "AccountNumber": "AW-NEW-9"})
    sync.dataset.update("Orders", order, {"CustomerID": newcomer})  # v2: rejected, customer unknown
    sync.run()
    sync.dataset.update("Orders", order, {"CustomerID": original})  # v3: back as it was
    sync.sim.faults.clear()
    sync.run()
    sync.run(mode="replay")
    assert sync.erp_row("Orders", order)["customer_id"] == sync.erp_row("Customers", original)["id"]
    sync.assert_trustworthy()


# -- 6b. a key 4D deleted and created again ------------------------------------------------
# 4D never hands an automatic key out twice, but a table keyed on a field the application fills
# (an order line number, an invoice number typed again) can get a deleted key back: the ERP must
# end with the new record, on every path, in every run order.


def recreate(sync: SyncHarness, table: str, key: int, **changes: Any) -> dict[str, Any]:
    """Delete 4D record ``key`` and save a new record under the same key with ``changes``."""
    old = sync.dataset.get(table, key)
    sync.dataset.delete(table, key)
    sync.dataset.insert(table, {**old, **changes})
    return old


def test_a_key_deleted_and_created_again_loads_the_new_record_as_a_full_sync_would(
    sync: SyncHarness,
) -> None:
    line = sorted(sync.dataset.keys("OrderLines"))[5]
    invoice = sorted(sync.dataset.keys("Invoices"))[3]  # same invoice number: its old holder is gone
    recreate(sync, "OrderLines", line, Quantity=77)
    recreate(sync, "Invoices", invoice, Amount=4321.5)

    run = sync.run()
    statuses = sync.statuses(run)
    assert (statuses["OrderLines"], statuses["Invoices"]) == ("COMPLETED", "COMPLETED"), sync.log(run)
    incremental = (sync.erp_row("OrderLines", line), sync.erp_row("Invoices", invoice))
    sync.run(mode="full")
    full = (sync.erp_row("OrderLines", line), sync.erp_row("Invoices", invoice))
    for rows in (incremental, full):
        assert rows[0] is not None and not rows[0]["is_deleted"] and rows[0]["quantity"] == 77, rows[0]
        assert rows[1] is not None and not rows[1]["is_deleted"] and float(rows[1]["amount"]) == 4321.5
    sync.assert_trustworthy()


def test_a_created_again_key_waiting_for_its_parent_loads_when_the_parent_arrives(
    sync: SyncHarness,
) -> None:
    key = sorted(sync.dataset.keys("OrderLines"))[5]
    template = sync.dataset.get("Orders", min(sync.dataset.keys("Orders")))
    recreate(sync, "OrderLines", key, OrderID=990_123, Quantity=77)  # its order is not saved yet

    waiting = sync.run()
    assert str(key) in sync.rejects(waiting, "OrderLines")
    assert sync.log(waiting)["OrderLines"]["records_deleted"] == 1
    row = sync.erp_row("OrderLines", key)
    assert row is not None and row["is_deleted"], ("the deleted record stays live as if 4D held it", row)

    sync.dataset.insert("Orders", {**template, "OrderID": 990_123, "OrderNumber": "SO-AGAIN-1"})
    sync.run()
    row = sync.erp_row("OrderLines", key)
    assert row is not None and not row["is_deleted"] and row["quantity"] == 77, row
    assert row["order_id"] == sync.erp_row("Orders", 990_123)["id"]
    sync.assert_trustworthy()


# -- 7. absent is not null -------------------------------------------------------------------


def test_an_attribute_4d_did_not_send_is_a_reason_not_a_null(sync: SyncHarness) -> None:
    key = min(sync.dataset.keys("Products"))
    price = sync.erp_row("Products", key)["list_price"]
    assert price is not None
    # A privilege change now hides Price from the REST user: 4D silently omits it (seen by the
    # next session, as structure and privilege changes are).
    sync.sim.schema.hide_field("Products", "Price")
    sync.sim.expire_sessions()
    sync.dataset.update("Products", key, {"Color": "Teal"})
    run = sync.run()
    assert sync.erp_row("Products", key)["list_price"] == price
    reason = sync.rejects(run, "Products")[str(key)]
    assert "Price" in reason and "privilege" in reason


# -- 8. a bad value fails only its record ----------------------------------------------------


def test_values_that_cannot_be_stored_fail_only_their_record(sync: SyncHarness) -> None:
    surrogate, wide, nul_key, nul_stamp, fine = sorted(sync.dataset.keys("Customers"))[:5]
    sync.dataset.update("Customers", surrogate, {"LastName": RawJson('"Bad \\ud800 name"')})
    sync.dataset.update("Customers", wide, {"Phone": RawJson("123456789012345678901234567890")})
    sync.dataset.update("Customers", nul_key, {"__KEY": WireValue(f"{nul_key}\u0000")})
    sync.dataset.update("Customers", nul_stamp, {"__TIMESTAMP": WireValue("2026-01-01\u0000")})
    sync.dataset.update("Customers", fine, {"FirstName": "Still loads"})
    run = sync.run()
    rejects = sync.rejects(run, "Customers")
    assert "surrogate" in rejects[str(surrogate)]
    assert "64 bits" in rejects[str(wide)]
    assert any("NUL" in reason for key, reason in rejects.items() if key.startswith(str(nul_key)))
    assert "NUL" in rejects[str(nul_stamp)]
    assert sync.erp_row("Customers", fine)["first_name"] == "Still loads"
    assert sync.statuses(run)["Customers"] == "PARTIALLY_COMPLETED"


def test_a_bad_modified_time_is_a_warning_not_a_rejection(sync: SyncHarness) -> None:
    out_of_range, not_a_number = sorted(sync.dataset.keys("Customers"))[:2]
    sync.dataset.update(
        "Customers", out_of_range, {"FirstName": "Ann", "ModifiedTime": WireValue(90_000_000)}
    )
    sync.dataset.update("Customers", not_a_number, {"FirstName": "Bob", "ModifiedTime": WireValue("noon")})
    run = sync.run()
    assert sync.erp_row("Customers", out_of_range)["first_name"] == "Ann"
    assert sync.erp_row("Customers", not_a_number)["first_name"] == "Bob"
    assert not sync.rejects(run, "Customers")
    assert sync.log(run)["Customers"]["records_warned"] == 2
    sync.assert_trustworthy()


# -- read by key: a targeted repair --------------------------------------------------------------


def test_a_targeted_repair_rereads_exactly_the_given_records(sync: SyncHarness) -> None:
    first, second, untouched = sorted(sync.dataset.keys("Customers"))[:3]
    watermark = sync.watermark("Customers")
    with psycopg.connect(sync.url, autocommit=True) as conn:  # someone edited the ERP by hand
        conn.execute(
            "update erp.customers set phone = 'edited', row_hash = 'x' where legacy_id = any(%s)",
            ([str(first), str(second), str(untouched)],),
        )
    run = sync.run(tables=["Customers"], keys=[str(first), str(second)])
    log = sync.log(run)
    assert set(log) == {"Customers"} and log["Customers"]["mode"] == "repair"
    assert log["Customers"]["records_processed"] == 2
    assert sync.erp_row("Customers", first)["phone"] == sync.dataset.get("Customers", first)["Phone"]
    assert sync.erp_row("Customers", second)["phone"] == sync.dataset.get("Customers", second)["Phone"]
    assert sync.erp_row("Customers", untouched)["phone"] == "edited"  # only what was asked for
    assert sync.watermark("Customers") == watermark
