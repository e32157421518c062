"""A real Airflow 3.3 for end-to-end tests: api-server, scheduler, dag-processor and triggerer.

Unlike ``airflow dags test`` (one process, no scheduler, no REST API, no plugins served), this
runs the components a deployment runs, as subprocesses, with LocalExecutor and a PostgreSQL
metadata database, so a test can do what a user does: trigger through the REST API exactly as
the UI's trigger form does, let the scheduler start runs on its own, open plugin pages.

Use it once per module (start-up costs ~20 s)::

    @pytest.fixture(scope="module")
    def stack(pg_server, tmp_path_factory):
        with running_stack(pg_server, tmp_path_factory.mktemp("airflow"), fourd=...) as stack:
            yield stack

Teardown kills every process it started, including the task processes LocalExecutor forks
(they get process groups of their own), also when the test session is stopped with SIGTERM.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import orjson
import psycopg
from psycopg import sql

from deploy.processes import stop_process_trees
from devtools.local_postgres import free_port
from devtools.local_run import airflow_env
from legacy_sync import ledger

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
TERMINAL_STATES = {"success", "failed", "upstream_failed", "skipped"}
MONITOR_ROLE_ENV = "LEGACY_SYNC_MONITOR_ROLE"


class StackError(RuntimeError):
    """The stack did not come up, or a run did not finish; the message carries the log tails."""


@dataclass(frozen=True)
class FourD:
    """Where the stack's ``legacy_4d_default`` connection points."""

    base_url: str
    user: str
    password: str


def _sqlalchemy_url(libpq_url: str) -> str:
    # Airflow's metadata DB through psycopg 3, the driver the project already depends on.
    return urlunsplit(urlsplit(libpq_url)._replace(scheme="postgresql+psycopg"))


def _raise_on_sigterm(signum: int, frame: object) -> None:
    # Same idea as tests/conftest.py: SIGTERM becomes an exception, so teardown runs.
    raise KeyboardInterrupt(f"signal {signum}")


