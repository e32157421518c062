"""Freshness alerts and the run digest (issue 18), through a capturing Airflow notifier."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from legacy_sync import cutover_ledger, digest, erp_db, freshness, notify
from legacy_sync.registry import get_table
from tests.capture_notifier import CapturingNotifier

from .conftest import SIM_PASSWORD, SIM_USER
from .sync_harness import SyncHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def sync(erp_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncHarness]:
    monkeypatch.setenv(notify.NOTIFIERS_ENV, "tests.capture_notifier:CapturingNotifier")
    CapturingNotifier.take()
    config = SimulatorConfig(username=SIM_USER, password=SIM_PASSWORD)
    with SimulatorServer(Dataset.generate(600, seed=13, dirty=0.1), config) as sim:
        yield SyncHarness(sim, erp_db_url)
    CapturingNotifier.take()


def test_a_table_past_its_limit_alerts_once_and_recovers_after_a_run(sync: SyncHarness) -> None:
    first = sync.run(tables=["Products"])
    [(synced_at,)] = sync.query(
        "select end_time from legacy_sync.sync_log where run_id = %s and table_name = 'Products'", first
    )
    limit = freshness.limit_for(get_table("Products"))
    assert limit == dt.timedelta(hours=3)  # three intervals of @hourly

    almost = freshness.check(sync.url, now=synced_at + limit - dt.timedelta(minutes=1))
    assert almost.stale == [] and CapturingNotifier.take("freshness") == []

    paused = synced_at + limit + dt.timedelta(minutes=1)  # no run since: syncing is paused
    outcome = freshness.check(sync.url, now=paused)
    assert [a.table for a in outcome.alerted] == ["Products"]  # tables never tried are not stale
    [alert] = CapturingNotifier.take("freshness")
    assert "Products" in alert.subject and "3 h" in alert.section("Stale tables").lines[0]

    later = freshness.check(sync.url, now=paused + dt.timedelta(minutes=45))
    assert [a.table for a in later.stale] == ["Products"] and later.alerted == []  # fired once
    assert CapturingNotifier.take("freshness") == []

    recovery_run = sync.run(tables=["Products"])
    recovered = freshness.check(sync.url)
    assert [a.table for a in recovered.recovered] == ["Products"] and recovered.stale == []
    assert len(CapturingNotifier.take("freshness_recovered")) == 1
    assert sync.query("select recovered_run_id from legacy_sync.freshness_alert") == [(recovery_run,)]


def test_one_digest_per_run_with_every_section_and_no_identical_repeat(sync: SyncHarness) -> None:
    tables = ["Products", "Customers"]
    first = sync.run(tables=tables)
    [message] = CapturingNotifier.take("digest")
    assert [s.title for s in message.sections] == list(digest.SECTIONS)
    assert first in message.subject
    lines = message.section("Tables").lines
    assert lines[0].startswith("Products: ") and "created" in lines[0] and "rejected" in lines[0]
    assert any("Customers: " in line for line in lines)
    assert message.section("Top reject reasons").lines, "the dirty data set has rejects"
    assert "no legacy-vs-ERP diff yet" in message.section("Readiness").lines[0]
    assert message.link is None or f"run_id={first}" in message.link

    repeat = sync.run(tables=tables)  # nothing new in 4D: the same failures
    assert CapturingNotifier.take("digest") == []
    assert sync.query("select sent from legacy_sync.digest_log where run_id = %s", repeat) == [(False,)]

    sync.sim.schema.add_field("Customers", "Region", "string", "EU")
    with erp_db.connect(sync.url, autocommit=True) as conn:  # and a diff found the ERP not ready
        cutover_ledger.begin_diff(conn, "diff:d1", None, ["Products"], 0.99)
        cutover_ledger.finish_diff(conn, "diff:d1", "BELOW_THRESHOLD", 0.5, "planted")
    changed = sync.run(tables=tables)
    [message] = CapturingNotifier.take("digest")
    assert changed in message.subject
    [drift_line] = message.section("Schema drift").lines
    assert drift_line.startswith("[info] Customers: new field Region")
    assert message.section("Readiness").lines[0].startswith("50.00 %")
    assert sync.query("select count(*) from legacy_sync.digest_log where sent") == [(2,)]
