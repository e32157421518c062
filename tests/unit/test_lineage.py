"""The lineage URI schemes (``legacy4d``, ``erp-postgres``): sanitisers, factories, OpenLineage
converters, their registration through the provider entry point, and the hook's reporting."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow.sdk.lineage import HookLineageCollector
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
from openlineage.client.event_v2 import InputDataset, OutputDataset

from legacy_sync import lineage
from legacy_sync.fourd import FourDClient, FourDSettings
from legacy_sync.fourd.keys import KeyOrder
from legacy_sync.fourd.wire import Page
from legacy_sync.hook import Legacy4DHook


def _sanitized(uri: str, sanitize: Any) -> str:
    return urllib.parse.urlunsplit(sanitize(urllib.parse.urlsplit(uri)))


# -- legacy4d:// ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("legacy4d://ERP.Example.COM:8044/Products", "legacy4d://erp.example.com:8044/Products"),
        ("legacy4d://erp:8044/OrderLines/", "legacy4d://erp:8044/OrderLines"),
        ("legacy4d://sync@erp:8044/Customers", "legacy4d://erp:8044/Customers"),
        ("legacy4d://[::1]:80/Orders", "legacy4d://[::1]:80/Orders"),
    ],
)
def test_fourd_uri_is_normalised_keeping_the_dataclass_case(uri: str, expected: str) -> None:
    assert _sanitized(uri, lineage.sanitize_fourd_uri) == expected


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("legacy4d://erp/Products", "port"),
        ("legacy4d://:8044/Products", "host"),
        ("legacy4d://erp:8044/", "dataclass"),
        ("legacy4d://erp:8044/rest/Products", "dataclass"),
        ("legacy4d://erp:8044/Products?$top=1", "query"),
        ("legacy4d://erp:8044/Prod ucts", "dataclass"),
    ],
)
def test_fourd_uri_without_host_port_or_one_dataclass_is_refused(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        lineage.sanitize_fourd_uri(urllib.parse.urlsplit(uri))


def test_dataclass_names_are_case_sensitive() -> None:
    assert Asset("legacy4d://erp:8044/Products").uri != Asset("legacy4d://erp:8044/products").uri
    assert Asset("legacy4d://ERP:8044/Products").uri == Asset("legacy4d://erp:8044/Products").uri


def test_provider_registers_both_schemes_with_airflow() -> None:
    """Through the ``apache_airflow_provider`` entry point, as a worker finds them."""
    runtime = ProvidersManagerTaskRuntime()
    assert runtime.asset_uri_handlers["legacy4d"] is lineage.sanitize_fourd_uri
    assert runtime.asset_factories["legacy4d"] is lineage.create_fourd_asset
    assert runtime.asset_to_openlineage_converters["legacy4d"] is lineage.fourd_to_openlineage
    assert runtime.asset_uri_handlers["erp-postgres"] is lineage.sanitize_erp_uri
    assert runtime.asset_factories["erp-postgres"] is lineage.create_erp_asset
    assert runtime.asset_to_openlineage_converters["erp-postgres"] is lineage.erp_to_openlineage
    # Airflow's own Asset applies our sanitiser.
    asset = Asset("legacy4d://ERP.example.com:8044/BillOfMaterials/")
    assert asset.uri == "legacy4d://erp.example.com:8044/BillOfMaterials"
    assert asset.normalized_uri == asset.uri


def test_fourd_factory_and_converter() -> None:
    asset = lineage.create_fourd_asset(host="ERP.example.com", port=8044, dataclass="OrderLines")
    assert asset.uri == "legacy4d://erp.example.com:8044/OrderLines"
    dataset = lineage.fourd_to_openlineage(asset)
    assert (dataset.namespace, dataset.name) == ("legacy4d://erp.example.com:8044", "OrderLines")
    fields = {f.name: f.type for f in dataset.facets["schema"].fields}
    assert fields["OrderLineID"] is None and fields["Quantity"] == "integer"
    assert fields["ModifiedDate"] == "date"
    assert dataset.facets["dataSource"].uri == "legacy4d://erp.example.com:8044"
    unknown = lineage.fourd_to_openlineage(Asset("legacy4d://erp:1/NotSynced"))
    assert unknown.name == "NotSynced" and "schema" not in unknown.facets


# -- erp-postgres:// -----------------------------------------------------------------------------


def test_erp_uri_is_normalised() -> None:
    assert (
        _sanitized("erp-postgres://DB.local/erp/legacy_staging/products_raw", lineage.sanitize_erp_uri)
        == "erp-postgres://db.local:5432/erp/legacy_staging/products_raw"
    )
    with pytest.raises(ValueError, match="database"):
        lineage.sanitize_erp_uri(urllib.parse.urlsplit("erp-postgres://db:5432/erp/products"))


def test_erp_converter_names_tables_like_the_postgres_provider() -> None:
    from airflow.providers.postgres.assets.postgres import convert_asset_to_openlineage

    ours = lineage.erp_to_openlineage(
        lineage.create_erp_asset(host="db", port=5433, database="erp", schema="erp", table="orders")
    )
    theirs = convert_asset_to_openlineage(Asset("postgres://db:5433/erp/erp/orders"), None)
    assert (
        (ours.namespace, ours.name)
        == (theirs.namespace, theirs.name)
        == ("postgres://db:5433", "erp.erp.orders")
    )


def test_row_counts_become_output_statistics() -> None:
    asset = lineage.create_erp_asset(
        host="db", database="erp", schema="legacy_staging", table="orders_raw", extra={"rowCount": 42}
    )
    dataset = lineage.erp_to_openlineage(asset)
    assert isinstance(dataset, OutputDataset)
    assert dataset.outputFacets["outputStatistics"].rowCount == 42


def test_reconciliation_becomes_a_data_quality_assertion() -> None:
    assertions = [
        {"assertion": "no_records_lost", "success": False, "expected": 0, "actual": 3, "description": "lost"},
        {"assertion": "row_count", "success": True, "expected": 10, "actual": 10},
    ]
    asset = lineage.create_erp_asset(
        host="db", database="erp", schema="erp", table="orders", extra={"assertions": assertions}
    )
    dataset = lineage.erp_to_openlineage(asset)
    assert isinstance(dataset, InputDataset)
    found = dataset.inputFacets["dataQualityAssertions"].assertions
    assert [(a.assertion, a.success, a.expected, a.actual) for a in found] == [
        ("no_records_lost", False, "0", "3"),
        ("row_count", True, "10", "10"),
    ]


# -- reporting -----------------------------------------------------------------------------------


def test_nothing_is_collected_without_a_lineage_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OpenLineage transport here: Airflow's collector is a no-op, and the hook's client is the
    plain one."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEGACY_4D_PLAIN",
        '{"conn_type": "legacy_4d", "host": "127.0.0.1", "port": 1, "schema": "http"}',
    )
    assert lineage.collector() is None
    client = Legacy4DHook("legacy_4d_plain").get_conn()
    assert type(client) is FourDClient
    lineage.report_landing("host=db dbname=erp", "Products", 5)  # a no-op, not an error


class _Pages:
    """Stands in for the HTTP side: every collection request answers one page of one record."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def page(self, dataclass: str, **kwargs: Any) -> Page:
        self.asked.append(dataclass)
        return Page(entities=[{"__KEY": "1", "ID": 1}], count=1, global_stamp=None)


