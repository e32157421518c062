"""Fixtures for the 4D simulator tests: real HTTP against an in-process server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from legacy4d_simulator import Dataset, SimulatorConfig, SimulatorServer

AW_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "adventureworks"


@pytest.fixture(scope="session")
def aw_dataset() -> Dataset:
    """The AdventureWorks CSVs, loaded once; tests must not mutate it (use ``small_dataset``)."""
    if not (AW_DIR / "Products.csv").exists():
        pytest.skip(
            f"AdventureWorks CSVs not found at {AW_DIR}: the shared data set sits beside the checkout on"
            " dev and CI machines; these tests check the simulator against that real data"
        )
    return Dataset.from_csv_dir(AW_DIR)


@pytest.fixture(scope="session")
def aw_server(aw_dataset: Dataset) -> Iterator[SimulatorServer]:
    """A default (modern, open) server on the CSV data, shared by read-only tests."""
    with SimulatorServer(aw_dataset, SimulatorConfig(licences=1000)) as sim:
        yield sim


@pytest.fixture
def aw(aw_server: SimulatorServer) -> Iterator[httpx.Client]:
    """A cookie-keeping client on the shared CSV server."""
    with httpx.Client(base_url=aw_server.base_url + "/rest", timeout=30) as client:
        yield client


@pytest.fixture
def small_dataset() -> Dataset:
    """A fresh generated dataset of about 2,000 records (safe to mutate)."""
    return Dataset.generate(2000, seed=7)


@pytest.fixture
def make_server() -> Iterator[Callable[..., SimulatorServer]]:
    """Start servers with a given dataset/config; all are stopped at teardown."""
    started: list[SimulatorServer] = []

    def make(dataset: Dataset | None = None, **config: object) -> SimulatorServer:
        sim = SimulatorServer(dataset or Dataset.generate(2000, seed=7), SimulatorConfig(**config)).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
