"""Refuse placeholder and weak secrets before anything starts with them.

``docker compose`` only rejects *empty* values (``${VAR:?}``), so ``.env.example``'s ``change-me-*``
values would run: with the placeholder JWT secret anyone could forge an admin token for the
api-server. Every entry point checks its secrets here first:

- docker-compose.yml's ``check-secrets`` service (every other service waits for it to succeed)
  checks the ``.env`` values: ``python -m legacy_sync.secret_policy --for compose``;
- the Airflow init step (compose and ``deploy/native.py``) checks Airflow's own settings:
  ``python -m legacy_sync.secret_policy --for airflow``;
- by hand before ``docker compose up``: ``legacy-sync check-secrets --env-file .env``.

The rules (no value is ever printed):

- JWT secret: at least 64 bytes (Airflow signs with HS512), at least 16 distinct characters;
- Fernet key: a valid key (32 url-safe base64 bytes), not all alike; every key of a rotation list;
- passwords: at least 12 characters, at least 6 distinct;
- none of them a placeholder (``change-me``, ``changeme``, ``replace-me``, ``<...>``, ``...``).

Connection passwords inside ``AIRFLOW_CONN_*`` JSON/URIs and SQLAlchemy / Celery URLs are checked
when they are set; a connection without a password (peer, certificate or trust authentication) is
not a weak secret.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

GENERATE = {
    "jwt": 'python -c "import secrets; print(secrets.token_urlsafe(64))"',
    "fernet": 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"',
    "password": 'python -c "import secrets; print(secrets.token_urlsafe(24))"',
}
MIN_JWT_BYTES = 64
MIN_PASSWORD_CHARS = 12

_PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|^<.*>$|^\.\.\.$|^x{3,}$", re.IGNORECASE)


@dataclass(frozen=True)
class Secret:
    name: str
    kind: str  # "jwt", "fernet" or "password"


# The variables docker-compose.yml takes from .env (see .env.example).
COMPOSE_SECRETS = (
    Secret("AIRFLOW_FERNET_KEY", "fernet"),
    Secret("AIRFLOW_JWT_SECRET", "jwt"),
    Secret("AIRFLOW_DB_PASSWORD", "password"),
    Secret("LEGACY_4D_PASSWORD", "password"),
    Secret("ERP_DB_PASSWORD", "password"),
    Secret("ERP_DB_MONITOR_PASSWORD", "password"),
    Secret("ERP_DB_ADMIN_PASSWORD", "password"),
)
# Airflow's own settings, as every Airflow component reads them.
AIRFLOW_SECRETS = (
    Secret("AIRFLOW__CORE__FERNET_KEY", "fernet"),
    Secret("AIRFLOW__API_AUTH__JWT_SECRET", "jwt"),
)
_URL_SETTINGS = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__BROKER_URL",
)
PROFILES = {"compose": COMPOSE_SECRETS, "airflow": AIRFLOW_SECRETS}


def _problem_of(value: str, kind: str) -> str | None:
    """What is wrong with ``value`` as a ``kind`` secret, or ``None``."""
    if not value.strip():
        return "is empty"
    if _PLACEHOLDER.search(value):
        return "is a placeholder"
    if kind == "jwt":
        if len(value.encode()) < MIN_JWT_BYTES:
            return f"is shorter than {MIN_JWT_BYTES} bytes"
        if len(set(value)) < 16:
            return "is too repetitive to be random"
        return None
    if kind == "fernet":
        for part in value.split(","):
            try:
                raw = base64.b64decode(part.strip().encode(), altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                return "is not a Fernet key (32 url-safe base64-encoded bytes)"
            if len(raw) != 32:
                return "is not a Fernet key (32 url-safe base64-encoded bytes)"
            if len(set(raw)) < 8:
                return "is too repetitive to be random"
        return None
    if len(value) < MIN_PASSWORD_CHARS:
        return f"is shorter than {MIN_PASSWORD_CHARS} characters"
    if len(set(value)) < 6:
        return "is too repetitive"
    return None


def problem(name: str, value: str, kind: str) -> str | None:
    """A message for a refused secret (never its value), or ``None`` when it is fine."""
    why = _problem_of(value, kind)
    if why is None:
        return None
    return f"{name} {why}. Generate one: {GENERATE[kind]}"


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _connection_password(value: str) -> str | None:
    """The password of an ``AIRFLOW_CONN_*`` value (JSON or URI form), if it has one."""
    text = value.strip()
    if text.startswith("{"):
        try:
            password = json.loads(text).get("password")
        except (ValueError, AttributeError):
            return None
        return str(password) if password else None
    return _url_password(text)


def check(env: Mapping[str, str], required: Iterable[Secret] = ()) -> list[str]:
    """Every problem with the secrets in ``env``; ``required`` ones must also be present."""
    problems: list[str] = []
    known = {s.name: s for s in (*COMPOSE_SECRETS, *AIRFLOW_SECRETS)}
    for secret in required:
        if secret.name not in env:
            problems.append(f"{secret.name} is not set. Generate one: {GENERATE[secret.kind]}")
    for name, secret in known.items():
        if name in env and (message := problem(name, env[name], secret.kind)):
            problems.append(message)
    for name in _URL_SETTINGS:
        password = _url_password(env.get(name, ""))
        if password is not None and (message := problem(f"the password in {name}", password, "password")):
            problems.append(message)
    for name in sorted(k for k in env if k.startswith("AIRFLOW_CONN_")):
        password = _connection_password(env[name])
        if password is not None and (message := problem(f"the password of {name}", password, "password")):
            problems.append(message)
    return problems


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a compose ``.env`` file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip().removeprefix("export ").strip()] = value
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="legacy-sync check-secrets",
        description="Refuse placeholder or weak secrets (JWT secret, Fernet key, passwords).",
    )
    parser.add_argument(
        "--for",
        dest="profile",
        choices=sorted(PROFILES),
        help="also require the secrets of: compose (.env values) or airflow (Airflow's settings)",
    )
    parser.add_argument("--env-file", type=Path, help="check this .env file instead of the environment")
    args = parser.parse_args(argv)
    env = read_env_file(args.env_file) if args.env_file else dict(os.environ)
    required: tuple[Secret, ...] = PROFILES[args.profile] if args.profile else ()
    if args.env_file and not args.profile:
        required = COMPOSE_SECRETS
    problems = check(env, required)
    for message in problems:
        print(f"refused: {message}", file=sys.stderr)
    if problems:
        print(
            f"{len(problems)} secret(s) refused; nothing was started. "
            "Set real values (see docs/deployment.md).",
            file=sys.stderr,
        )
        return 1
    print("secrets ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