def test_the_hook_reports_each_dataclass_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    collector = HookLineageCollector()
    monkeypatch.setattr(lineage, "collector", lambda: collector)
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEGACY_4D_LINEAGE",
        '{"conn_type": "legacy_4d", "host": "ERP.example.com", "port": 8044, "schema": "https"}',
    )
    hook = Legacy4DHook("legacy_4d_lineage")
    client = hook.get_conn()
    assert isinstance(client, lineage.ReportingFourDClient)
    fake = _Pages()
    monkeypatch.setattr(FourDClient, "page", lambda self, dataclass, **kw: fake.page(dataclass, **kw))
    monkeypatch.setattr(FourDClient, "_key_order", lambda self, *args: KeyOrder(numeric=True))
    client.page("Products", top=1)  # a probe (count, window): not a read of records
    assert list(client.iter_by_key("Customers", "ID"))
    assert list(client.iter_by_key("Customers", "ID"))  # twice: one input
    assert list(client.get_records("Orders", "ID", [1]))
    collected = collector.collected_assets
    assert [a.asset.uri for a in collected.inputs] == [
        "legacy4d://erp.example.com:8044/Customers",
        "legacy4d://erp.example.com:8044/Orders",
    ]
    assert all(a.context is hook for a in collected.inputs)
    assert collected.outputs == []


def test_default_port_follows_the_connection_scheme() -> None:
    assert lineage.fourd_endpoint("https://erp.example.com") == ("erp.example.com", 443)
    assert lineage.fourd_endpoint("http://127.0.0.1") == ("127.0.0.1", 80)
    assert lineage.fourd_endpoint("http://127.0.0.1:8044") == ("127.0.0.1", 8044)


def test_landing_reports_the_staging_table_with_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    collector = HookLineageCollector()
    monkeypatch.setattr(lineage, "collector", lambda: collector)
    lineage.report_landing("postgresql://sync@DB:5433/erp_prod", "OrderLines", 1234)
    (output,) = collector.collected_assets.outputs
    assert output.asset.uri == "erp-postgres://db:5433/erp_prod/legacy_staging/order_lines_raw"
    dataset = lineage.erp_to_openlineage(output.asset)
    assert (dataset.namespace, dataset.name) == (
        "postgres://db:5433",
        "erp_prod.legacy_staging.order_lines_raw",
    )
    assert dataset.outputFacets["outputStatistics"].rowCount == 1234


def test_a_lineage_problem_never_fails_the_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def add_output_asset(self, **kwargs: Any) -> None:
            raise RuntimeError("collector broke")

    monkeypatch.setattr(lineage, "collector", lambda: Broken())
    lineage.report_landing("host=db dbname=erp", "Products", 1)  # logged, not raised


def test_settings_of_reporting_client_are_the_hooks() -> None:
    settings = FourDSettings(base_url="http://127.0.0.1:1")
    client = lineage.ReportingFourDClient(settings, None, lambda name: None)
    assert client.settings is settings
    client.close()


def test_outside_airflow_the_pipeline_never_loads_airflow_for_lineage() -> None:
    """The CLI, the benchmark and the suites run the pipeline without Airflow: no collector asked."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from legacy_sync import lineage, pipeline\n"
        "assert lineage.collector() is None\n"
        "lineage.report_landing('host=db dbname=erp', 'Products', 1)\n"
        "assert not [m for m in sys.modules if m.startswith('airflow')], 'airflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
