"""Shared plumbing: the PostgreSQL server, simulator processes, clients, timing helpers."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg

from devtools.local_postgres import LocalPostgres
from devtools.local_run import SIMULATOR_USER, simulator_process
from legacy_sync.fourd import FourDClient
from legacy_sync.fourd.auth import MemorySessionStore
from legacy_sync.fourd.client import FourDSettings

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".data" / "bench"
SIM_USER = SIMULATOR_USER  # the user simulator_process() configures
SCHEMAS = ("erp", "legacy_staging", "legacy_transform", "legacy_sync", "bench_ceiling", "bench_original")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Sim:
    """A simulator serving generated data in its own process (its own GIL)."""

    port: int
    password: str
    token: str
    records: int
    process: subprocess.Popen[bytes]
    counts: dict[str, int] = field(default_factory=dict)
    store: MemorySessionStore = field(default_factory=MemorySessionStore)
    """One 4D session shared by every client, as the DAG's tasks share one (a licence each)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, page_size: int | None = None) -> FourDSettings:
        extra = {"page_size": page_size} if page_size else {}
        return FourDSettings(self.base_url, SIM_USER, self.password, **extra)

    def client(self, page_size: int | None = None) -> FourDClient:
        return FourDClient(self.settings(page_size), store=self.store)

    def mutate(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base_url}/_sim/mutate",
            json=operations,
            headers={"X-Sim-Token": self.token},
            timeout=120,
        )
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/_sim/stats", headers={"X-Sim-Token": self.token}).json()


@contextlib.contextmanager
def simulator(records: int, seed: int = 1, log_name: str = "simulator") -> Iterator[Sim]:
    """``python -m legacy4d_simulator serve --generate N`` as a child process (as the demo runs it)."""

    token = secrets.token_urlsafe(12)
    WORK.mkdir(parents=True, exist_ok=True)
    extra = (
        "--generate",
        str(records),
        "--seed",
        str(seed),
        "--control-token",
        token,
        "--log-level",
        "warning",
    )
    with simulator_process(WORK / f"{log_name}.log", None, extra) as process:
        sim = Sim(process.port, process.password, token, records, process.process)
        with sim.client() as client:
            from legacy_sync.registry import TABLES

            for table in TABLES:
                sim.counts[table.name] = client.page(table.name, attributes=(table.key,), top=1).count or 0
        yield sim


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


DURABLE = ("fsync", "synchronous_commit", "full_page_writes")


class DurablePostgres(LocalPostgres):
    """The embedded server with production durability: ``fsync=on``, ``synchronous_commit=on``,
    ``full_page_writes=on`` (``make test`` runs it with all three off, which makes a commit
    nearly free and would flatter the one-transaction-per-record baseline)."""

    durability: ClassVar[str] = "on"


def durability(url: str) -> dict[str, str]:
    """The server's durability settings, as every figure was measured with them."""
    with psycopg.connect(url) as conn:
        return {name: str(conn.execute(f"show {name}").fetchone()[0]) for name in DURABLE}  # type: ignore[index]


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """``ERP_DATABASE_URL`` when set, else the embedded server with production durability
    (stopped on exit and on SIGTERM)."""
    configured = os.environ.get("ERP_DATABASE_URL")
    if configured:
        yield configured
        return
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    server = DurablePostgres(WORK / "pg")
    server.start()
    try:
        yield server.create_database("bench")
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def reset_database(url: str) -> None:
    """Drop everything a previous measurement left (schemas of the sync, dbt and the bench)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in (*SCHEMAS, *dlt_schemas(conn)):
            conn.execute(f'drop schema if exists "{schema}" cascade')
        conn.execute("checkpoint")


def dlt_schemas(conn: psycopg.Connection[Any]) -> list[str]:
    return [
        r[0]
        for r in conn.execute("select nspname from pg_namespace where nspname like 'dlt_bench%%'").fetchall()
    ]


def vacuum(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gib = round(kb / 1024 / 1024, 1)
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
