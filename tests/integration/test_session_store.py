"""The shared 4D session cookie reaches the database only encrypted with Airflow's Fernet key.

Without a usable key (empty: Airflow's no-op cipher; malformed: Airflow raises) the cookie stays
in the process's memory for the run, the log says so once, and the database never sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from airflow.models.crypto import get_fernet
from cryptography.fernet import Fernet

from legacy_sync import session_store
from legacy_sync.session_store import PostgresSessionStore

pytestmark = pytest.mark.integration

COOKIE = ("4DSID_ERP", "c00kie-value-4f9a")
NO_KEY_WARNING = "kept in memory for this run only"


@pytest.fixture
def fernet_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set Airflow's Fernet key for one test; Airflow caches its cipher."""

    def use(key: str) -> None:
        monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
        get_fernet.cache_clear()
        monkeypatch.setattr(session_store, "_warned_no_key", False)

    yield use
    get_fernet.cache_clear()


def stored(erp: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return erp.execute("select cookie_name, cookie_value from legacy_sync.fourd_session").fetchall()


def test_with_a_key_the_cookie_is_stored_encrypted_and_shared(
    erp: psycopg.Connection[Any], erp_db_url: str, fernet_key: Any
) -> None:
    key = Fernet.generate_key().decode()
    fernet_key(key)
    PostgresSessionStore(erp_db_url, "legacy_4d_default").save(COOKIE)
    [(name, value)] = stored(erp)
    assert name == COOKIE[0] and COOKIE[1] not in value
    assert Fernet(key.encode()).decrypt(value.encode()).decode() == COOKIE[1]
    assert PostgresSessionStore(erp_db_url, "legacy_4d_default").load() == COOKIE, "another task reads it"


@pytest.mark.parametrize(
    "key",
    ["", "change-me-fernet-key", "bm90LWEta2V5"],
    ids=["empty", "placeholder", "malformed"],
)
def test_without_a_usable_key_the_cookie_never_reaches_the_database(
    erp: psycopg.Connection[Any], erp_db_url: str, fernet_key: Any, caplog: Any, key: str
) -> None:
    fernet_key(key)
    with caplog.at_level(logging.WARNING, logger="legacy_sync.session_store"):
        first = PostgresSessionStore(erp_db_url, "legacy_4d_default")
        first.save(COOKIE)
        assert first.load() == COOKIE, "the run keeps its session in memory"
        with first.login_lock():
            pass
        second = PostgresSessionStore(erp_db_url, "legacy_4d_default")  # the next task in this process
        second.save(("4DSID_ERP", "another"))
    assert stored(erp) == []
    warnings = [r for r in caplog.records if NO_KEY_WARNING in r.getMessage()]
    assert len(warnings) == 1, "said once, not per task or request"
    assert "fernet" in warnings[0].getMessage().lower()
    assert COOKIE[1] not in caplog.text


def test_a_cookie_stored_in_clear_by_an_older_version_is_discarded(
    erp: psycopg.Connection[Any], erp_db_url: str, fernet_key: Any
) -> None:
    erp.execute(
        "insert into legacy_sync.fourd_session (conn_id, cookie_name, cookie_value) values (%s, %s, %s)",
        ("legacy_4d_default", *COOKIE),
    )
    fernet_key(Fernet.generate_key().decode())
    assert PostgresSessionStore(erp_db_url, "legacy_4d_default").load() is None
    assert stored(erp) == [], "the clear cookie does not linger"
