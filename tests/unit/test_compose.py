"""docker-compose.yml: valid against the Compose specification, and what deploy/services.py defines.

The schema is the Compose spec's own ``compose-spec.json``, shipped in ``tests/fixtures`` (source
and commit in its ``$comment``), so the check runs offline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from deploy import compose
from deploy.services import (
    COMPOSE_SITE,
    airflow_commands,
    airflow_environment,
    check_secrets_command,
    init_steps,
    worker_command,
)
from legacy_sync.secret_policy import COMPOSE_SECRETS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
ENV_EXAMPLE = ROOT / ".env.example"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_file_validates_against_the_compose_spec(document: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_compose_file(document: dict[str, Any]) -> None:
    # The schema really checks something: a misspelt service key must fail.
    broken = json.loads(json.dumps(document))
    broken["services"]["airflow-scheduler"]["comand"] = ["airflow", "scheduler"]
    schema = json.loads(SCHEMA.read_text())
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def test_checked_in_compose_file_is_generated_from_deploy() -> None:
    assert COMPOSE_FILE.read_text() == compose.render(), (
        "docker-compose.yml is stale: run `.venv/bin/python -m deploy.compose > docker-compose.yml`"
    )


def test_airflow_services_run_the_shared_commands_and_settings(document: dict[str, Any]) -> None:
    services = document["services"]
    expected_env = airflow_environment(COMPOSE_SITE)
    for name, command in airflow_commands(COMPOSE_SITE).items():
        assert services[name]["command"] == command, name
        assert services[name]["environment"] == expected_env, name
    assert services["airflow-worker"]["command"] == worker_command(COMPOSE_SITE)
    assert services["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    init = services["airflow-init"]
    assert init["environment"] == expected_env
    assert init["entrypoint"] == ["/bin/bash"]
    script = init["command"][1]
    for step in init_steps(COMPOSE_SITE):
        assert " ".join(step[:3]) in script


def test_topology_has_every_service_the_issue_asks_for(document: dict[str, Any]) -> None:
    services = document["services"]
    assert {
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "airflow-db",
        "erp-db",
        "redis",
        "fourd-simulator",
    } <= set(services)
    for name, service in services.items():
        if name not in ("airflow-init", "check-secrets"):  # one-shot services
            assert "healthcheck" in service, f"{name} has no health check"
    assert services["airflow-worker"]["deploy"]["replicas"] == "${AIRFLOW_WORKER_REPLICAS:-2}"
    env = airflow_environment(COMPOSE_SITE)
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-worker"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_env_example_lists_every_variable_and_no_real_secret() -> None:
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}", text))
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    for key in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_DB_PASSWORD", "ERP_DB_PASSWORD"):
        assert example[key].startswith("change-me"), f"{key} must be a placeholder, not a secret"


def test_the_4d_connection_is_https_unless_plain_http_is_allowed_explicitly() -> None:
    conn = json.loads(airflow_environment(COMPOSE_SITE)["AIRFLOW_CONN_LEGACY_4D_DEFAULT"])
    assert conn["schema"] == "${LEGACY_4D_SCHEMA:-https}"
    assert conn["extra"]["allow_insecure_http"] == "${LEGACY_4D_ALLOW_INSECURE_HTTP:-false}"
    assert conn["extra"]["ca_bundle"] == "${LEGACY_4D_CA_BUNDLE:-}"


def test_nothing_starts_before_the_secrets_check_succeeds(document: dict[str, Any]) -> None:
    services = document["services"]
    check = services["check-secrets"]
    assert check["entrypoint"] + check["command"] == check_secrets_command("compose")
    assert set(check["environment"]) == {s.name for s in COMPOSE_SECRETS}
    assert all(":?" in value for value in check["environment"].values()), "required, not defaulted"
    for name, service in services.items():
        if name != "check-secrets":
            condition = service.get("depends_on", {}).get("check-secrets", {}).get("condition")
            assert condition == "service_completed_successfully", f"{name} starts without the check"
    # ... and the Airflow init step checks Airflow's own settings before migrating anything.
    assert init_steps(COMPOSE_SITE)[0] == check_secrets_command("airflow")
    script = services["airflow-init"]["command"][1]
    assert script.startswith("set -e; python -m legacy_sync.secret_policy --for airflow && airflow db")


def test_the_monitor_reads_with_its_own_select_only_role(document: dict[str, Any]) -> None:
    env = airflow_environment(COMPOSE_SITE)
    monitor = json.loads(env["AIRFLOW_CONN_ERP_POSTGRES_MONITOR"])
    sync = json.loads(env["AIRFLOW_CONN_ERP_POSTGRES_DEFAULT"])
    assert monitor["login"] == "${ERP_DB_MONITOR_USER:-legacy_sync_monitor}" != sync["login"]
    assert monitor["password"].startswith("${ERP_DB_MONITOR_PASSWORD:?")
    assert (monitor["host"], monitor["schema"]) == (sync["host"], sync["schema"])
    assert env["LEGACY_SYNC_MONITOR_ROLE"] == monitor["login"]  # the sync grants this role its reads
    erp_db = document["services"]["erp-db"]["environment"]
    assert erp_db["ERP_DB_MONITOR_USER"] == monitor["login"]
    assert erp_db["ERP_DB_MONITOR_PASSWORD"] == monitor["password"]
    assert (ROOT / "docker" / "erp-db-init" / "20-legacy-sync-monitor-role.sh").exists()
