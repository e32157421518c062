"""Legacy-vs-ERP diff (issue 18): differences planted in ``erp`` are found exactly, with their
columns; tolerated differences are not; the readiness score drops below its threshold and warns."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from legacy_sync import cli, cutover_ledger, diff, erp_db, notify
from tests.capture_notifier import CapturingNotifier

from .conftest import make_simulator
from .sync_harness import SyncHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def sync(erp_db_url: str) -> Iterator[SyncHarness]:
    with make_simulator(scale=600, seed=11) as sim:
        yield SyncHarness(sim, erp_db_url)


def test_the_diff_finds_exactly_the_planted_differences_and_warns(
    sync: SyncHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(notify.NOTIFIERS_ENV, "tests.capture_notifier:CapturingNotifier")
    monkeypatch.setenv(diff.THRESHOLD_ENV, "0.999")
    CapturingNotifier.take()
    sync.run()
    product = sync.query("select legacy_id from erp.products order by id limit 1")[0][0]
    customer = sync.query("select legacy_id from erp.customers where last_name is not null limit 1")[0][0]
    gone, kept = (r[0] for r in sync.query("select legacy_id from erp.inventory order by legacy_id limit 2"))
    with erp_db.connect(sync.url, autocommit=True) as conn:
        # A changed value, a missing row, an extra row ...
        conn.execute("update erp.products set list_price = list_price + 1 where legacy_id = %s", (product,))
        conn.execute("delete from erp.inventory where legacy_id = %s", (gone,))
        conn.execute(
            "insert into erp.inventory (id, legacy_id, product_id, location, quantity, created_run_id,"
            " updated_run_id, row_hash, synced_at)"
            " select max(id) + 1, '999999001', min(product_id), 'Nowhere', 1, 'planted', 'planted', '', now()"
            " from erp.inventory"
        )
        # ... and what the tolerances accept: blanks and line ends around text, a number's scale.
        conn.execute(
            "update erp.customers set last_name = E'  ' || last_name || E'\\r\\n' where legacy_id = %s",
            (customer,),
        )
        conn.execute("update erp.inventory set quantity = quantity where legacy_id = %s", (kept,))
        conn.execute("update erp.orders set total_due = round(total_due, 6)")

    outcome = diff.run_diff(sync.url, "diff:test", sync.client)

    with erp_db.connect(sync.url) as conn:
        found = cutover_ledger.diff_keys(conn, "diff:test")
    # The generated data holds a record the mapping rejects (a known reject): not a difference.
    assert [(t, k, s, c) for t, k, s, c, _ in found if s != "rejected"] == [
        ("Inventory", "999999001", "extra_in_erp", []),
        ("Inventory", gone, "missing_in_erp", []),
        ("Products", product, "different", ["list_price"]),
    ]
    by_table = {row["table_name"]: row for row in outcome.tables}
    assert all(row["rejected"] == row["known_rejects"] for row in outcome.tables)
    assert set(by_table) == {
        "Products",
        "Customers",
        "Orders",
        "OrderLines",
        "Invoices",
        "Inventory",
        "BillOfMaterials",
    }
    assert by_table["Products"]["differing_columns"] == {"list_price": 1}
    assert by_table["Customers"]["different"] == 0 and by_table["Customers"]["readiness"] == 1
    inventory = by_table["Inventory"]
    assert inventory["missing_in_erp"] == 1 and inventory["extra_in_erp"] == 1
    assert float(inventory["readiness"]) == pytest.approx(
        (inventory["fourd_records"] - 1) / inventory["fourd_records"]
    )

    total = sum(r["fourd_records"] - r["known_rejects"] for r in outcome.tables)
    assert outcome.readiness == pytest.approx((total - 2) / total)
    assert outcome.status == "BELOW_THRESHOLD"
    assert any(w.startswith("Inventory: only") for w in outcome.warnings)
    assert any(w.startswith("overall readiness") for w in outcome.warnings)
    [warning] = CapturingNotifier.take("readiness")
    assert "below" in warning.subject
    # The diff took nothing of the sync's: its landed rows are gone, its mapping has its own schema.
    assert sync.query("select count(*) from legacy_staging.products_raw where run_id = 'diff:test'") == [(0,)]
    assert sync.query(
        "select count(*) from legacy_transform.int_products__validated where run_id = 'diff:test'"
    ) == [(0,)]

    # The same keys as CSV for the ERP team (legacy-sync diff --show ... --csv).
    exported = tmp_path / "diff.csv"
    assert cli.main(["diff", "--show", "diff:test", "--csv", str(exported), "--database-url", sync.url]) == 1
    rows = list(csv.DictReader(exported.open(encoding="utf-8-sig")))
    assert {
        (r["table"], r["legacy_id"], r["status"], r["columns"]) for r in rows if r["status"] != "rejected"
    } == {
        ("Inventory", "999999001", "extra_in_erp", ""),
        ("Inventory", gone, "missing_in_erp", ""),
        ("Products", product, "different", "list_price"),
    }
