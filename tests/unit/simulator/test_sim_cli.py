"""The console entry: ``python -m legacy4d_simulator serve`` prints its URL and serves."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest

from legacy4d_simulator.cli import build_parser, main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_generated_data_out_of_process() -> None:
    """`serve --generate` prints one start line and answers /rest and /_sim with faults from flags."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "legacy4d_simulator",
            "serve",
            "--port",
            str(port),
            "--generate",
            "3000",
            "--cookie-name",
            "4DSID_LegacyERP",
            "--page-cap",
            "20",
            "--balancer-cookie",
            "SRVID",
            "--clock-offset-days",
            "-3650",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("4D simulator serving ")
        assert f"at http://127.0.0.1:{port}/rest" in line
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(50):
                try:
                    r = c.get("/rest/Orders", params={"$top": 100})
                    break
                except httpx.ConnectError:
                    import time

                    time.sleep(0.1)
            assert r.status_code == 200
            assert r.json()["__SENT"] == 20
            assert "4DSID_LegacyERP" in r.cookies
            assert r.cookies["SRVID"] == "node1"
            dates = r.headers.get_list("date")  # one Date header, from the simulated clock
            assert len(dates) == 1
            assert int(dates[0].split()[3]) < datetime.now(UTC).year - 8
            assert c.get("/_sim/stats").json()["requests"] >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_help_and_bad_data_dir(tmp_path) -> None:
    """`--help` exits 0; a missing --data folder is an error exit."""
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    assert main(["serve", "--data", str(tmp_path / "missing")]) == 2
    args = build_parser().parse_args(["serve", "--legacy-quirks", "--fail-rate", "0.1", "--latency", "0.2"])
    assert args.legacy_quirks
    assert args.fail_rate == 0.1
