"""The erp tests the pipeline skips (``tag:constraint_backed``) are exactly those a constraint of
the erp DDL (``macros/erp/create_erp_tables.sql``) enforces on every commit."""

from __future__ import annotations

from typing import Any

import yaml

from legacy_sync.dbt_build import BUILD_EXCLUDE, dbt_project_dir
from legacy_sync.registry import TABLES

AUDIT_NOT_NULL = {"created_run_id", "updated_run_id", "row_hash", "synced_at", "is_deleted"}
DDL = (dbt_project_dir() / "macros" / "erp" / "create_erp_tables.sql").read_text()


def enforced() -> set[tuple[str, str, str]]:
    """(model, column, test) that the DDL guarantees: primary key id, unique legacy_id, NOT NULL
    columns, a business key unique among live rows (``unique`` where ``not is_deleted``)."""
    found: set[tuple[str, str, str]] = set()
    tables: list[tuple[str, set[str], str | None]] = [("categories", {"name"}, "name")]
    for table in TABLES:
        required = {c.name for c in table.erp_columns if "not null" in c.sql_type}
        tables.append((table.snake_name, required, table.business_key))
    for model, required, business_key in tables:
        found |= {(model, "id", "unique"), (model, "legacy_id", "unique")}
        found |= {(model, column, "not_null") for column in {"id", "legacy_id"} | AUDIT_NOT_NULL | required}
        if business_key:
            found.add((model, business_key, "unique where not is_deleted"))
    return found


def tagged_tests() -> list[tuple[str, str, str]]:
    models = yaml.safe_load((dbt_project_dir() / "models" / "erp" / "_erp__models.yml").read_text())["models"]
    found = []
    for model in models:
        for column in model.get("columns", []):
            for test in column.get("data_tests", []):
                if not isinstance(test, dict):
                    continue
                (name, spec), *_ = test.items()
                config: dict[str, Any] = (spec or {}).get("config", {})
                if "constraint_backed" in config.get("tags", []):
                    where = f" where {config['where']}" if config.get("where") else ""
                    found.append((model["name"], column["name"], name + where))
    return found


def test_only_tests_a_constraint_guarantees_are_tagged() -> None:
    tagged = tagged_tests()
    assert tagged, "no erp test is tagged constraint_backed"
    assert not [t for t in tagged if t not in enforced()]


def test_the_ddl_holds_the_constraints_the_tags_rely_on() -> None:
    assert "id bigint primary key" in DDL
    assert "unique (legacy_id)" in DDL
    assert "legacy_id text not null" in DDL
    assert "exclude using btree ({{ column }} with =) where (not is_deleted)" in DDL
    for column in AUDIT_NOT_NULL:
        assert f"('{column}', '" in DDL and "not null" in DDL.split(f"('{column}', '", 1)[1].split("')", 1)[0]


def test_the_pipeline_skips_them() -> None:
    assert "tag:constraint_backed" in BUILD_EXCLUDE
