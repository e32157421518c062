"""The one definition of the CeleryExecutor deployment: each service's command and shared settings.

Two consumers, so the two cannot drift apart:

* ``deploy.compose`` renders ``docker-compose.yml`` with :data:`COMPOSE_SITE` (service names as
  hosts, ``${VAR}`` interpolation from ``.env``);
* ``deploy.native`` starts the very same argv and environment as local processes with a
  :class:`Site` of host ports and paths (``tests/e2e/test_celery_scaleout.py``).

Only *where things are* differs between the two (a :class:`Site`); what runs and how it is
configured is written here once.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from legacy_sync.contracts import FOURD_CONN_TYPE, POOL

AIRFLOW = "airflow"
PYTHON = "python"
POOL_DESCRIPTION = "4D client licences the sync may hold at once"
SIMULATOR_PORT = "8044"
API_PORT = "8080"


@dataclass(frozen=True)
class FourDServer:
    """The 4D REST server behind connection ``legacy_4d_default`` (all values as text)."""

    host: str
    port: str
    schema: str  # https, or http (refused to a remote host unless allow_insecure_http)
    login: str
    password: str
    page_size: str = "2000"
    verify_tls: str = "true"
    session_minutes: str = "120"
    allow_insecure_http: str = "false"
    ca_bundle: str = ""  # PEM file of an internal CA, inside the containers

    @classmethod
    def at(cls, base_url: str, login: str, password: str) -> FourDServer:
        """The 4D server at ``base_url`` (e.g. the simulator's ``http://127.0.0.1:PORT``)."""
        url = urlsplit(base_url)
        return cls(str(url.hostname), str(url.port or ""), url.scheme, login, password)


@dataclass(frozen=True)
class ErpDatabase:
    """The ERP's PostgreSQL behind connections ``erp_postgres_default`` (the sync's read-write role)
    and ``erp_postgres_monitor`` (the sync monitor's SELECT-only role; none when ``monitor_login``
    is empty)."""

    host: str
    port: str
    login: str
    password: str
    database: str
    monitor_login: str = ""
    monitor_password: str = ""

    @classmethod
    def at(cls, url: str, monitor_url: str | None = None) -> ErpDatabase:
        """The database at libpq ``url``; ``monitor_url``: the same database as the monitor's role."""
        erp = urlsplit(url)
        monitor = urlsplit(monitor_url) if monitor_url else None
        return cls(
            host=str(erp.hostname),
            port=str(erp.port or 5432),
            login=unquote(erp.username or "postgres"),
            password=unquote(erp.password or ""),
            database=erp.path.lstrip("/"),
            monitor_login=unquote(monitor.username or "") if monitor else "",
            monitor_password=unquote(monitor.password or "") if monitor else "",
        )


@dataclass(frozen=True)
class Site:
    """Where the services live and find each other; everything else is fixed below.

    Values are text: for compose they are ``${VAR:-default}`` interpolations, natively real values.
    """

    metadata_db: str  # SQLAlchemy URL of Airflow's metadata database
    result_backend: str  # Celery result backend, ``db+postgresql+psycopg://`` on the metadata DB
    broker_url: str  # Celery broker: ``redis://`` (or kombu's ``sqla+postgresql://``)
    api_host: str  # interface the api-server binds
    api_port: str
    api_base_url: str  # how users (and links in the UI) reach the api-server
    execution_api_url: str  # how workers' task processes reach the api-server
    dags_folder: str
    plugins_folder: str
    dbt_project_dir: str
    fernet_key: str
    jwt_secret: str
    fourd: FourDServer
    erp: ErpDatabase
    admin_user: str = "admin"
    passwords_file: str = ""  # simple auth manager's generated passwords (empty: Airflow's default)
    pool_slots: str = "3"
    queue: str = "default"
    worker_concurrency: str = "2"
    api_workers: str = "2"
    scheduler_health_port: str = "8974"
    worker_log_port: str = "8793"
    triggerer_log_port: str = "8794"
    dags_paused_at_creation: str = "true"
    extra: dict[str, str] = field(default_factory=dict)  # deployment-specific additions


def fourd_connection(server: FourDServer) -> str:
    """``AIRFLOW_CONN_LEGACY_4D_DEFAULT`` in Airflow's JSON form (the hook parses the text values)."""
    return json.dumps(
        {
            "conn_type": FOURD_CONN_TYPE,
            "host": server.host,
            "port": server.port,
            "schema": server.schema,
            "login": server.login,
            "password": server.password,
            "extra": {
                "page_size": server.page_size,
                "verify_tls": server.verify_tls,
                "session_minutes": server.session_minutes,
                "allow_insecure_http": server.allow_insecure_http,
                "ca_bundle": server.ca_bundle,
            },
        }
    )


def erp_connection(db: ErpDatabase) -> str:
    """``AIRFLOW_CONN_ERP_POSTGRES_DEFAULT``; dbt reads its credentials from it at run time."""
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": db.host,
            "port": db.port,
            "login": db.login,
            "password": db.password,
            "schema": db.database,
        }
    )


