"""Schema drift (issue 18): 4D's structure changes between runs, each reported once with its
severity, and the table's policy applied (evolve loads on, freeze waits for a person)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from legacy_sync import drift, erp_db

from .conftest import make_simulator
from .sync_harness import SyncHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TABLES = ["Products", "Customers"]


@pytest.fixture
def sync(erp_db_url: str) -> Iterator[SyncHarness]:
    with make_simulator(scale=600, seed=5) as sim:
        yield SyncHarness(sim, erp_db_url)


def reports(sync: SyncHarness, run_id: str) -> list[tuple[str, str | None, str, str, str]]:
    """(table, attribute, change, severity, status) first reported by ``run_id``."""
    return sync.query(
        "select table_name, attribute, change, severity, status from legacy_sync.schema_drift"
        " where run_id = %s order by table_name, attribute",
        run_id,
    )


def test_evolve_reports_each_change_once_with_its_severity_and_loads_on(sync: SyncHarness) -> None:
    baseline = sync.run(tables=TABLES)
    assert reports(sync, baseline) == []  # the first sight of a structure is the baseline

    sync.sim.schema.add_field("Customers", "Region", "string", "EU")
    sync.sim.schema.retype_field("Customers", "Phone", "number")
    sync.sim.schema.remove_field("Products", "ModifiedTime")  # read by the sync, not mapped
    changed = sync.run(tables=TABLES)
    assert reports(sync, changed) == [
        ("Customers", "Phone", "retyped", "warning", "REPORTED"),
        ("Customers", "Region", "added", "info", "REPORTED"),
        ("Products", "ModifiedTime", "removed", "breaking", "REPORTED"),
    ]
    statuses = sync.statuses(changed)
    assert "FAILED" not in statuses.values(), sync.log(changed)  # evolve: loaded on

    sync.sim.schema.unexpose_table("Customers")
    hidden = sync.run(tables=TABLES)
    assert reports(sync, hidden) == [("Customers", None, "unexposed", "breaking", "REPORTED")]
    log = sync.log(hidden)
    assert log["Customers"]["status"] == "FAILED"
    assert "no longer exposes" in log["Customers"]["error_message"]
    assert log["Products"]["status"] != "FAILED"

    again = sync.run(tables=TABLES)  # nothing new: nothing reported again
    assert reports(sync, again) == []
    assert sync.statuses(again)["Customers"] == "FAILED"


def test_freeze_fails_the_table_on_a_breaking_change_until_a_person_accepts_it(
    sync: SyncHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(drift.POLICY_ENV, "Customers=freeze")
    sync.run(tables=["Customers"])

    sync.sim.schema.add_field("Customers", "Region", "string", "EU")  # info: a frozen table loads on
    added = sync.run(tables=["Customers"])
    assert reports(sync, added) == [("Customers", "Region", "added", "info", "REPORTED")]
    assert sync.statuses(added)["Customers"] != "FAILED"

    sync.sim.schema.remove_field("Customers", "ModifiedTime")
    frozen = sync.run(tables=["Customers"])
    assert reports(sync, frozen) == [("Customers", "ModifiedTime", "removed", "breaking", "PENDING")]
    log = sync.log(frozen)["Customers"]
    assert log["status"] == "FAILED"
    assert "frozen" in log["error_message"] and "ModifiedTime removed" in log["error_message"]

    still = sync.run(tables=["Customers"])  # reported once, still waiting
    assert reports(sync, still) == []
    assert sync.statuses(still)["Customers"] == "FAILED"

    with erp_db.connect(sync.url, autocommit=True) as conn:
        assert drift.accept(conn, ["Customers"], "a test") == {"Customers": 1}
    accepted = sync.run(tables=["Customers"])
    assert sync.statuses(accepted)["Customers"] != "FAILED", sync.log(accepted)
    assert sync.query("select status from legacy_sync.schema_drift where change = 'removed'") == [
        ("APPROVED",)
    ]
