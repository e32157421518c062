"""How the 4D connection reaches the server: https by default, no silent plain http, internal CAs.

The connection is read from ``AIRFLOW_CONN_*`` as in a deployment; TLS is a real handshake with
a fake 4D server whose certificate an internal CA signed (tests/fake_fourd.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from legacy_sync.fourd import FourDClient
from legacy_sync.hook import Legacy4DHook, is_loopback
from tests.fake_fourd import PASSWORD, USER, FakeFourD, make_internal_ca

CONN_ID = "legacy_4d_tls_test"
INSECURE = "in clear"


def use_connection(
    monkeypatch: pytest.MonkeyPatch, host: str, schema: str | None, port: int = 8044, **extra: Any
) -> None:
    conn: dict[str, Any] = {"conn_type": "legacy_4d", "host": host, "port": port, "login": USER}
    conn.update(password=PASSWORD, extra=extra)
    if schema is not None:
        conn["schema"] = schema
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", orjson.dumps(conn).decode())


def test_the_scheme_defaults_to_https(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, "erp4d.example.internal", None)
    assert Legacy4DHook(CONN_ID).settings().base_url == "https://erp4d.example.internal:8044"


def test_plain_http_to_a_remote_host_is_refused_without_the_explicit_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_connection(monkeypatch, "erp4d.example.internal", "http")
    with pytest.raises(ValueError, match="allow_insecure_http") as refused:
        Legacy4DHook(CONN_ID).settings()
    assert "https" in str(refused.value) and PASSWORD not in str(refused.value)


def test_allowed_plain_http_to_a_remote_host_warns_on_every_run(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    use_connection(monkeypatch, "fourd-simulator", "http", allow_insecure_http="true")
    with caplog.at_level(logging.WARNING, logger="legacy_sync.hook"):
        for _ in range(3):  # three tasks (or runs)
            assert Legacy4DHook(CONN_ID).settings().base_url == "http://fourd-simulator:8044"
    warnings = [r for r in caplog.records if INSECURE in r.getMessage()]
    assert len(warnings) == 3 and all(r.levelno == logging.WARNING for r in warnings)
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_plain_http_to_this_machine_is_fine(monkeypatch: pytest.MonkeyPatch, caplog: Any, host: str) -> None:
    use_connection(monkeypatch, host, "http")
    with caplog.at_level(logging.WARNING, logger="legacy_sync.hook"):
        Legacy4DHook(CONN_ID).settings()
    assert INSECURE not in caplog.text


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("LOCALHOST")
    for host in ("10.0.0.1", "erp4d.example.internal", "localhost.example.com", "", None):
        assert not is_loopback(host), host


def test_tls_verification_off_to_a_remote_host_warns(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    use_connection(monkeypatch, "erp4d.example.internal", "https", verify_tls="false")
    with caplog.at_level(logging.WARNING, logger="legacy_sync.hook"):
        assert Legacy4DHook(CONN_ID).settings().verify_tls is False
    assert "verification is off" in caplog.text


def test_a_missing_ca_bundle_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_connection(monkeypatch, "erp4d.example.internal", "https", ca_bundle=str(tmp_path / "nope.pem"))
    with pytest.raises(ValueError, match="ca_bundle"):
        Legacy4DHook(CONN_ID).settings()


def test_a_ca_bundle_lets_the_client_trust_an_internal_ca(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tls = make_internal_ca(tmp_path)
    with FakeFourD(tls) as server:
        use_connection(monkeypatch, "127.0.0.1", "https", port=server.port, ca_bundle=str(tls.ca_cert))
        hook = Legacy4DHook(CONN_ID)
        ok, message = hook.test_connection()
        assert ok, message
        assert server.state.logins == 1
        # Without the bundle the same server is not trusted: the certificate is checked, not skipped.
        plain = hook.settings()
        untrusting = type(plain)(**{**plain.__dict__, "ca_bundle": None, "max_attempts": 1})
        with FourDClient(untrusting) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
            client.catalog()


def test_probe_refuses_plain_http_to_a_remote_server(capsys: Any) -> None:
    from legacy_sync import cli

    assert cli.main(["probe", "--url", "http://erp4d.example.internal:8044", "--user", USER]) == 2
    assert "--allow-insecure-http" in capsys.readouterr().out