def monitor_connection(db: ErpDatabase) -> str:
    """``AIRFLOW_CONN_ERP_POSTGRES_MONITOR``: the api-server's sync monitor reads with this role only."""
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": db.host,
            "port": db.port,
            "login": db.monitor_login,
            "password": db.monitor_password,
            "schema": db.database,
        }
    )


def airflow_environment(site: Site) -> dict[str, str]:
    """The settings every Airflow service shares (api-server, scheduler, workers, ...)."""
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": site.metadata_db,
        "AIRFLOW__CELERY__BROKER_URL": site.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": site.result_backend,
        # Tasks go to this queue unless they name another; workers consume it (--queues).
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": site.queue,
        "AIRFLOW__CORE__FERNET_KEY": site.fernet_key,
        # One signing secret for all components: the api-server issues the task tokens workers
        # present back to the execution API (>= 64 bytes).
        "AIRFLOW__API_AUTH__JWT_SECRET": site.jwt_secret,
        "AIRFLOW__API__HOST": site.api_host,
        "AIRFLOW__API__BASE_URL": site.api_base_url,
        "AIRFLOW__API__WORKERS": site.api_workers,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": site.execution_api_url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{site.admin_user}:admin",
        "AIRFLOW__CORE__DAGS_FOLDER": site.dags_folder,
        "AIRFLOW__CORE__PLUGINS_FOLDER": site.plugins_folder,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": site.dags_paused_at_creation,
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": site.scheduler_health_port,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": site.worker_log_port,
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": site.triggerer_log_port,
        "LEGACY_SYNC_DBT_PROJECT_DIR": site.dbt_project_dir,
        "AIRFLOW_CONN_LEGACY_4D_DEFAULT": fourd_connection(site.fourd),
        "AIRFLOW_CONN_ERP_POSTGRES_DEFAULT": erp_connection(site.erp),
    }
    if site.erp.monitor_login:
        env["AIRFLOW_CONN_ERP_POSTGRES_MONITOR"] = monitor_connection(site.erp)
        # The sync grants this role SELECT on sync_log / sync_error when it creates them.
        env["LEGACY_SYNC_MONITOR_ROLE"] = site.erp.monitor_login
    if site.passwords_file:
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = site.passwords_file
    env.update(site.extra)
    return env


def check_secrets_command(profile: str) -> list[str]:
    """Refuse placeholder or weak secrets (:mod:`legacy_sync.secret_policy`): ``compose`` checks the
    ``.env`` values, ``airflow`` Airflow's own settings (Fernet key, JWT secret, connection passwords).
    """
    return [PYTHON, "-m", "legacy_sync.secret_policy", "--for", profile]


def init_steps(site: Site) -> list[list[str]]:
    """What the init service runs once, in order, before the other services start.

    First the secrets check: nothing is migrated or started with a placeholder or weak secret.
    Connections need no step: they are ``AIRFLOW_CONN_*`` settings every service gets.
    """
    return [
        check_secrets_command("airflow"),
        [AIRFLOW, "db", "migrate"],
        [AIRFLOW, "pools", "set", POOL, site.pool_slots, POOL_DESCRIPTION],
        # Registers the DAGs now; the dag-processor would otherwise pick new files up on its next scan.
        [AIRFLOW, "dags", "reserialize"],
    ]


def init_script(site: Site) -> str:
    """:func:`init_steps` as one shell line (the compose init service runs ``bash -c``)."""
    return "set -e; " + " && ".join(shlex.join(step) for step in init_steps(site))


def worker_command(site: Site, node: str = "worker") -> list[str]:
    """A Celery worker. ``node`` names it (``node@host``); two on one machine need two names."""
    return [
        AIRFLOW,
        "celery",
        "worker",
        "--queues",
        site.queue,
        "--concurrency",
        site.worker_concurrency,
        "--celery-hostname",
        f"{node}@%h",
    ]


def airflow_commands(site: Site) -> dict[str, list[str]]:
    """The long-running Airflow services and their argv (workers: see :func:`worker_command`)."""
    return {
        "airflow-apiserver": [AIRFLOW, "api-server", "--port", site.api_port],
        "airflow-scheduler": [AIRFLOW, "scheduler"],
        "airflow-dag-processor": [AIRFLOW, "dag-processor"],
        "airflow-triggerer": [AIRFLOW, "triggerer"],
        "airflow-worker": worker_command(site),
    }


def simulator_command(port: str, user: str, password: str, records: str, seed: str = "1") -> list[str]:
    """The 4D REST simulator standing in for a real 4D server (docker-compose's default)."""
    return [
        "python",
        "-m",
        "legacy4d_simulator",
        "serve",
        "--host",
        "0.0.0.0",  # noqa: S104 - inside its container, reached by service name
        "--port",
        port,
        "--generate",
        records,
        "--seed",
        seed,
        "--dirty",
        "0.01",
        "--user",
        user,
        "--password",
        password,
        "--licences",
        "3",
    ]


