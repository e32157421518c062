"""``legacy-sync probe`` against the simulator: it finds what a real ERP's admin would be asked."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from legacy_sync.probe import probe

from .conftest import SIM_PASSWORD, SIM_USER, client_for, make_simulator

pytestmark = pytest.mark.integration


def test_probe_reports_tables_tracking_cookie_and_limits() -> None:
    with make_simulator(
        cookie_name="4DSID_LegacyERP",
        untracked_tables=frozenset({"Customers"}),
        hidden_tables=frozenset({"Inventory"}),
    ) as sim:
        sim.faults.set("page_cap", max=1000)
        with client_for(sim) as client:
            report = probe(client)
    tables = {t.name: t for t in report.tables}
    assert report.cookie_name == "4DSID_LegacyERP"
    assert tables["Products"].exposed and tables["Products"].key == "ProductID"
    assert tables["Products"].change_tracking and not tables["Customers"].change_tracking
    assert not tables["Inventory"].exposed
    assert tables["OrderLines"].records == sim.dataset.count("OrderLines")
    assert report.deleted_records_exposed
    assert report.time_unit == "milliseconds"
    assert report.date_filter["YYYY-MM-DD"].startswith("accepted")
    assert report.largest_page["table"] == "OrderLines"


def test_probe_command_prints_json() -> None:
    with make_simulator() as sim:
        env = {**os.environ, "SIM_PW": SIM_PASSWORD}
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "legacy_sync.cli",
                "probe",
                "--url",
                sim.base_url,
                "--user",
                SIM_USER,
                "--password-env",
                "SIM_PW",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    report = orjson.loads(out[out.index("{") :])
    assert report["cookie_name"] == "WASID4D"
    assert SIM_PASSWORD not in out
    assert [t["name"] for t in report["tables"]][:2] == ["Products", "Customers"]
