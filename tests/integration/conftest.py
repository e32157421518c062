"""Integration fixtures: the 4D simulator in-process and an ERP database with our schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer
from legacy_sync import ledger
from legacy_sync.fourd import FourDClient, FourDSettings
from legacy_sync.fourd.auth import SessionStore

SIM_USER, SIM_PASSWORD = "sync", "sync-password"
FAST_RETRIES = {"backoff_max_seconds": 0.05, "licence_backoff_seconds": 0.05, "licence_wait_seconds": 5.0}


def make_simulator(scale: int = 3000, seed: int = 7, **config: Any) -> SimulatorServer:
    settings = {"username": SIM_USER, "password": SIM_PASSWORD, **config}
    return SimulatorServer(Dataset.generate(scale, seed=seed), SimulatorConfig(**settings))


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with make_simulator() as server:
        yield server


def client_for(sim: SimulatorServer, store: SessionStore | None = None, **overrides: Any) -> FourDClient:
    values: dict[str, Any] = {
        "base_url": sim.base_url,
        "username": SIM_USER,
        "password": SIM_PASSWORD,
        "page_size": 250,
        **FAST_RETRIES,
        **overrides,
    }
    return FourDClient(FourDSettings(**values), store=store)


@pytest.fixture(scope="session")
def first_syncs(pg_server: Any) -> Iterator[Any]:
    """``sync_harness.FirstSyncs`` for the session: first-synced databases, copied per test."""
    from .sync_harness import FirstSyncs  # imported here: sync_harness imports this module

    syncs = FirstSyncs(pg_server)
    yield syncs
    syncs.drop_all()


@pytest.fixture
def erp(erp_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a fresh ERP database with the sync's own tables."""
    with psycopg.connect(erp_db_url, autocommit=True) as conn:
        ledger.apply_schema(conn)
        yield conn
