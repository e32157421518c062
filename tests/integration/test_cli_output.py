"""``legacy-sync status`` / ``errors`` print database text as text, never as Rich markup."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from legacy_sync import cli, ledger

pytestmark = pytest.mark.integration

RUN_ID = "manual__[/x]2026-03-01"
NASTY = "name is required [/x] [bold]not bold[/bold] [/] [link=http://evil]click[/link]"


@pytest.fixture
def seeded(erp_db_url: str) -> str:
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        ledger.apply_schema(conn)
        for table, status, message in (
            ("Products[/x]", "PARTIALLY_COMPLETED", None),
            ("Orders", "FAILED", "4D said [/x] and [red]nothing[/red]"),
        ):
            log_id = conn.execute(
                "insert into legacy_sync.sync_log (run_id, table_name, mode, status, records_failed,"
                " error_message) values (%s, %s, 'incremental', %s, 1, %s) returning id",
                (RUN_ID, table, status, message),
            ).fetchone()[0]
            conn.execute(
                "insert into legacy_sync.sync_error (sync_log_id, record_id, error_message, record_data)"
                " values (%s, %s, %s, %s)",
                (log_id, "[/x]7", NASTY, Jsonb({"__KEY": "7"})),
            )
    return erp_db_url


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_status_prints_markup_like_text_literally(seeded: str, capsys: Any) -> None:
    assert cli.main(["status", "--database-url", seeded]) == 1  # a table FAILED
    out = _flat(capsys.readouterr().out)
    assert "Products[/x]" in out
    assert "4D said [/x] and [red]nothing[/red]" in out
    assert "[/x]7" in out and "[bold]not bold[/bold]" in out and "[link=http://evil]click[/link]" in out


def test_errors_prints_markup_like_text_literally(seeded: str, capsys: Any) -> None:
    assert cli.main(["errors", "--table", "Products[/x]", "--database-url", seeded]) == 0
    out = capsys.readouterr().out
    assert RUN_ID in _flat(out) or "manual__[/x]" in out
    assert "[/x]7" in out
    assert "[bold]not" in out and "[/x]" in out
