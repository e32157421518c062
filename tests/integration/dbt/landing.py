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

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT = PROJECT_ROOT / "dbt_project"
SCHEMA_SQL = PROJECT_ROOT / "plugins" / "legacy_sync" / "sql" / "schema.sql"
DBT_BIN = PROJECT_ROOT / ".venv" / "bin" / "dbt"

#: 4D dataclass -> (snake name, primary key, {field: wire type}); mirrors the registry.
TABLES: dict[str, tuple[str, str, dict[str, str]]] = {
    "Products": (
        "products",
        "ProductID",
        {
            "ProductID": "integer",
            "ProductName": "text",
            "Description": "text",
            "SKU": "text",
            "Category": "text",
            "Price": "number",
            "Cost": "number",
            "TaxRate": "number",
            "IsPurchased": "boolean",
            "IsManufactured": "boolean",
            "Color": "text",
            "Weight": "number",
            "SellStartDate": "date",
            "SellEndDate": "date",
            "DiscontinuedDate": "date",
            "ModifiedDate": "date",
        },
    ),
    "Customers": (
        "customers",
        "CustomerID",
        {
            "CustomerID": "integer",
            "AccountNumber": "text",
            "CompanyName": "text",
            "FirstName": "text",
            "LastName": "text",
            "Email": "text",
            "Phone": "text",
            "ModifiedDate": "date",
        },
    ),
    "Orders": (
        "orders",
        "OrderID",
        {
            "OrderID": "integer",
            "OrderNumber": "text",
            "CustomerID": "integer",
            "OrderDate": "date",
            "DueDate": "date",
            "ShipDate": "date",
            "Status": "integer",
            "SubTotal": "number",
            "TaxAmt": "number",
            "Freight": "number",
            "TotalDue": "number",
            "ModifiedDate": "date",
        },
    ),
    "OrderLines": (
        "order_lines",
        "OrderLineID",
        {
            "OrderLineID": "integer",
            "OrderID": "integer",
            "ProductID": "integer",
            "Quantity": "integer",
            "UnitPrice": "number",
            "UnitPriceDiscount": "number",
            "LineTotal": "number",
            "ModifiedDate": "date",
        },
    ),
    "Invoices": (
        "invoices",
        "InvoiceID",
        {
            "InvoiceID": "integer",
            "InvoiceNumber": "text",
            "OrderID": "integer",
            "CustomerID": "integer",
            "InvoiceDate": "date",
            "DueDate": "date",
            "Amount": "number",
            "TaxAmt": "number",
            "IsPaid": "boolean",
            "PaidDate": "date",
            "ModifiedDate": "date",
        },
    ),
    "Inventory": (
        "inventory",
        "InventoryID",
        {
            "InventoryID": "integer",
            "ProductID": "integer",
            "LocationName": "text",
            "Shelf": "text",
            "Bin": "integer",
            "Quantity": "integer",
            "ModifiedDate": "date",
        },
    ),
    "BillOfMaterials": (
        "bill_of_materials",
        "BOMID",
        {
            "BOMID": "integer",
            "ParentProductID": "integer",
            "ComponentProductID": "integer",
            "Quantity": "number",
            "UnitOfMeasure": "text",
            "BOMLevel": "integer",
            "StartDate": "date",
            "EndDate": "date",
            "ModifiedDate": "date",
        },
    ),
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
    """Apply the sync's DDL and create the seven raw landing tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL.read_text())
        for snake, _, _ in TABLES.values():
            conn.execute(
                f"create table if not exists legacy_staging.{snake}_raw ("
                "run_id text not null, legacy_id text not null, payload jsonb not null,"
                " row_hash text not null, extracted_at timestamptz not null default now())"
            )


@dataclass
class Landing:
    """Lands 4D payloads for one run into a test database."""

    url: str
    run_id: str

    def land(
        self,
        table: str,
        payloads: Iterable[Mapping[str, Any]],
        *,
        complete_key_set: bool = False,
        mode: str = "incremental",
        deleted_keys: Iterable[str] = (),
    ) -> int:
        """COPY payloads (legacy_id = their __KEY) and write the landing_batch row."""
        snake = TABLES[table][0]
        count = 0
        with psycopg.connect(self.url) as conn, conn.cursor() as cur:  # one transaction
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
                    " (run_id, table_name, legacy_id, stamp) values (%s, %s, %s, 1)",
                    (self.run_id, table, key),
                )
            cur.execute(
                "insert into legacy_sync.landing_batch (run_id, table_name, mode, strategy,"
                " complete_key_set, records_landed, deleted_keys) values (%s, %s, %s, %s, %s, %s, %s)"
                " on conflict (run_id, table_name) do update set records_landed ="
                " legacy_sync.landing_batch.records_landed + excluded.records_landed",
                (self.run_id, table, mode, "global_stamp", complete_key_set, count, len(deleted)),
            )
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


def build(url: str, run_id: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_dbt(url, "build", "--vars", json.dumps({"run_id": run_id}), *extra, check=check)


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())
