"""The table registry: every legacy 4D dataclass the sync moves, declared once.

Each table says which 4D attributes it reads and their wire types, how an incremental run
finds what changed, and the columns of its ERP table. Everything else is derived from it:
the DAGs' table list, the landing step, reconciliation, the sync log, and -- through the
generated ``dbt_project/macros/generated/legacy_registry.sql`` (``python -m
legacy_sync.registry``; a test fails when it is stale) -- the dbt staging models, the ERP
tables' DDL and the integrity tests. Adding a legacy table is a declaration here plus its
mapping model in ``dbt_project/`` (see the README's recipe).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path


class Strategy(StrEnum):
    """How an incremental run finds what changed in a table."""

    GLOBAL_STAMP = "global_stamp"
    """``__GlobalStamp`` windows plus ``__DeletedRecords`` (4D data change tracking)."""
    MODIFIED_DATE = "modified_date"
    """``ModifiedDate``/``ModifiedTime`` with a lookback window (no change tracking)."""
    FULL = "full"
    """Full extract every time; unchanged rows are skipped by row-hash comparison."""


class DriftPolicy(StrEnum):
    """What a run does when 4D's ``$catalog`` of a table changed since the last run (``drift.py``)."""

    EVOLVE = "evolve"
    """Report every change once and load on with whatever 4D still sends."""
    FREEZE = "freeze"
    """A breaking change (key or registry field removed, table un-exposed) fails the table, with
    the diff as its reason, until a person accepts the new structure; other changes are reported."""


class Wire(StrEnum):
    """How 4D sends a value over REST, as dbt parses it (dbt_project/macros/fourd/wire_types.sql)."""

    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    """long, long64 and word: JSON numbers without fraction."""
    BOOLEAN = "boolean"
    DATE = "date"
    """``"d!m!yyyy"``; ``"0!0!0"`` is the blank date."""
    TIME = "time"
    """4D Time (duration): milliseconds since midnight."""


@dataclass(frozen=True)
class Field:
    """One 4D attribute a table reads."""

    name: str
    """The 4D attribute, case-sensitive (``ProductName``)."""
    wire: Wire
    column: str
    """Its column in the dbt staging model (``product_name``)."""
    parent: str | None = None
    """For a foreign key: the 4D dataclass it references (``Customers``)."""
    warn_only: bool = False
    """A value that does not parse is a warning, not a rejection (not mapped to the ERP)."""


@dataclass(frozen=True)
class ErpColumn:
    """One business column of an ``erp`` table (the audit columns are common to all)."""

    name: str
    sql_type: str
    """PostgreSQL type, with ``not null`` when the ERP requires a value."""


@dataclass(frozen=True)
class LegacyTable:
    """One legacy 4D dataclass and how it is synced."""

    name: str
    """4D dataclass name, case-sensitive as 4D serves it (``Products``)."""
    key: str
    """The single-field primary key (``ProductID``); 4D sends it again as ``__KEY``."""
    fields: tuple[Field, ...]
    """The attributes read besides the key, in ``$attributes`` order."""
    erp_columns: tuple[ErpColumn, ...]
    """Business columns of ``erp.<snake_name>``, as the mapping model selects them."""
    business_key: str | None = None
    """An ERP column unique among live rows (SKU, account/order/invoice number)."""
    strategy: Strategy = Strategy.GLOBAL_STAMP
    drift_policy: DriftPolicy = DriftPolicy.EVOLVE
    """What a change of 4D's structure does to the table (``LEGACY_SYNC_DRIFT_POLICY`` may override)."""
    stale_after_minutes: int | None = None
    """Alert when the last successful sync of the table is older than this; None: three intervals
    of the hourly DAG's schedule (``freshness.py``)."""

    @cached_property
    def snake_name(self) -> str:
        """``OrderLines`` -> ``order_lines``: the name used in PostgreSQL and dbt."""
        out = []
        for i, ch in enumerate(self.name):
            if ch.isupper() and i and not self.name[i - 1].isupper():
                out.append("_")
            out.append(ch.lower())
        return "".join(out)

    @property
    def raw_table(self) -> str:
        """The landing table in schema ``legacy_staging``."""
        return f"{self.snake_name}_raw"

    @property
    def attributes(self) -> tuple[str, ...]:
        """What ``$attributes`` asks 4D for: the key, then every field."""
        return (self.key, *(f.name for f in self.fields))

    @property
    def parents(self) -> tuple[str, ...]:
        """Tables this one references, in field order, without repeats."""
        return tuple(dict.fromkeys(f.parent for f in self.fields if f.parent))


