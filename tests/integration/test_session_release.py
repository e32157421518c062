"""``legacy-sync session --release``: the shared 4D session is logged out of 4D and forgotten.

A fake 4D server on a real socket (tests/fake_fourd.py) stands in until the simulator offers
``$directory/logout`` in modern mode; the session is stored, encrypted, in a real ERP database.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest

from legacy_sync import cli
from legacy_sync.fourd import FourDClient
from legacy_sync.hook import Legacy4DHook
from legacy_sync.session_store import PostgresSessionStore
from tests.fake_fourd import PASSWORD, USER, FakeFourD

pytestmark = pytest.mark.integration

CONN_ID = "legacy_4d_release"


def test_release_logs_the_shared_session_out_and_forgets_it(
    erp: psycopg.Connection[Any], erp_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with FakeFourD() as fourd:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}",
            orjson.dumps(
                {
                    "conn_type": "legacy_4d",
                    "host": "127.0.0.1",
                    "port": fourd.port,
                    "schema": "http",
                    "login": USER,
                    "password": PASSWORD,
                }
            ).decode(),
        )
        # A sync run left its session (a licence) in the store.
        store = PostgresSessionStore(erp_db_url, CONN_ID)
        with FourDClient(Legacy4DHook(CONN_ID).settings(), store=store) as client:
            client.catalog()
        assert fourd.state.sessions == {"S1"}

        assert cli.main(["session", "--conn-id", CONN_ID, "--database-url", erp_db_url]) == 0
        assert "cookie WASID4D" in capsys.readouterr().out

        assert cli.main(["session", "--release", "--conn-id", CONN_ID, "--database-url", erp_db_url]) == 0
        out = capsys.readouterr().out
        assert "Released" in out and "licence is free" in out and "S1" not in out
        assert fourd.state.sessions == set() and fourd.state.logouts == 1
        logout = fourd.state.requests[-1]
        assert (logout.method, logout.path) == ("GET", "/rest/$directory/logout")
        assert "WASID4D=S1" in logout.headers["Cookie"]
        assert erp.execute("select count(*) from legacy_sync.fourd_session").fetchone() == (0,)
        assert fourd.state.logins == 1, "releasing never logs in"

        assert cli.main(["session", "--release", "--conn-id", CONN_ID, "--database-url", erp_db_url]) == 0
        assert "nothing to release" in capsys.readouterr().out
        assert fourd.state.logouts == 1