class AirflowStack:
    """Airflow's four components on a free port, stopped (all of them) on exit.

    Args:
        home: AIRFLOW_HOME; component logs go to ``home/logs/<component>.log``.
        metadata_url: libpq URL of an empty database for Airflow's metadata.
        erp_url: libpq URL of the ERP database (``erp_postgres_default``).
        fourd: the 4D server (``legacy_4d_default``).
        extra_env: more environment for every component (e.g. ``LEGACY_SYNC_SCHEDULE``).
        monitor_url: libpq URL of the ERP database as the monitor's SELECT-only role
            (``erp_postgres_monitor``); :func:`running_stack` creates one.
    """

    def __init__(
        self,
        home: Path,
        metadata_url: str,
        erp_url: str,
        fourd: FourD,
        extra_env: dict[str, str] | None = None,
        monitor_url: str | None = None,
    ) -> None:
        self.home = Path(home)
        self.log_dir = self.home / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.erp_url = erp_url
        self.monitor_url = monitor_url
        self.monitor_role: str | None = None
        self.env = self._environment(metadata_url, erp_url, fourd, extra_env or {})
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._tokens: dict[str, str] = {}
        self._http = httpx.Client(base_url=self.base_url, timeout=30)

    # -- configuration ---------------------------------------------------------------------------
    def _environment(
        self, metadata_url: str, erp_url: str, fourd: FourD, extra: dict[str, str]
    ) -> dict[str, str]:
        # The project's own helper builds both connections (AIRFLOW_CONN_*), the DAGs and plugins
        # folders and the dbt project path, as for `make demo`; we only change what a real
        # multi-process deployment needs.
        env = airflow_env(self.home, PROJECT_ROOT, erp_url, fourd.base_url, fourd.user, fourd.password)
        env.update(
            {
                # SQLite cannot serve four processes at once; LocalExecutor runs tasks on this machine.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _sqlalchemy_url(metadata_url),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # A real scheduler stores Deadline Alerts (only `dags test` cannot): keep the DAG's own.
                "LEGACY_SYNC_DEADLINE_MINUTES": "",
                # A free port instead of 8080: the UI, REST API and the task execution API all live
                # on the api-server, and workers must know where to reach it.
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                # One signing secret for every component: the api-server issues task tokens the
                # workers present back (>= 64 bytes for HS512).
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # Connection extras and our 4D session cookie are encrypted with it; one key for all.
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                # Simple auth manager (Airflow's default) with one admin; it writes the generated
                # password to this file on first start.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.home / "simple_auth_manager_passwords.json.generated"
                ),
                # Two cores here: one api-server worker, a small executor.
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__PARALLELISM": "4",
                # Fast scheduling loops so tests do not wait on defaults tuned for big installations.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            }
        )
        if self.monitor_url:
            monitor = urlsplit(self.monitor_url)
            env["AIRFLOW_CONN_ERP_POSTGRES_MONITOR"] = orjson.dumps(
                {
                    "conn_type": "postgres",
                    "host": monitor.hostname,
                    "port": monitor.port or 5432,
                    "login": unquote(monitor.username or ""),
                    "password": unquote(monitor.password or ""),
                    "schema": monitor.path.lstrip("/"),
                }
            ).decode()
        env.update(extra)
        return env

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> AirflowStack:
        self._previous_sigterm = None
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_on_sigterm)
        try:
            self.start()
        except BaseException:
            self.stop()
            self._restore_signal()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self._restore_signal()

    def _restore_signal(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def start(self, timeout: float = 120) -> None:
        """Migrate, start the components, register pool and DAGs, wait until all are healthy."""
        started = time.monotonic()
        self._cli("db", "migrate")
        for component in COMPONENTS:
            self._spawn(component, [AIRFLOW_BIN, component])
        # Both are plain CLI calls (5-7 s each): run them while the components boot.
        setup = [
            self._spawn("pools", [AIRFLOW_BIN, "pools", "set", "legacy_4d", "3", "4D client licences"]),
            # Registers the DAGs now; the dag-processor would otherwise find them only on its next scan.
            self._spawn("reserialize", [AIRFLOW_BIN, "dags", "reserialize"]),
        ]
        for proc in setup:
            if proc.wait(timeout) != 0:
                raise StackError(f"{proc.args[1:4]} failed\n{self.log_tails()}")
        self._wait_healthy(started + timeout)
        self._wait_for_dags(["legacy_erp_sync", "legacy_erp_full_sync"], started + timeout)

    def stop(self) -> None:
        """Kill every process this stack started, with all their descendants."""
        self._http.close()
        stop_process_trees(self._procs.values())
        self._procs.clear()

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                command,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,  # its own process group, killed as a whole on stop()
            )
        self._procs[name] = proc
        return proc

    def _cli(self, *args: str, timeout: float = 120) -> None:
        proc = self._spawn(args[0], [AIRFLOW_BIN, *args])
        if proc.wait(timeout) != 0:
            raise StackError(f"airflow {' '.join(args)} failed\n{self.log_tails()}")

    def _wait_healthy(self, deadline: float) -> None:
        last: Any = None
        while time.monotonic() < deadline:
            for name in COMPONENTS:
                if self._procs[name].poll() is not None:
                    raise StackError(f"{name} exited with {self._procs[name].returncode}\n{self.log_tails()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                last = self._http.get("/api/v2/monitor/health", timeout=3).json()
                parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                    return
            time.sleep(0.5)
        raise StackError(f"Airflow not healthy in time; last health: {last}\n{self.log_tails()}")

    def _wait_for_dags(self, dag_ids: list[str], deadline: float) -> None:
        while time.monotonic() < deadline:
            found = {d["dag_id"] for d in self.get("/api/v2/dags", params={"limit": 100})["dags"]}
            if set(dag_ids) <= found:
                return
            time.sleep(0.5)
        raise StackError(f"DAGs {dag_ids} not registered in time\n{self.log_tails()}")

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, for failure messages."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path} (last {len(tail)} lines) -----\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- REST API --------------------------------------------------------------------------------
    @property
    def admin_password(self) -> str:
        """The admin password the simple auth manager generated."""
        return self.password(ADMIN_USER)

    def password(self, user: str) -> str:
        """The password the simple auth manager generated for ``user``."""
        passwords = json.loads(
            Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text()
        )
        return str(passwords[user])

    def token(self, user: str = ADMIN_USER) -> str:
        """A JWT for ``user`` from ``POST /auth/token`` (cached)."""
        if user not in self._tokens:
            response = self._http.post(
                "/auth/token", json={"username": user, "password": self.password(user)}
            )
            response.raise_for_status()
            self._tokens[user] = str(response.json()["access_token"])
        return self._tokens[user]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated request to the api-server (the response is returned as is)."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self._http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        response.raise_for_status()
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run exactly as the UI's trigger form does; returns its run_id.

        Raises ``httpx.HTTPStatusError`` when Airflow refuses (e.g. 400 for a conf that breaks a Param).
        """
        response = self.request(
            "POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def unpause(self, dag_id: str) -> None:
        self.set_paused(dag_id, False)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        response = self.request("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": paused})
        response.raise_for_status()

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}"))

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        return list(
            self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns", params={"limit": 100, **params})["dag_runs"]
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Wait until a run reaches ``success`` or ``failed``; returns that state."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.dag_run(dag_id, run_id)["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(1)
        raise StackError(
            f"run {run_id} of {dag_id} still {state} after {timeout:.0f}s;"
            f" tasks: {self._ti_summary(dag_id, run_id)}\n{self.log_tails()}"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return list(self.get(path, params={"limit": 100})["task_instances"])

    def _ti_summary(self, dag_id: str, run_id: str) -> list[tuple[str, int, str | None]]:
        with contextlib.suppress(httpx.HTTPError):
            return [
                (ti["task_id"], ti["map_index"], ti["state"]) for ti in self.task_instances(dag_id, run_id)
            ]
        return []


def refuse_superuser(erp_url: str) -> None:
    """Fail when ``erp_url`` connects as a superuser: the sync runs as docs/deployment.md's role."""
    with psycopg.connect(erp_url) as conn:
        user, superuser = conn.execute(
            "select rolname, rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
    if superuser:
        raise StackError(
            f"erp_postgres_default would connect as the superuser {user!r}: create the ERP database"
            " with pg_server.create_sync_database() so the sync runs as its least-privilege role"
        )


@contextlib.contextmanager
def monitor_role(pg_server: Any, erp_url: str) -> Iterator[tuple[str, str]]:
    """A SELECT-only role for the monitor, as docker/erp-db-init creates it: ``(role, its URL)``.

    Roles belong to the whole PostgreSQL cluster: a unique name, dropped afterwards. SELECT on the
    sync log comes from the sync (``LEGACY_SYNC_MONITOR_ROLE``), or from here when the tables
    already exist (seeded by a test).
    """
    role, password = f"lsm_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    dbname = urlsplit(erp_url).path.lstrip("/")
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create role {} login password {} nosuperuser nocreatedb nocreaterole noinherit").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("grant connect on database {} to {}").format(sql.Identifier(dbname), sql.Identifier(role))
        )
    with psycopg.connect(erp_url, autocommit=True) as conn:
        # What the sync's first task grants on every run (and docs/deployment.md shows).
        ledger.grant_monitor_access(conn, role)
    parts = urlsplit(erp_url)
    url = urlunsplit(parts._replace(netloc=f"{role}:{quote(password)}@{parts.hostname}:{parts.port}"))
    try:
        yield role, url
    finally:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(pg_server.admin_url_for(erp_url), autocommit=True) as conn,
        ):
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(pg_server.admin_url, autocommit=True) as conn,
        ):
            conn.execute(
                sql.SQL("revoke all on database {} from {}").format(
                    sql.Identifier(dbname), sql.Identifier(role)
                )
            )
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def running_stack(
    pg_server: Any, home: Path, fourd: FourD, erp_url: str, extra_env: dict[str, str] | None = None
) -> Iterator[AirflowStack]:
    """An :class:`AirflowStack` with a metadata database of its own on ``pg_server`` (dropped after)
    and a monitor role of its own on the ERP database (``stack.monitor_role``).

    ``erp_url`` becomes ``erp_postgres_default``: it must be the sync's least-privilege role
    (``pg_server.create_sync_database``), as in a deployment; a superuser URL is refused.
    """
    refuse_superuser(erp_url)
    metadata_url = pg_server.create_database("airflow")
    try:
        with monitor_role(pg_server, erp_url) as (role, monitor_url):
            # The sync grants this role SELECT on the sync log when its first task creates it.
            env = {MONITOR_ROLE_ENV: role, **(extra_env or {})}
            with AirflowStack(home, metadata_url, erp_url, fourd, env, monitor_url) as stack:
                stack.monitor_role = role
                yield stack
    finally:
        pg_server.drop_database(metadata_url)
