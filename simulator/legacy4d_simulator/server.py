"""Run the simulator: in a background thread for tests, or in the foreground for the CLI."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from legacy4d_simulator.app import Simulator
from legacy4d_simulator.config import SimulatorConfig
from legacy4d_simulator.dataset import Dataset
from legacy4d_simulator.faults import FaultController, Stats
from legacy4d_simulator.structure import SchemaChanges


class SimulatorServer:
    """A 4D REST simulator on ``127.0.0.1`` (free port unless given), as a context manager.

    Example:
        >>> with SimulatorServer(Dataset.generate(1000), SimulatorConfig()) as sim:  # doctest: +SKIP
        ...     httpx.get(sim.base_url + "/rest/$catalog")
    """

    def __init__(
        self,
        dataset: Dataset,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.dataset = dataset
        self.config = config or SimulatorConfig()
        self.simulator = Simulator(dataset, self.config)
        self.host = host
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def faults(self) -> FaultController:
        """The fault controller (``faults.set(kind, **params)``, ``faults.clear()``)."""
        return self.simulator.faults

    @property
    def schema(self) -> SchemaChanges:
        """Run-time structure changes (``schema.add_field(...)``, ``schema.unexpose_table(...)``)."""
        return self.simulator.schema

    @property
    def stats(self) -> Stats:
        """Request/session counters."""
        return self.simulator.stats

    @property
    def port(self) -> int:
        """The bound port."""
        if self._sock is None:
            return self._port
        return self._sock.getsockname()[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (append ``/rest/...``)."""
        return f"http://{self.host}:{self.port}"

    def reset_stats(self) -> None:
        """Zero the request counters."""
        self.stats.reset()

    def set_clock(
        self, when: dt.datetime | dt.date | None = None, *, offset_days: float | None = None
    ) -> None:
        """Move the server's clock to ``when`` or ``offset_days`` off real time (None: real time)."""
        self.simulator.set_clock(when, offset_days=offset_days)

    def expire_sessions(self) -> int:
        """Drop every session now (like an idle timeout or a server restart)."""
        return self.simulator.sessions.expire_all()

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.simulator.asgi(),
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            date_header=False,  # the app sends Date from the simulated server's clock
        )

    def start(self) -> SimulatorServer:
        """Start serving in a daemon thread; returns once the socket accepts connections."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self._port))
        self._sock.listen(128)
        self._server = uvicorn.Server(self._config())
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="4d-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the 4D simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (CLI)."""
        server = uvicorn.Server(
            uvicorn.Config(
                self.simulator.asgi(),
                host=self.host,
                port=self._port,
                log_level=self._log_level,
                access_log=False,
                lifespan="off",
                date_header=False,
            )
        )
        server.run()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


logging.getLogger("uvicorn.error").propagate = True
__all__: list[Any] = ["SimulatorServer"]
