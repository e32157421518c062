"""A faithful 4D (4th Dimension) REST server simulator for testing the legacy ERP sync.

Public API: :class:`SimulatorConfig`, :class:`Dataset`, :class:`SimulatorServer`,
:class:`FaultController`, :func:`create_app`; the CLI is :func:`legacy4d_simulator.cli.main`.
"""

from legacy4d_simulator.app import Simulator, create_app
from legacy4d_simulator.config import SimulatorConfig
from legacy4d_simulator.dataset import Dataset
from legacy4d_simulator.faults import KINDS as FAULT_KINDS
from legacy4d_simulator.faults import FaultController, Stats
from legacy4d_simulator.server import SimulatorServer
from legacy4d_simulator.values import BLANK_DATE, RawJson, WireValue

__all__ = [
    "BLANK_DATE",
    "FAULT_KINDS",
    "Dataset",
    "FaultController",
    "RawJson",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
    "Stats",
    "WireValue",
    "create_app",
]
