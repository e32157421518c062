"""The ERP tables' Assets and the events that announce changes (no database: the pure parts)."""

from __future__ import annotations

import pytest
from airflow.sdk import Asset
from airflow.sdk.execution_time.context import OutletEventAccessors

from legacy_sync import erp_assets
from legacy_sync.registry import TABLES


def test_one_asset_per_erp_table_named_as_consumers_write_it() -> None:
    assert set(erp_assets.ERP_ASSETS) == {"categories", *(t.snake_name for t in TABLES)}
    for table, asset in erp_assets.ERP_ASSETS.items():
        assert asset == Asset(f"erp.{table}")  # what a consumer DAG declares, nothing else
        assert asset.name == asset.uri == f"erp.{table}"
    with pytest.raises(KeyError, match="unknown ERP table"):
        erp_assets.erp_asset("Products")


def test_approved_deletions_are_announced_only_where_rows_were_deleted() -> None:
    events = OutletEventAccessors()
    changed = erp_assets.announce_deletions(
        {"Customers": 40, "Orders": 0}, "manual__1", "legacy_erp_held_deletes", events
    )
    assert list(changed) == ["customers"]
    assert (changed["customers"]["deleted"], changed["customers"]["created"]) == (40, 0)
    (event,) = events[erp_assets.CHANGES_ALIAS].asset_alias_events
    assert (event.dest_asset_key.name, event.dest_asset_key.uri) == ("erp.customers", "erp.customers")
    assert event.extra == changed["customers"] and event.extra["run_id"] == "manual__1"


def test_nothing_changed_means_no_event() -> None:
    events = OutletEventAccessors()
    erp_assets.emit(events, {})
    assert events[erp_assets.CHANGES_ALIAS].asset_alias_events == []
