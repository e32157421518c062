"""Airflow on this machine, from the one service definition of :mod:`deploy.services`.

:class:`LocalAirflow` runs a :class:`~deploy.services.Site`'s init steps and services as local
process groups and talks to the api-server as the UI does. Two shapes use it:

* :class:`NativeDeployment`: the compose topology (CeleryExecutor, several workers), for
  ``tests/e2e/test_celery_scaleout.py`` (Docker cannot run there). What differs from
  ``docker-compose.yml`` is only the Site (ports, paths, URLs) and, since several workers share
  one machine, each worker's node name and log-server port.
* ``tests/e2e/airflow_stack.AirflowStack``: the same services with LocalExecutor and no workers.

(``make demo`` runs ``airflow dags test`` instead, with the same connections: ``devtools.local_run``.)

Every process leads its own process group; :meth:`LocalAirflow.stop` kills the groups and all
descendants (Celery's pool processes, task supervisors and the tasks they fork).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from deploy.processes import stop_process_trees
from deploy.services import (
    AIRFLOW,
    PYTHON,
    ErpDatabase,
    FourDServer,
    Site,
    airflow_commands,
    airflow_environment,
    init_steps,
    worker_command,
)

AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
TERMINAL_STATES = ("success", "failed")


def _step_name(step: list[str]) -> str:
    return "check-secrets" if "legacy_sync.secret_policy" in step else step[1]


def _raise_on_sigterm(signum: int, frame: object) -> None:
    # As in tests/conftest.py: SIGTERM becomes an exception, so teardown runs.
    raise KeyboardInterrupt(f"signal {signum}")


class DeploymentError(RuntimeError):
    """A service did not come up or a run did not finish; the message carries the log tails."""


def free_port() -> int:
    from devtools.local_postgres import free_port as _free_port

    return _free_port()


def sqlalchemy_url(libpq_url: str, scheme: str = "postgresql+psycopg") -> str:
    """``postgresql://...`` with another scheme (SQLAlchemy dialect+driver, Celery backend prefix)."""
    return urlunsplit(urlsplit(libpq_url)._replace(scheme=scheme))


def native_site(
    *,
    home: Path,
    project_root: Path,
    metadata_url: str,
    broker_url: str,
    fourd: FourDServer,
    erp: ErpDatabase,
    pool_slots: int,
    queue: str = "default",
    worker_concurrency: int = 2,
) -> Site:
    """A :class:`Site` on this machine: free ports, the checkout's folders, fresh secrets."""
    api_port = free_port()
    base_url = f"http://127.0.0.1:{api_port}"
    return Site(
        metadata_db=sqlalchemy_url(metadata_url),
        result_backend=sqlalchemy_url(metadata_url, "db+postgresql+psycopg"),
        broker_url=broker_url,
        api_host="127.0.0.1",
        api_port=str(api_port),
        api_base_url=base_url,
        execution_api_url=f"{base_url}/execution/",
        dags_folder=str(project_root / "dags"),
        plugins_folder=str(project_root / "plugins"),
        dbt_project_dir=str(project_root / "dbt_project"),
        fernet_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        jwt_secret=secrets.token_urlsafe(64),
        fourd=fourd,
        erp=erp,
        passwords_file=str(home / "simple_auth_manager_passwords.json.generated"),
        pool_slots=str(pool_slots),
        queue=queue,
        worker_concurrency=str(worker_concurrency),
        api_workers="1",  # two cores here
        scheduler_health_port=str(free_port()),
        worker_log_port=str(free_port()),
        triggerer_log_port=str(free_port()),
        dags_paused_at_creation="true",
        extra={"AIRFLOW_HOME": str(home)},
    )