def compose_var(name: str, default: str | None = None) -> str:
    """A compose interpolation: required (``${X:?...}``) without a default."""
    if default is None:
        return "${" + name + ":?set " + name + " in .env (see .env.example)}"
    return "${" + name + ":-" + default + "}"


# docker-compose.yml's site: services reach each other by service name inside the compose
# network; secrets and deployment knobs come from .env (every one is listed in .env.example).
_COMPOSE_METADATA_DB = (
    f"{compose_var('AIRFLOW_DB_USER', 'airflow')}:{compose_var('AIRFLOW_DB_PASSWORD')}"
    f"@airflow-db:5432/{compose_var('AIRFLOW_DB_NAME', 'airflow')}"
)
COMPOSE_SITE = Site(
    metadata_db=f"postgresql+psycopg://{_COMPOSE_METADATA_DB}",
    result_backend=f"db+postgresql+psycopg://{_COMPOSE_METADATA_DB}",
    broker_url="redis://redis:6379/0",
    api_host="0.0.0.0",  # noqa: S104 - inside its container; published by compose
    api_port=API_PORT,
    api_base_url=compose_var("AIRFLOW_BASE_URL", "http://localhost:8080"),
    execution_api_url=f"http://airflow-apiserver:{API_PORT}/execution/",
    dags_folder="/opt/airflow/dags",
    plugins_folder="/opt/airflow/plugins",
    dbt_project_dir="/opt/airflow/dbt_project",
    fernet_key=compose_var("AIRFLOW_FERNET_KEY"),
    jwt_secret=compose_var("AIRFLOW_JWT_SECRET"),
    fourd=FourDServer(
        host=compose_var("LEGACY_4D_HOST", "fourd-simulator"),
        port=compose_var("LEGACY_4D_PORT", SIMULATOR_PORT),
        schema=compose_var("LEGACY_4D_SCHEMA", "https"),
        login=compose_var("LEGACY_4D_LOGIN", "sync"),
        password=compose_var("LEGACY_4D_PASSWORD"),
        page_size=compose_var("LEGACY_4D_PAGE_SIZE", "2000"),
        verify_tls=compose_var("LEGACY_4D_VERIFY_TLS", "true"),
        session_minutes=compose_var("LEGACY_4D_SESSION_MINUTES", "120"),
        allow_insecure_http=compose_var("LEGACY_4D_ALLOW_INSECURE_HTTP", "false"),
        ca_bundle=compose_var("LEGACY_4D_CA_BUNDLE", ""),
    ),
    erp=ErpDatabase(
        host=compose_var("ERP_DB_HOST", "erp-db"),
        port=compose_var("ERP_DB_PORT", "5432"),
        login=compose_var("ERP_DB_USER", "legacy_sync"),
        password=compose_var("ERP_DB_PASSWORD"),
        database=compose_var("ERP_DB_NAME", "erp"),
        monitor_login=compose_var("ERP_DB_MONITOR_USER", "legacy_sync_monitor"),
        monitor_password=compose_var("ERP_DB_MONITOR_PASSWORD"),
    ),
    admin_user=compose_var("AIRFLOW_ADMIN_USER", "admin"),
    pool_slots=compose_var("LEGACY_4D_POOL_SLOTS", "3"),
    worker_concurrency=compose_var("AIRFLOW_WORKER_CONCURRENCY", "4"),
    api_workers=compose_var("AIRFLOW_API_WORKERS", "2"),
    extra={
        "LEGACY_SYNC_SCHEDULE": compose_var("LEGACY_SYNC_SCHEDULE", "@hourly"),
        "LEGACY_SYNC_FULL_SCHEDULE": compose_var("LEGACY_SYNC_FULL_SCHEDULE", "@weekly"),
        # Cutover confidence (README "Cutover confidence"): empty means the built-in default.
        "LEGACY_SYNC_DIFF_SCHEDULE": compose_var("LEGACY_SYNC_DIFF_SCHEDULE", "@weekly"),
        "LEGACY_SYNC_FRESHNESS_SCHEDULE": compose_var("LEGACY_SYNC_FRESHNESS_SCHEDULE", "*/15 * * * *"),
        "LEGACY_SYNC_READINESS_THRESHOLD": compose_var("LEGACY_SYNC_READINESS_THRESHOLD", ""),
        "LEGACY_SYNC_DRIFT_POLICY": compose_var("LEGACY_SYNC_DRIFT_POLICY", ""),
        "LEGACY_SYNC_NOTIFIERS": compose_var("LEGACY_SYNC_NOTIFIERS", ""),
        "LEGACY_SYNC_NOTIFY_EMAIL": compose_var("LEGACY_SYNC_NOTIFY_EMAIL", ""),
        "LEGACY_SYNC_NOTIFY_FROM": compose_var("LEGACY_SYNC_NOTIFY_FROM", ""),
    },
)
