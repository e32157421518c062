"""Legacy4DHook as Airflow uses it: the connection form's fields and the UI's "Test" button."""

from __future__ import annotations

import orjson
import pytest

from legacy_sync.hook import Legacy4DHook
from legacy_sync.provider import get_provider_info

from .conftest import SIM_PASSWORD, SIM_USER, make_simulator

pytestmark = pytest.mark.integration


def connection_json(base_url: str, password: str, **extra: object) -> str:
    host, port = base_url.removeprefix("http://").split(":")
    return orjson.dumps(
        {
            "conn_type": "legacy_4d",
            "host": host,
            "port": int(port),
            "schema": "http",
            "login": SIM_USER,
            "password": password,
            "extra": extra,
        }
    ).decode()


def test_the_test_button_logs_in_and_reads_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    with make_simulator() as sim:
        monkeypatch.setenv(
            "AIRFLOW_CONN_LEGACY_4D_UI", connection_json(sim.base_url, SIM_PASSWORD, page_size=750)
        )
        hook = Legacy4DHook("legacy_4d_ui")
        assert hook.settings().page_size == 750
        ok, message = hook.test_connection()
        assert ok, message
        assert "Products" in message and "OrderLines" in message
        monkeypatch.setenv("AIRFLOW_CONN_LEGACY_4D_UI", connection_json(sim.base_url, "wrong"))
        ok, message = Legacy4DHook("legacy_4d_ui").test_connection()
    assert not ok and "login refused" in message and "wrong" not in message


def test_the_connection_form_is_declared_for_the_ui() -> None:
    [conn_type] = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == Legacy4DHook.conn_type == "legacy_4d"
    assert conn_type["hook-class-name"] == "legacy_sync.hook.Legacy4DHook"
    assert {"page_size", "verify_tls", "session_minutes", "connect_timeout", "read_timeout"} <= set(
        conn_type["conn-fields"]
    )
    assert conn_type["conn-fields"]["verify_tls"]["schema"]["default"] is True  # TLS verified unless said