class LocalAirflow:
    """A Site's init steps, then its services, each a process group of its own; the REST API as the
    UI uses it. Subclasses say which services run (:meth:`services`) and when they are ready.

    Args:
        site: where things are (see :func:`native_site`).
        home: AIRFLOW_HOME; each process logs to ``home/logs/<name>.log``.
        env: the settings every process gets (normally ``airflow_environment(site)`` plus tuning).
    """

    def __init__(self, site: Site, home: Path, env: dict[str, str]) -> None:
        self.site = site
        self.home = Path(home)
        self.log_dir = self.home / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.base_url = site.api_base_url
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._services: set[str] = set()
        self._tokens: dict[str, str] = {}
        self._http = httpx.Client(base_url=self.base_url, timeout=30)
        self._previous_sigterm: Any = None

    # -- what runs -------------------------------------------------------------------------------
    def init_steps(self) -> list[list[str]]:
        """The one-off steps, in order (``db migrate`` among them)."""
        return init_steps(self.site)

    def services(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """Each long-running process: argv (as in docker-compose.yml) and its own extra settings."""
        raise NotImplementedError

    def wait_ready(self, deadline: float) -> None:
        """After the api-server reports every component healthy: whatever else must be up."""

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> LocalAirflow:
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

    def start(self, timeout: float = 150) -> None:
        """Init steps up to ``db migrate`` in order, then the services; the other init steps (plain
        CLI calls, 5-7 s each) run while the services boot. Without a ``db migrate`` step (a
        metadata database migrated before) the services start at once."""
        deadline = time.monotonic() + timeout
        steps = self.init_steps()
        first = next((i + 1 for i, step in enumerate(steps) if step[1:3] == ["db", "migrate"]), 0)
        for step in steps[:first]:
            self._run_to_end(f"init-{_step_name(step)}", step, deadline)
        for name, (argv, env) in self.services().items():
            self._spawn(name, argv, env)
            self._services.add(name)
        setup = [self._spawn(f"init-{_step_name(step)}", step) for step in steps[first:]]
        for proc in setup:
            if proc.wait(max(1.0, deadline - time.monotonic())) != 0:
                raise DeploymentError(f"{proc.args} failed\n{self.log_tails()}")
        self._wait_healthy(deadline)
        self.wait_ready(deadline)

    def stop(self) -> None:
        """Kill every process started here, with all descendants (also orphaned task processes)."""
        self._http.close()
        stop_process_trees(self._procs.values())
        self._procs.clear()

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        # `airflow` and `python` of this virtualenv, like the image's PATH in compose.
        command = [{AIRFLOW: AIRFLOW_BIN, PYTHON: sys.executable}.get(argv[0], argv[0]), *argv[1:]]
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                command,
                env={**os.environ, **self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,  # a process group of its own, killed as a whole
            )
        self._procs[name] = proc
        return proc

    def _run_to_end(self, name: str, argv: list[str], deadline: float) -> None:
        proc = self._spawn(name, argv)
        if proc.wait(max(1.0, deadline - time.monotonic())) != 0:
            raise DeploymentError(f"{' '.join(argv)} failed\n{self.log_tails()}")

    def _check_alive(self) -> None:
        for name in self._services:
            proc = self._procs[name]
            if proc.poll() is not None:
                raise DeploymentError(f"{name} exited with {proc.returncode}\n{self.log_tails()}")

    def _wait_healthy(self, deadline: float) -> None:
        last: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                last = self._http.get("/api/v2/monitor/health", timeout=3).json()
                if all((last.get(part) or {}).get("status") == "healthy" for part in HEALTH_PARTS):
                    return
            time.sleep(0.5)
        raise DeploymentError(f"Airflow not healthy in time; last health: {last}\n{self.log_tails()}")

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every process's log, for failure messages."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path} (last {len(tail)} lines) -----\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- REST API, as the UI uses it -------------------------------------------------------------
    @property
    def admin_password(self) -> str:
        """The admin password the simple auth manager generated."""
        return self.password(self.site.admin_user)

    def password(self, user: str) -> str:
        """The password the simple auth manager generated for ``user``."""
        return str(json.loads(Path(self.site.passwords_file).read_text())[user])

    def token(self, user: str | None = None) -> str:
        """A JWT for ``user`` (default: the admin) from ``POST /auth/token`` (cached)."""
        user = user or self.site.admin_user
        if user not in self._tokens:
            response = self._http.post(
                "/auth/token", json={"username": user, "password": self.password(user)}
            )
            response.raise_for_status()
            self._tokens[user] = str(response.json()["access_token"])
        return self._tokens[user]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated request as the admin (the response is returned as is)."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self._http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        response.raise_for_status()
        return response.json()

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = {d["dag_id"] for d in self.get("/api/v2/dags", params={"limit": 100})["dags"]}
            if set(dag_ids) <= found:
                return
            time.sleep(0.5)
        raise DeploymentError(f"DAGs {dag_ids} not registered in time\n{self.log_tails()}")

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

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return list(self.get(path, params={"limit": 100})["task_instances"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Wait until a run reaches ``success`` or ``failed``; returns that state."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.dag_run(dag_id, run_id)["state"]
            if state in TERMINAL_STATES:
                return str(state)
            time.sleep(1)
        raise DeploymentError(
            f"run {run_id} of {dag_id} still {state} after {timeout:.0f}s;"
            f" tasks: {self._ti_summary(dag_id, run_id)}\n{self.log_tails()}"
        )

    def _ti_summary(self, dag_id: str, run_id: str) -> list[tuple[str, int, str | None]]:
        with contextlib.suppress(httpx.HTTPError):
            return [
                (ti["task_id"], ti["map_index"], ti["state"]) for ti in self.task_instances(dag_id, run_id)
            ]
        return []


class NativeDeployment(LocalAirflow):
    """Init steps, then every service of the compose file (CeleryExecutor) as a process group.

    Args:
        site: where things are (see :func:`native_site`).
        home: AIRFLOW_HOME; each service logs to ``home/logs/<service>.log``.
        workers: how many Celery workers (compose runs replicas; here ``worker1``, ``worker2``...).
        tuning: extra settings for a test's pace (e.g. a faster scheduler heartbeat).
    """

    def __init__(
        self, site: Site, home: Path, workers: int = 2, tuning: dict[str, str] | None = None
    ) -> None:
        super().__init__(site, home, {**airflow_environment(site), **(tuning or {})})
        self.workers = [f"worker{i}" for i in range(1, workers + 1)]

    def services(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        commands = airflow_commands(self.site)
        commands.pop("airflow-worker")
        procs = {name: (argv, {}) for name, argv in commands.items()}
        for node in self.workers:
            # One machine: each worker needs its own node name and log-server port.
            procs[f"airflow-{node}"] = (
                worker_command(self.site, node),
                {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
            )
        return procs

    def wait_ready(self, deadline: float) -> None:
        # Celery logs "<node>@<host> ready." once the worker consumes its queues.
        pending = set(self.workers)
        while pending and time.monotonic() < deadline:
            self._check_alive()
            for node in list(pending):
                if re.search(rf"\b{node}@\S+ ready\.", self.worker_log(node)):
                    pending.discard(node)
            time.sleep(0.5)
        if pending:
            raise DeploymentError(f"Celery workers {sorted(pending)} not ready in time\n{self.log_tails()}")

    def worker_log(self, node: str) -> str:
        return (self.log_dir / f"airflow-{node}.log").read_text(errors="replace")