def _audit() -> tuple[Field, ...]:
    # Maintained by the 4D application on every save. Not mapped: ModifiedDate drives the
    # MODIFIED_DATE strategy (a bad one rejects the record), ModifiedTime only annotates.
    return (
        Field("ModifiedDate", Wire.DATE, "modified_date"),
        Field("ModifiedTime", Wire.TIME, "modified_time", warn_only=True),
    )


TABLES: tuple[LegacyTable, ...] = (
    LegacyTable(
        name="Products",
        key="ProductID",
        fields=(
            Field("ProductName", Wire.TEXT, "product_name"),
            Field("Description", Wire.TEXT, "description"),
            Field("SKU", Wire.TEXT, "sku"),
            Field("Category", Wire.TEXT, "category"),
            Field("Price", Wire.NUMBER, "price"),
            Field("Cost", Wire.NUMBER, "cost"),
            Field("TaxRate", Wire.NUMBER, "tax_rate"),
            Field("IsPurchased", Wire.BOOLEAN, "is_purchased"),
            Field("IsManufactured", Wire.BOOLEAN, "is_manufactured"),
            Field("Color", Wire.TEXT, "color"),
            Field("Weight", Wire.NUMBER, "weight"),
            Field("SellStartDate", Wire.DATE, "sell_start_date"),
            Field("SellEndDate", Wire.DATE, "sell_end_date"),
            Field("DiscontinuedDate", Wire.DATE, "discontinued_date"),
            *_audit(),
        ),
        erp_columns=(
            ErpColumn("name", "text not null"),
            ErpColumn("description", "text"),
            ErpColumn("sku", "text not null"),
            ErpColumn("category_id", "bigint"),
            ErpColumn("list_price", "numeric"),
            ErpColumn("cost_price", "numeric"),
            ErpColumn("tax_rate", "numeric"),
            ErpColumn("is_active", "boolean not null"),
            ErpColumn("is_purchased", "boolean not null"),
            ErpColumn("is_manufactured", "boolean not null"),
            ErpColumn("color", "text"),
            ErpColumn("weight", "numeric"),
            ErpColumn("sell_start_date", "date"),
            ErpColumn("sell_end_date", "date"),
            ErpColumn("discontinued_date", "date"),
        ),
        business_key="sku",
    ),
    LegacyTable(
        name="Customers",
        key="CustomerID",
        fields=(
            Field("AccountNumber", Wire.TEXT, "account_number"),
            Field("CompanyName", Wire.TEXT, "company_name"),
            Field("FirstName", Wire.TEXT, "first_name"),
            Field("LastName", Wire.TEXT, "last_name"),
            Field("Email", Wire.TEXT, "email"),
            Field("Phone", Wire.TEXT, "phone"),
            *_audit(),
        ),
        erp_columns=(
            ErpColumn("account_number", "text not null"),
            ErpColumn("company_name", "text"),
            ErpColumn("first_name", "text"),
            ErpColumn("last_name", "text"),
            ErpColumn("email", "text"),
            ErpColumn("phone", "text"),
            ErpColumn("customer_type", "text not null"),
        ),
        business_key="account_number",
    ),
    LegacyTable(
        name="Orders",
        key="OrderID",
        fields=(
            Field("OrderNumber", Wire.TEXT, "order_number"),
            Field("CustomerID", Wire.INTEGER, "customer_legacy_id", parent="Customers"),
            Field("OrderDate", Wire.DATE, "order_date"),
            Field("DueDate", Wire.DATE, "due_date"),
            Field("ShipDate", Wire.DATE, "ship_date"),
            Field("Status", Wire.INTEGER, "status_code"),
            Field("SubTotal", Wire.NUMBER, "subtotal"),
            Field("TaxAmt", Wire.NUMBER, "tax_amount"),
            Field("Freight", Wire.NUMBER, "freight"),
            Field("TotalDue", Wire.NUMBER, "total_due"),
            *_audit(),
        ),
        erp_columns=(
            ErpColumn("order_number", "text not null"),
            ErpColumn("customer_id", "bigint not null"),
            ErpColumn("order_date", "date not null"),
            ErpColumn("due_date", "date"),
            ErpColumn("ship_date", "date"),
            ErpColumn("status", "text not null"),
            ErpColumn("subtotal", "numeric"),
            ErpColumn("tax_amount", "numeric"),
            ErpColumn("freight", "numeric"),
            ErpColumn("total_due", "numeric"),
        ),
        business_key="order_number",
    ),
    LegacyTable(
        name="OrderLines",
        key="OrderLineID",
        fields=(
            Field("OrderID", Wire.INTEGER, "order_legacy_id", parent="Orders"),
            Field("ProductID", Wire.INTEGER, "product_legacy_id", parent="Products"),
            Field("Quantity", Wire.INTEGER, "quantity"),
            Field("UnitPrice", Wire.NUMBER, "unit_price"),
            Field("UnitPriceDiscount", Wire.NUMBER, "discount_rate"),
            Field("LineTotal", Wire.NUMBER, "line_total"),
            *_audit(),
        ),
        erp_columns=(
            ErpColumn("order_id", "bigint not null"),
            ErpColumn("product_id", "bigint not null"),
            ErpColumn("quantity", "bigint not null"),
            ErpColumn("unit_price", "numeric not null"),
            ErpColumn("discount_rate", "numeric not null"),
            ErpColumn("line_total", "numeric not null"),
        ),
    ),
    LegacyTable(
        name="Invoices",
        key="InvoiceID",
        fields=(
            Field("InvoiceNumber", Wire.TEXT, "invoice_number"),
            Field("OrderID", Wire.INTEGER, "order_legacy_id", parent="Orders"),
            Field("CustomerID", Wire.INTEGER, "customer_legacy_id", parent="Customers"),
            Field("InvoiceDate", Wire.DATE, "invoice_date"),
            Field("DueDate", Wire.DATE, "due_date"),
            Field("Amount", Wire.NUMBER, "amount"),
            Field("TaxAmt", Wire.NUMBER, "tax_amount"),
            Field("IsPaid", Wire.BOOLEAN, "is_paid"),
            Field("PaidDate", Wire.DATE, "paid_date"),
            *_audit(),
        ),
        erp_columns=(
            ErpColumn("invoice_number", "text not null"),
            ErpColumn("order_id", "bigint not null"),
            ErpColumn("customer_id", "bigint not null"),
            ErpColumn("invoice_date", "date"),
            ErpColumn("due_date", "date"),
            ErpColumn("amount", "numeric"),
            ErpColumn("tax_amount", "numeric"),
            ErpColumn("is_paid", "boolean not null"),
            ErpColumn("paid_date", "date"),
        ),
        business_key="invoice_number",
    ),
    LegacyTable(
        name="Inventory",
        key="InventoryID",
        fields=(
            Field("ProductID", Wire.INTEGER, "product_legacy_id", parent="Products"),
            Field("LocationName", Wire.TEXT, "location"),
            Field("Shelf", Wire.TEXT, "shelf"),
            Field("Bin", Wire.INTEGER, "bin"),
            Field("Quantity", Wire.INTEGER, "quantity"),
            *_audit(),
        ),
        erp_columns=(
            ErpColumn("product_id", "bigint not null"),
            ErpColumn("location", "text not null"),
            ErpColumn("shelf", "text"),
            ErpColumn("bin", "bigint"),
            ErpColumn("quantity", "bigint not null"),
        ),
    ),
    LegacyTable(
        name="BillOfMaterials",
        key="BOMID",
        fields=(
            Field("ParentProductID", Wire.INTEGER, "parent_product_legacy_id", parent="Products"),
            Field("ComponentProductID", Wire.INTEGER, "component_product_legacy_id", parent="Products"),
            Field("Quantity", Wire.NUMBER, "quantity"),
            Field("UnitOfMeasure", Wire.TEXT, "unit_of_measure"),
            Field("BOMLevel", Wire.INTEGER, "bom_level"),
            Field("StartDate", Wire.DATE, "valid_from"),
            Field("EndDate", Wire.DATE, "valid_to"),
            *_audit(),
        ),
        erp_columns=(
            ErpColumn("parent_product_id", "bigint"),
            ErpColumn("component_product_id", "bigint not null"),
            ErpColumn("quantity", "numeric not null"),
            ErpColumn("unit_of_measure", "text"),
            ErpColumn("bom_level", "bigint"),
            ErpColumn("valid_from", "date"),
            ErpColumn("valid_to", "date"),
        ),
    ),
)

