"""The table registry is the one declaration of each table: everything else agrees with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from legacy4d_simulator.schema import TABLES as SIMULATED
from legacy_sync.registry import (
    GENERATED_DBT_MACRO,
    TABLES,
    LegacyTable,
    dbt_registry_macro,
    dependents,
    get_table,
    select_tables,
)

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"


def test_the_generated_dbt_registry_is_up_to_date() -> None:
    current = (DBT_PROJECT / GENERATED_DBT_MACRO).read_text()
    assert current == dbt_registry_macro(), (
        "dbt_project/macros/generated/legacy_registry.sql is stale: run `python -m legacy_sync.registry`"
    )


def test_names_selection_and_dependencies() -> None:
    assert [t.snake_name for t in TABLES] == [
        "products",
        "customers",
        "orders",
        "order_lines",
        "invoices",
        "inventory",
        "bill_of_materials",
    ]
    assert [t.name for t in select_tables(["Orders", "Products"])] == ["Products", "Orders"]
    assert len(select_tables(None)) == len(TABLES)
    with pytest.raises(KeyError, match=r"unknown legacy table 'Prodcts'.*Products"):
        get_table("Prodcts")
    assert dependents("Customers") == ["Orders", "OrderLines", "Invoices"]
    assert get_table("OrderLines").parents == ("Orders", "Products")


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_the_simulator_serves_every_registry_field(table: LegacyTable) -> None:
    schema = next(s for s in SIMULATED if s.name == table.name)
    assert schema.key == table.key
    served = {f.name for f in schema.fields}
    assert set(table.attributes) <= served


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_dbt_docs_list_the_registry_columns(table: LegacyTable) -> None:
    models = {
        m["name"]: m
        for folder in ("staging", "erp")
        for m in yaml.safe_load((DBT_PROJECT / "models" / folder / f"_{folder}__models.yml").read_text())[
            "models"
        ]
    }
    staged = [c["name"] for c in models[f"stg_legacy_4d__{table.snake_name}"]["columns"]]
    assert [f.column for f in table.fields] == [c for c in staged if c in {f.column for f in table.fields}]
    documented = {c["name"] for c in models[table.snake_name]["columns"]}
    assert {c.name for c in table.erp_columns} <= documented
