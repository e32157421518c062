"""``legacy-sync coverage`` against the simulator (issue 18): what 4D's REST user can see that the
sync does not move, kept for the monitor."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from legacy_sync import cli

from .conftest import SIM_PASSWORD, SIM_USER, make_simulator

pytestmark = pytest.mark.integration


def test_coverage_lists_what_is_not_synced_or_not_sent(
    erp_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with make_simulator(scale=300) as sim:
        sim.schema.add_field("Customers", "Region", "string", "EU")
        sim.schema.hide_field("Products", "Color")  # a privilege: in $catalog, not in the records
        sim.schema.remove_field("Orders", "Freight")
        sim.schema.unexpose_table("Invoices")
        port = urlsplit(sim.base_url).port
        monkeypatch.setenv(
            "AIRFLOW_CONN_LEGACY_4D_DEFAULT", f"legacy-4d://{SIM_USER}:{SIM_PASSWORD}@127.0.0.1:{port}/http"
        )
        code = cli.main(["coverage", "--database-url", erp_db_url, "--json"])
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{\n") :])  # after any log lines Airflow's logging put there
    assert code == 1 and report["complete"] is False
    assert [(f["kind"], f["text"]) for f in report["findings"]] == [
        ("not sent", "Products.Color: in $catalog but not in 4D's records (a privilege hides it)"),
        ("field not synced", "Customers.Region"),
        ("not sent", "Orders.Freight: gone from 4D's $catalog"),
        ("not sent", "Invoices: 4D no longer exposes the table"),
    ]
    assert "single-field primary key" in report["invisible"]

    import psycopg

    with psycopg.connect(erp_db_url) as conn:
        stored = conn.execute(
            "select source, fields_unsynced, complete, report -> 'verdict' from legacy_sync.coverage_report"
        ).fetchall()
    assert stored == [("cli", 1, False, report["verdict"])]
