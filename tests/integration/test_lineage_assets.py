"""Lineage and Asset events of whole runs (landing, dbt, reconcile, summary in this process), against
the simulator and a real PostgreSQL: what the steps tell Airflow's hook lineage collector, turned
into OpenLineage datasets by the converters registered in the provider info; and which ERP tables a
run announces as changed, with what counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from airflow.providers.openlineage.utils.utils import translate_airflow_asset
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.sdk.lineage import HookLineageCollector

from legacy_sync import erp_assets, lineage
from legacy_sync.fourd.auth import MemorySessionStore
from legacy_sync.hook import Legacy4DHook
from legacy_sync.registry import TABLES

from .conftest import SIM_PASSWORD, SIM_USER, make_simulator
from .sync_harness import SyncHarness

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def sync(erp_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncHarness]:
    with make_simulator(scale=300, seed=5) as sim:
        harness = SyncHarness(sim, erp_db_url)
        monkeypatch.setenv(
            "AIRFLOW_CONN_LEGACY_4D_LINEAGE_IT",
            json.dumps(
                {
                    "conn_type": "legacy_4d",
                    "host": "127.0.0.1",
                    "port": int(sim.base_url.rsplit(":", 1)[1]),
                    "schema": "http",
                    "login": SIM_USER,
                    "password": SIM_PASSWORD,
                    "extra": {"page_size": 250},
                }
            ),
        )
        store = MemorySessionStore()
        # The DAG's path: the hook's client (which reports what it reads).
        harness.client = lambda: Legacy4DHook("legacy_4d_lineage_it", session_store=store).get_conn()  # type: ignore[method-assign]
        yield harness


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> HookLineageCollector:
    """As in a task with the OpenLineage provider listening."""
    found = HookLineageCollector()
    monkeypatch.setattr(lineage, "collector", lambda: found)
    return found


def _datasets(infos: list[Any]) -> dict[str, Any]:
    """{namespace/name: OpenLineage dataset}, through Airflow's converter registry."""
    found = {}
    for info in infos:
        dataset = translate_airflow_asset(info.asset, info.context)
        assert dataset is not None, f"no OpenLineage converter for {info.asset.uri}"
        found[f"{dataset.namespace}/{dataset.name}"] = dataset
    return found


def test_a_run_reports_every_dataclass_read_and_every_table_written(
    sync: SyncHarness, collector: HookLineageCollector
) -> None:
    run_id = sync.run("full")
    port = int(sync.sim.base_url.rsplit(":", 1)[1])
    database = sync.url.rsplit("/", 1)[1]
    pg = f"postgres://{lineage.ErpDatabase.from_conninfo(sync.url).host}:"
    collected = collector.collected_assets
    inputs = _datasets(collected.inputs)
    outputs = _datasets(collected.outputs)

    for table in TABLES:
        assert f"legacy4d://127.0.0.1:{port}/{table.name}" in inputs, table.name
    landed = dict(
        sync.query(
            "select table_name, records_landed from legacy_sync.landing_batch where run_id = %s", run_id
        )
    )
    staged = {k: v for k, v in outputs.items() if ".legacy_staging." in k}
    assert {k.rsplit(".", 1)[1] for k in staged} == {t.raw_table for t in TABLES}
    for table in TABLES:
        (dataset,) = [d for k, d in staged.items() if k.endswith(f".{table.raw_table}")]
        assert dataset.namespace.startswith(pg) and dataset.name.startswith(f"{database}.")
        assert dataset.outputFacets["outputStatistics"].rowCount == landed[table.name] > 0

    log = sync.log(run_id)
    merged = {k.rsplit(".", 1)[1]: d for k, d in outputs.items() if ".erp." in k}
    assert set(merged) == set(erp_assets.ERP_TABLES)
    for table in TABLES:
        row = log[table.name]
        written = row["records_created"] + row["records_updated"] + row["records_deleted"]
        assert merged[table.snake_name].outputFacets["outputStatistics"].rowCount == written > 0
    categories = sync.query("select count(*) from erp.categories")[0][0]
    assert merged["categories"].outputFacets["outputStatistics"].rowCount == categories > 0

    checked = {k.rsplit(".", 1)[1]: d for k, d in inputs.items() if ".erp." in k}
    assert set(checked) == {t.snake_name for t in TABLES}
    for dataset in checked.values():
        assertions = {a.assertion: a for a in dataset.inputFacets["dataQualityAssertions"].assertions}
        assert assertions["no_records_lost"].success and assertions["no_records_lost"].actual == "0"
        assert assertions["row_count"].success, assertions["row_count"]


def test_only_tables_whose_content_changed_are_announced_with_their_counts(
    sync: SyncHarness, erp_db_url: str
) -> None:
    first = sync.run("full")
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        everything = erp_assets.changes(conn, first, "legacy_erp_sync")
    assert set(everything) == set(erp_assets.ERP_TABLES)
    assert everything["products"]["created"] == sync.log(first)["Products"]["records_created"] > 0

    quiet = sync.run()
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        assert erp_assets.changes(conn, quiet) == {}

    defects = {(t, k) for t, k, _ in sync.dataset.planted_defects()}
    order = next(k for k in sorted(sync.dataset.keys("Orders")) if ("Orders", k) not in defects)
    sync.dataset.update("Orders", order, {"Freight": 12.5})
    changed_run = sync.run()
    events = OutletEventAccessors()
    changed = erp_assets.announce(erp_db_url, changed_run, "legacy_erp_sync", events)
    assert list(changed) == ["orders"]
    extra = changed["orders"]
    assert (extra["created"], extra["updated"], extra["deleted"]) == (0, 1, 0)
    assert extra["run_id"] == changed_run and extra["table"] == "erp.orders"
    log = sync.log(changed_run)["Orders"]
    assert (extra["watermark_from"], extra["watermark_to"]) == (log["watermark_from"], log["watermark_to"])
    assert extra["watermark_from"] is not None and extra["watermark_to"] is not None
    (event,) = events[erp_assets.CHANGES_ALIAS].asset_alias_events
    assert event.dest_asset_key.name == "erp.orders" and event.extra == extra
