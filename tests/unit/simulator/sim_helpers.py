"""Helpers shared by the simulator tests (a unique module name: tests here have no packages)."""

from __future__ import annotations

import httpx

from legacy4d_simulator import SimulatorServer


def rest(sim: SimulatorServer) -> httpx.Client:
    """A new client (own cookie jar) for ``sim``'s ``/rest``."""
    return httpx.Client(base_url=sim.base_url + "/rest", timeout=30)
