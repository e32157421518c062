"""The reduced fault suite in ``make test``; ``make reliability`` runs every case 3 times."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from legacy4d_simulator import Dataset
from legacy_sync import ledger
from legacy_sync.registry import TABLES
from reliability.cases import CONTENT, REDUCED, expected_rejects, reconcile, run_case

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.mark.parametrize("case", REDUCED)
def test_fault_loses_duplicates_and_misreports_nothing(case: str, pg_server: object) -> None:
    outcome = run_case(case)
    assert outcome.error is None, outcome.error
    assert outcome.fault_fired, f"the fault never happened, so nothing was tested: {outcome.fired}"
    assert outcome.expected > 1000
    assert (outcome.lost, outcome.duplicated, outcome.stale, outcome.extra) == (0, 0, 0, 0), outcome
    # Rejects are exactly the planted bad records and their dependents: no good record rejected,
    # no bad one loaded.
    assert (outcome.wrongly_rejected, outcome.bad_loaded) == (0, 0), outcome
    assert outcome.session_stored, "the run did not share its 4D session through the DAG's store"
    assert not outcome.untruthful, outcome.untruthful


def test_expected_rejects_are_the_planted_records_and_their_dependents() -> None:
    dataset = Dataset.generate(400, seed=3, dirty=0.1)
    expected = expected_rejects(dataset)
    planted = {(table, str(key)) for table, key, _ in dataset.planted_defects()}
    assert planted <= {(table, key) for table, keys in expected.items() for key in keys}
    bad_orders = {int(k) for k in expected["Orders"]}
    good_orders = sorted(set(dataset.keys("Orders")) - bad_orders)
    good_product = min(set(dataset.keys("Products")) - {int(k) for k in expected["Products"]})
    line = {"ProductID": good_product, "Quantity": 1, "UnitPrice": 1.0, "UnitPriceDiscount": 0}
    line["LineTotal"] = 1.0
    under_bad = dataset.insert("OrderLines", {**line, "OrderID": min(bad_orders)})
    under_good = dataset.insert("OrderLines", {**line, "OrderID": good_orders[0]})
    expected = expected_rejects(dataset)
    assert str(under_bad) in expected["OrderLines"], "a line of a rejected order is rejected with it"
    assert str(under_good) not in expected["OrderLines"], "a good line of a good order is no reject"
    assert ("OrderLines", str(under_bad)) not in planted


def test_the_reconciliation_catches_a_good_record_rejected_and_a_bad_one_loaded(erp_db_url: str) -> None:
    """What the cases' verdict rests on: a pipeline that rejected a good record (and told so in
    sync_error and open_reject) or loaded a bad one must not pass as 'nothing lost'."""
    dataset = Dataset.generate(150, seed=5, dirty=0.1)
    must_reject = expected_rejects(dataset)
    good = min(set(dataset.keys("Customers")) - {int(k) for k in must_reject["Customers"]})
    bad = min(int(k) for k in must_reject["Customers"])
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        ledger.apply_schema(conn)
        for table in TABLES:  # erp as a faithful sync leaves it: every good record, no bad one
            source_field, column = CONTENT[table.name]
            target = sql.Identifier("erp", table.snake_name)
            conn.execute(
                sql.SQL(
                    "create table {} (legacy_id bigint, {} text, is_deleted boolean default false)"
                ).format(target, sql.Identifier(column))
            )
            for key in dataset.keys(table.name):
                if str(key) in must_reject[table.name]:
                    reject(conn, table.name, key, "planted")
                else:
                    value = (dataset.get(table.name, key) or {}).get(source_field)
                    conn.execute(
                        sql.SQL("insert into {} (legacy_id, {}) values (%s, %s)").format(
                            target, sql.Identifier(column)
                        ),
                        (key, None if value is None else str(value)),
                    )
        faithful = reconcile(dataset, erp_db_url)
        assert all(f["lost"] == f["wrongly_rejected"] == f["bad_loaded"] == 0 for f in faithful.values())
        # The good customer rejected instead of loaded; the bad one loaded instead of rejected.
        conn.execute("delete from erp.customers where legacy_id = %s", (good,))
        reject(conn, "Customers", good, "CompanyName is required")
        conn.execute(
            "delete from legacy_sync.open_reject where table_name = 'Customers' and record_id = %s",
            (str(bad),),
        )
        conn.execute("insert into erp.customers (legacy_id) values (%s)", (bad,))
    customers = reconcile(dataset, erp_db_url)["Customers"]
    assert (customers["lost"], customers["wrongly_rejected"], customers["bad_loaded"]) == (0, 1, 1)
    assert any(f"Customers {good} rejected: CompanyName is required" in m for m in customers["misjudged"])


def reject(conn: psycopg.Connection[Any], table: str, key: int, reason: str) -> None:
    """Record a reject as the ledger does: a sync_error row of a run and the standing open reject."""
    log_id = conn.execute(
        "insert into legacy_sync.sync_log (run_id, table_name, mode, status, records_failed)"
        " values ('r1', %s, 'full', 'PARTIALLY_COMPLETED', 1) on conflict (run_id, table_name)"
        " do update set records_failed = legacy_sync.sync_log.records_failed + 1 returning id",
        (table,),
    ).fetchone()[0]
    conn.execute(
        "insert into legacy_sync.sync_error (sync_log_id, record_id, error_message) values (%s, %s, %s)",
        (log_id, str(key), reason),
    )
    conn.execute(
        "insert into legacy_sync.open_reject"
        " (table_name, record_id, first_run_id, last_run_id, error_message, retry)"
        " values (%s, %s, 'r1', 'r1', %s, true)",
        (table, str(key), reason),
    )