TABLES_BY_NAME: dict[str, LegacyTable] = {t.name: t for t in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(TABLES_BY_NAME)


def get_table(name: str) -> LegacyTable:
    """Return the registry entry for a 4D dataclass name, with a helpful error if unknown."""
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        known = ", ".join(TABLE_NAMES)
        raise KeyError(f"unknown legacy table {name!r}; the registry knows: {known}") from None


def select_tables(names: list[str] | None) -> list[LegacyTable]:
    """Resolve a user's table list (None or empty means all), keeping registry order."""
    if not names:
        return list(TABLES)
    wanted = {get_table(n).name for n in names}
    return [t for t in TABLES if t.name in wanted]


def dependents(name: str) -> list[str]:
    """Tables that reference ``name``, directly or through others, in registry order."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for table in TABLES:
            if table.name not in found and ({name} | found) & set(table.parents):
                found.add(table.name)
                changed = True
    return [t.name for t in TABLES if t.name in found]


# -- the dbt side of the registry ------------------------------------------------------------

GENERATED_DBT_MACRO = Path("macros") / "generated" / "legacy_registry.sql"


def dbt_registry_macro() -> str:
    """The registry as a dbt macro (Jinja data), so models and tests loop over the same tables."""
    lines = [
        "{#- GENERATED by `python -m legacy_sync.registry` from plugins/legacy_sync/registry.py;",
        "    do not edit (tests/unit/test_registry.py fails when this file is stale). -#}",
        "{% macro legacy_registry() -%}",
        "    {{ return([",
    ]
    for table in TABLES:
        business_key = f"'{table.business_key}'" if table.business_key else "none"
        lines += [
            "        {",
            f"            'name': '{table.name}', 'stem': '{table.snake_name}', 'key': '{table.key}',",
            f"            'strategy': '{table.strategy.value}', 'business_key': {business_key},",
            "            'fields': [",
            *(
                f"                ('{f.name}', '{f.wire.value}', '{f.column}', "
                f"{repr(f.parent) if f.parent else 'none'}, {'true' if f.warn_only else 'false'}),"
                for f in table.fields
            ),
            "            ],",
            "            'erp_columns': [",
            *(f"                ('{c.name}', '{c.sql_type}')," for c in table.erp_columns),
            "            ],",
            "        },",
        ]
    lines += ["    ]) }}", "{%- endmacro %}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the dbt side of the table registry.")
    parser.add_argument(
        "--dbt-project",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "dbt_project",
        help="the dbt project to write macros/generated/legacy_registry.sql into",
    )
    args = parser.parse_args(argv)
    target = args.dbt_project / GENERATED_DBT_MACRO
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dbt_registry_macro())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
