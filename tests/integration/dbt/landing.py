"""Test helpers: land 4D entities in wire format and run dbt against a test database.

The landing here stands in for the Python extract-and-land task: it applies the sync's own
DDL (``plugins/legacy_sync/sql/schema.sql``), creates the ``legacy_staging.<table>_raw``
tables, COPYs payloads exactly as 4D would serve them and records the ``landing_batch`` row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from legacy_sync import ledger, pipeline
from legacy_sync.registry import TABLES as REGISTRY

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT = PROJECT_ROOT / "dbt_project"
DBT_BIN = PROJECT_ROOT / ".venv" / "bin" / "dbt"

#: 4D dataclass -> (snake name, primary key, {field: wire type}), from the table registry.
TABLES: dict[str, tuple[str, str, dict[str, str]]] = {
    t.name: (t.snake_name, t.key, {t.key: "integer", **{f.name: f.wire.value for f in t.fields}})
    for t in REGISTRY
}
TABLE_NAMES = tuple(TABLES)
#: erp table per 4D dataclass.
ERP_TABLES = {name: snake for name, (snake, _, _) in TABLES.items()}


class RawNumber(str):
    """A JSON number kept as its source text, so money keeps its digits (2024.9940)."""


def to_json(payload: Mapping[str, Any]) -> str:
    """Serialise a payload, writing RawNumber values as bare JSON numbers."""
    parts = []
    for key, value in payload.items():
        text = str(value) if isinstance(value, RawNumber) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{json.dumps(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def wire_date(iso: str) -> str:
    """ISO date (or empty) -> the 4D wire form: "d!m!yyyy" unpadded, blank "0!0!0"."""
    if not iso:
        return "0!0!0"
    d = date.fromisoformat(iso)
    return f"{d.day}!{d.month}!{d.year}"


def csv_row_to_payload(table: str, row: Mapping[str, str], stamp: int = 1) -> dict[str, Any]:
    """One AdventureWorks CSV row -> the 4D entity as the REST server sends it."""
    _, key, types = TABLES[table]
    payload: dict[str, Any] = {
        "__KEY": row[key],
        "__TIMESTAMP": "2020-04-10T10:44:49.927Z",
        "__STAMP": stamp,
        "__GlobalStamp": stamp,
    }
    for field, kind in types.items():
        value = row.get(field, "")
        if kind == "date":
            payload[field] = wire_date(value)
        elif value == "":
            payload[field] = None
        elif kind == "boolean":
            payload[field] = value == "True"
        elif kind in ("integer", "number"):
            payload[field] = RawNumber(value)
        else:
            payload[field] = value
    payload["ModifiedTime"] = 0
    return payload


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def prepare_database(url: str) -> None:
    """Apply the sync's DDL: the legacy_sync tables and the seven raw landing tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        ledger.apply_schema(conn)


@dataclass
class Landing:
    """Lands 4D payloads for one run into a test database, as the extract task would."""

    url: str
    run_id: str
    mode: str = "incremental"

    def land(
        self,
        table: str,
        payloads: Iterable[Mapping[str, Any]],
        *,
        complete_key_set: bool = False,
        mode: str | None = None,
        deleted_keys: Iterable[str] = (),
    ) -> int:
        """COPY payloads (legacy_id = their __KEY) and record the batch in the ledger."""
        snake = TABLES[table][0]
        count = 0
        mode = mode or self.mode
        with psycopg.connect(self.url, autocommit=True) as conn:
            ledger.begin_run(conn, self.run_id, ledger.Mode(mode), [table], dag_id=None)
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(
                    f"copy legacy_staging.{snake}_raw (run_id, legacy_id, payload, row_hash) from stdin"
                ) as copy:
                    for payload in payloads:
                        text = to_json(payload)
                        copy.write_row(
                            (
                                self.run_id,
                                str(payload["__KEY"]),
                                text,
                                hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
                            )
                        )
                        count += 1
                deleted = list(deleted_keys)
                for key in deleted:
                    cur.execute(
                        "insert into legacy_staging.deleted_records_raw"
                        " (run_id, table_name, legacy_id, stamp) values (%s, %s, %s, null)",
                        (self.run_id, table, key),
                    )
                batch = ledger.Batch(
                    table=table,
                    mode=mode,
                    strategy="global_stamp",
                    records_landed=count,
                    deleted_keys=len(deleted),
                    complete_key_set=complete_key_set,
                )
                ledger.record_batch(conn, self.run_id, batch)
        return count


def dbt_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    env = dict(os.environ)
    env.update(
        ERP_PG_HOST=parts.hostname or "127.0.0.1",
        ERP_PG_PORT=str(parts.port or 5432),
        ERP_PG_USER=parts.username or "postgres",
        ERP_PG_PASSWORD=parts.password or "",
        ERP_PG_DBNAME=parts.path.lstrip("/"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    return env


def run_dbt(
    url: str, *args: str, check: bool = True, project_dir: Path = DBT_PROJECT
) -> subprocess.CompletedProcess[str]:
    """Run the dbt CLI on the project against ``url`` (a subprocess: dbt is not re-entrant)."""
    cmd = [str(DBT_BIN), *args, "--profiles-dir", str(project_dir), "--project-dir", str(project_dir)]
    proc = subprocess.run(cmd, cwd=project_dir, env=dbt_env(url), capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dbt {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-12000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def build(url: str, run_id: str) -> dict[str, str]:
    """The pipeline's transform step for what was landed: dbt build (models and data tests, the
    tables that landed something) and this run's verdicts into the ledger. {table: failure}."""
    return pipeline.transform(url, run_id)


def summarize(url: str, run_id: str) -> list[ledger.TableSummary]:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute("select table_name from legacy_sync.sync_log where run_id = %s", (run_id,))
        ]
    return pipeline.summarize(url, run_id, [{"table": t} for t in tables], transform_finished=True)


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())
