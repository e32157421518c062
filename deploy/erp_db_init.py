"""The ERP database's first-start SQL (docker/erp-db-init), for runs without psql or Docker.

``docker/erp-db-init/*.sh`` feed psql a heredoc with psql variables; :func:`init_sql` returns that
very SQL with the variables bound, so the tests and the reliability suite set up the sync's
least-privilege role exactly as erp-db does on its first start, and a change to a script is what
they run.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

INIT_DIR = Path(__file__).resolve().parents[1] / "docker" / "erp-db-init"
SYNC_ROLE_SCRIPT = INIT_DIR / "10-legacy-sync-role.sh"
MONITOR_ROLE_SCRIPT = INIT_DIR / "20-legacy-sync-monitor-role.sh"

# psql's :"name" (an identifier) and :'name' (a literal)
_VARIABLE = re.compile(r""":(["'])(\w+)\1""")


def init_sql(script: Path, **values: str) -> sql.Composed:
    """The SQL ``script`` gives psql, its ``-v`` variables bound to ``values``."""
    text = script.read_text()
    body = text.split("<<'SQL'\n", 1)[1].rsplit("\nSQL", 1)[0]
    pieces = _VARIABLE.split(body)
    parts: list[sql.Composable] = []
    for i in range(0, len(pieces), 3):
        parts.append(sql.SQL(pieces[i]))
        if i + 2 < len(pieces):
            kind, name = pieces[i + 1], pieces[i + 2]
            parts.append(sql.Identifier(values[name]) if kind == '"' else sql.Literal(values[name]))
    return sql.Composed(parts)


@dataclass(frozen=True)
class SyncRole:
    """The sync's role in one database: its name and a URL that connects as it."""

    name: str
    url: str


def create_sync_role(admin_url: str, role: str | None = None) -> SyncRole:
    """Run the sync role's init SQL in ``admin_url``'s database (a superuser's URL); the role is
    named after the database unless given (roles belong to the whole server)."""
    parts = urlsplit(admin_url)
    database = parts.path.lstrip("/")
    role = role or f"ls_{database}"
    password = secrets.token_urlsafe(16)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(init_sql(SYNC_ROLE_SCRIPT, role=role, password=password, db=database))
    netloc = f"{quote(role)}:{quote(password)}@{parts.hostname}:{parts.port or 5432}"
    return SyncRole(role, urlunsplit(parts._replace(netloc=netloc)))


def drop_role(admin_url: str, role: str) -> None:
    """Drop a role :func:`create_sync_role` made (after its database is gone)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
