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

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from deploy.native import DeploymentError, LocalAirflow, native_site
from deploy.services import ErpDatabase, FourDServer, Site, airflow_commands, airflow_environment, init_steps
from legacy_sync import ledger
from legacy_sync.contracts import SYNC_DAG_IDS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ADMIN_USER = "admin"
MONITOR_ROLE_ENV = "LEGACY_SYNC_MONITOR_ROLE"


@dataclass(frozen=True)
class FourD:
    """Where the stack's ``legacy_4d_default`` connection points."""

    base_url: str
    user: str
    password: str


class AirflowStack(LocalAirflow):
    """Airflow's four components (deploy/services.py's commands) with LocalExecutor on free ports,
    stopped (all of them) on exit.

    Args:
        home: AIRFLOW_HOME; component logs go to ``home/logs/<component>.log``.
        metadata_url: libpq URL of an empty database for Airflow's metadata.
        erp_url: libpq URL of the ERP database (``erp_postgres_default``).
        fourd: the 4D server (``legacy_4d_default``).
        extra_env: more environment for every component (e.g. ``LEGACY_SYNC_SCHEDULE``).
        monitor_url: libpq URL of the ERP database as the monitor's SELECT-only role
            (``erp_postgres_monitor``); :func:`running_stack` creates one.
        migrated: ``metadata_url`` is a copy of :func:`metadata_template`'s database, on which
            ``db migrate`` and ``pools set`` ran: those init steps are left out.
    """

    def __init__(
        self,
        home: Path,
        metadata_url: str,
        erp_url: str,
        fourd: FourD,
        extra_env: dict[str, str] | None = None,
        monitor_url: str | None = None,
        migrated: bool = False,
    ) -> None:
        self.migrated = migrated
        site = native_site(
            home=Path(home),
            project_root=PROJECT_ROOT,
            metadata_url=metadata_url,
            broker_url="",
            fourd=FourDServer.at(fourd.base_url, fourd.user, fourd.password),
            erp=ErpDatabase.at(erp_url, monitor_url),
            pool_slots=3,
        )
        env = {k: v for k, v in self._environment(site).items() if not k.startswith("AIRFLOW__CELERY__")}
        super().__init__(site, home, {**env, **(extra_env or {})})
        self.erp_url = erp_url
        self.monitor_url = monitor_url
        self.monitor_role: str | None = None

    @staticmethod
    def _environment(site: Site) -> dict[str, str]:
        return {
            **airflow_environment(site),
            # LocalExecutor runs tasks on this machine: no broker, no workers.
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__PORT": site.api_port,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # Two cores here: a small executor.
            "AIRFLOW__CORE__PARALLELISM": "4",
            # Fast scheduling loops so tests do not wait on defaults tuned for big installations.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
        }

    def init_steps(self) -> list[list[str]]:
        # The tests' credentials are weak on purpose: no secrets check here (NativeDeployment has it).
        steps = [step for step in init_steps(self.site) if "legacy_sync.secret_policy" not in step]
        if self.migrated:
            return [step for step in steps if step[1:2] not in (["db"], ["pools"])]
        return steps

    def template_steps(self) -> list[list[str]]:
        """The init steps whose result :func:`metadata_template` keeps: ``db migrate``, ``pools set``."""
        return [step for step in self.init_steps() if step[1:2] in (["db"], ["pools"])]

    def services(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        commands = airflow_commands(self.site)
        commands.pop("airflow-worker")
        # Named after the component (logs/api-server.log, logs/scheduler.log, ...).
        return {argv[1]: (argv, {}) for argv in commands.values()}

    def wait_ready(self, deadline: float) -> None:
        self.wait_for_dags(list(SYNC_DAG_IDS), max(1.0, deadline - time.monotonic()))


_TEMPLATES: dict[str, str] = {}  # PostgreSQL server (admin URL) -> its migrated metadata template


def metadata_template(pg_server: Any, home: Path) -> str:
    """A metadata database on ``pg_server`` after ``airflow db migrate`` and ``pools set``, made
    once per test session (in ``home``) and copied for each stack (CREATE DATABASE ... TEMPLATE):
    every stack would otherwise pay the same migration (a CLI call of 10-20 s here) before its
    services could start. :func:`drop_metadata_templates` drops it."""
    key = pg_server.admin_url
    if key not in _TEMPLATES:
        url = pg_server.create_database("airflow_template")
        try:
            # Migrating reads no connection: the 4D server and the ERP database are never reached.
            unused = FourD("http://127.0.0.1:9", "unused", "unused")
            template = AirflowStack(home, url, "postgresql://unused@127.0.0.1:9/unused", unused)
            deadline = time.monotonic() + 150
            try:
                for step in template.template_steps():
                    template._run_to_end(f"template-{step[1]}", step, deadline)
            finally:
                template.stop()
        except BaseException:
            pg_server.drop_database(url)
            raise
        _TEMPLATES[key] = url
    return _TEMPLATES[key]


def drop_metadata_templates(pg_server: Any) -> None:
    """Drop the metadata template :func:`metadata_template` made on ``pg_server``, if any."""
    url = _TEMPLATES.pop(pg_server.admin_url, None)
    if url:
        pg_server.drop_database(url)


def refuse_superuser(erp_url: str) -> None:
    """Fail when ``erp_url`` connects as a superuser: the sync runs as docs/deployment.md's role."""
    with psycopg.connect(erp_url) as conn:
        user, superuser = conn.execute(
            "select rolname, rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
    if superuser:
        raise DeploymentError(
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
    """An :class:`AirflowStack` with a metadata database of its own on ``pg_server`` (a copy of
    :func:`metadata_template`'s, dropped after) and a monitor role of its own on the ERP database
    (``stack.monitor_role``).

    ``erp_url`` becomes ``erp_postgres_default``: it must be the sync's least-privilege role
    (``pg_server.create_sync_database``), as in a deployment; a superuser URL is refused.
    """
    refuse_superuser(erp_url)
    template = metadata_template(pg_server, home / "metadata-template")
    metadata_url = pg_server.create_database("airflow", template=template)
    try:
        with monitor_role(pg_server, erp_url) as (role, monitor_url):
            # The sync grants this role SELECT on the sync log when its first task creates it.
            env = {MONITOR_ROLE_ENV: role, **(extra_env or {})}
            with AirflowStack(home, metadata_url, erp_url, fourd, env, monitor_url, migrated=True) as stack:
                stack.monitor_role = role
                yield stack
    finally:
        pg_server.drop_database(metadata_url)
