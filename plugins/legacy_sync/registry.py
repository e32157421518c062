"""The table registry: every legacy 4D dataclass the sync moves, declared once.

Adding a legacy table is a declaration here plus a staging and a mapping model in
``dbt_project/`` -- no new plumbing. The DAGs, the landing step, reconciliation and the
sync log are all driven from this list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Strategy(StrEnum):
    """How an incremental run finds what changed in a table."""

    GLOBAL_STAMP = "global_stamp"
    """``__GlobalStamp`` windows plus ``__DeletedRecords`` (4D data change tracking)."""
    MODIFIED_DATE = "modified_date"
    """``ModifiedDate``/``ModifiedTime`` with a lookback window (no change tracking)."""
    FULL = "full"
    """Full extract every time; unchanged rows are skipped by row-hash comparison."""


@dataclass(frozen=True)
class LegacyTable:
    """One legacy 4D dataclass and how it is synced."""

    name: str
    """4D dataclass name, case-sensitive as 4D serves it (``Products``)."""
    key: str
    """The single-field primary key (``ProductID``); 4D sends it again as ``__KEY``."""
    fields: tuple[str, ...]
    """Attributes requested with ``$attributes`` (the primary key included)."""
    strategy: Strategy = Strategy.GLOBAL_STAMP
    depends_on: tuple[str, ...] = field(default=())
    """Tables whose records this one references (used to order work and explain rejects)."""

    @property
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


_AUDIT = ("ModifiedDate", "ModifiedTime")

TABLES: tuple[LegacyTable, ...] = (
    LegacyTable(
        name="Products",
        key="ProductID",
        fields=(
            "ProductID",
            "ProductName",
            "Description",
            "SKU",
            "Category",
            "Price",
            "Cost",
            "TaxRate",
            "IsPurchased",
            "IsManufactured",
            "Color",
            "Weight",
            "SellStartDate",
            "SellEndDate",
            "DiscontinuedDate",
            *_AUDIT,
        ),
    ),
    LegacyTable(
        name="Customers",
        key="CustomerID",
        fields=(
            "CustomerID",
            "AccountNumber",
            "CompanyName",
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            *_AUDIT,
        ),
    ),
    LegacyTable(
        name="Orders",
        key="OrderID",
        fields=(
            "OrderID",
            "OrderNumber",
            "CustomerID",
            "OrderDate",
            "DueDate",
            "ShipDate",
            "Status",
            "SubTotal",
            "TaxAmt",
            "Freight",
            "TotalDue",
            *_AUDIT,
        ),
        depends_on=("Customers",),
    ),
    LegacyTable(
        name="OrderLines",
        key="OrderLineID",
        fields=(
            "OrderLineID",
            "OrderID",
            "ProductID",
            "Quantity",
            "UnitPrice",
            "UnitPriceDiscount",
            "LineTotal",
            *_AUDIT,
        ),
        depends_on=("Orders", "Products"),
    ),
    LegacyTable(
        name="Invoices",
        key="InvoiceID",
        fields=(
            "InvoiceID",
            "InvoiceNumber",
            "OrderID",
            "CustomerID",
            "InvoiceDate",
            "DueDate",
            "Amount",
            "TaxAmt",
            "IsPaid",
            "PaidDate",
            *_AUDIT,
        ),
        depends_on=("Orders", "Customers"),
    ),
    LegacyTable(
        name="Inventory",
        key="InventoryID",
        fields=("InventoryID", "ProductID", "LocationName", "Shelf", "Bin", "Quantity", *_AUDIT),
        depends_on=("Products",),
    ),
    LegacyTable(
        name="BillOfMaterials",
        key="BOMID",
        fields=(
            "BOMID",
            "ParentProductID",
            "ComponentProductID",
            "Quantity",
            "UnitOfMeasure",
            "BOMLevel",
            "StartDate",
            "EndDate",
            *_AUDIT,
        ),
        depends_on=("Products",),
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
