"""Placeholder or weak secrets are refused, with how to generate a real one; real ones pass."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from legacy_sync.secret_policy import COMPOSE_SECRETS, GENERATE, check, read_env_file

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"


def generated() -> dict[str, str]:
    """What the commands in .env.example produce."""
    values = {s.name: secrets.token_urlsafe(24) for s in COMPOSE_SECRETS}
    values["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
    values["AIRFLOW_JWT_SECRET"] = secrets.token_urlsafe(64)
    return values


def test_env_example_as_is_is_refused_naming_every_secret_and_how_to_generate_it() -> None:
    problems = check(read_env_file(ENV_EXAMPLE), COMPOSE_SECRETS)
    for secret in COMPOSE_SECRETS:
        [message] = [p for p in problems if p.startswith(secret.name + " ")]
        assert "placeholder" in message and GENERATE[secret.kind] in message


def test_generated_secrets_pass() -> None:
    assert check(generated(), COMPOSE_SECRETS) == []
    rotation = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    airflow = {
        "AIRFLOW__CORE__FERNET_KEY": rotation,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
    }
    assert check(airflow) == []


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("AIRFLOW_JWT_SECRET", "change-me-jwt-secret-of-at-least-64-bytes" + "x" * 40, "placeholder"),
        ("AIRFLOW_JWT_SECRET", secrets.token_urlsafe(32), "shorter than 64 bytes"),
        ("AIRFLOW_JWT_SECRET", "ab" * 40, "repetitive"),
        ("AIRFLOW_JWT_SECRET", "", "empty"),
        ("AIRFLOW__API_AUTH__JWT_SECRET", "s3kr1t!", "shorter than 64 bytes"),
        ("AIRFLOW_FERNET_KEY", "change-me-fernet-key", "placeholder"),
        ("AIRFLOW_FERNET_KEY", "not a key", "not a Fernet key"),
        ("AIRFLOW_FERNET_KEY", base64.urlsafe_b64encode(b"\0" * 32).decode(), "repetitive"),
        ("AIRFLOW__CORE__FERNET_KEY", f"{Fernet.generate_key().decode()},oops", "not a Fernet key"),
        ("ERP_DB_PASSWORD", "CHANGEME-please-1234", "placeholder"),
        ("ERP_DB_PASSWORD", "pw4-erp!", "shorter than 12"),
        ("LEGACY_4D_PASSWORD", "aaaaaaaaaaaaaaaa", "repetitive"),
        ("AIRFLOW_DB_PASSWORD", "   ", "empty"),
    ],
)
def test_weak_or_placeholder_values_are_refused(name: str, value: str, why: str) -> None:
    problems = check({name: value})
    assert len(problems) == 1 and why in problems[0] and "Generate one" in problems[0]
    if value.strip():
        assert value not in problems[0], "a refused secret is never printed"


def test_required_secrets_must_be_present() -> None:
    env = generated()
    del env["AIRFLOW_JWT_SECRET"]
    [problem] = check(env, COMPOSE_SECRETS)
    assert problem.startswith("AIRFLOW_JWT_SECRET is not set")


def test_passwords_inside_connections_and_urls_are_checked_when_set() -> None:
    env = {
        "AIRFLOW_CONN_ERP_POSTGRES_DEFAULT": json.dumps({"conn_type": "postgres", "password": "change-me"}),
        "AIRFLOW_CONN_LEGACY_4D_DEFAULT": "legacy-4d://sync:change-me-4d-password@erp4d:8044/https",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://airflow:airflow@db/airflow",
    }
    problems = check(env)
    assert len(problems) == 3
    assert any("AIRFLOW_CONN_ERP_POSTGRES_DEFAULT" in p for p in problems)
    assert any("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in p and "shorter" in p for p in problems)
    # Peer / trust / certificate authentication: no password is not a weak password.
    assert check({"AIRFLOW_CONN_ERP": json.dumps({"conn_type": "postgres", "login": "x"})}) == []
    assert check({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://airflow@db/airflow"}) == []


def test_the_command_refuses_env_example_and_accepts_a_real_env_file(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "legacy_sync.secret_policy", "--env-file"]
    refused = subprocess.run([*cli, str(ENV_EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "AIRFLOW_JWT_SECRET is a placeholder" in refused.stderr and "token_urlsafe(64)" in refused.stderr
    real = tmp_path / ".env"
    real.write_text(
        ENV_EXAMPLE.read_text()
        + "".join(f"{name}={value}\n" for name, value in generated().items())  # later lines win
    )
    accepted = subprocess.run([*cli, str(real)], capture_output=True, text=True, timeout=60)
    assert accepted.returncode == 0, accepted.stderr
