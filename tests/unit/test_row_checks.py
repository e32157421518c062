"""The per-row checks of each model the pipeline builds are one ``row_checks`` test (one dbt node
per model: dbt costs ~0.1-0.2 s per node whatever the rows), and each check names a documented
column of its model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from legacy_sync.dbt_build import dbt_project_dir

KINDS = {"not_null", "unique", "not_negative", "accepted_values", "relationships", "expression"}
FILES = sorted((dbt_project_dir() / "models").glob("*/_*__models.yml"))


def models() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, model) for path in FILES for model in yaml.safe_load(path.read_text())["models"]]


def test_the_model_files_are_found() -> None:
    assert {p.parent.name for p in FILES} == {"staging", "intermediate", "erp", "sync"}


def test_column_tests_are_only_those_the_pipeline_skips() -> None:
    """A new per-row check goes into its model's row_checks, not into a node of its own."""
    loose = []
    for path, model in models():
        for column in model.get("columns", []):
            for test in column.get("data_tests", []):
                spec = next(iter(test.values())) if isinstance(test, dict) else None
                if "constraint_backed" not in ((spec or {}).get("config", {}).get("tags", [])):
                    loose.append(f"{path.name}: {model['name']}.{column['name']} {test}")
    assert not loose


def test_each_check_is_known_and_names_a_documented_column() -> None:
    erp_models = {m["name"] for p, m in models() if p.parent.name == "erp"}
    problems = []
    for _, model in models():
        folds = [t["row_checks"] for t in model.get("data_tests", []) if "row_checks" in t]
        assert len(folds) <= 1, model["name"]
        columns = {c["name"] for c in model.get("columns", [])}
        for fold in folds:
            assert fold["name"] == f"row_checks_{model['name']}"
            arguments = fold["arguments"]
            if arguments.get("key", "legacy_id") not in columns:
                problems.append(f"{model['name']}: key {arguments.get('key')}")
            for check in arguments["checks"]:
                kind = check["check"]
                if kind not in KINDS or (kind != "expression" and check.get("column") not in columns):
                    problems.append(f"{model['name']}: {check}")
                if kind == "relationships" and check["to"] not in erp_models:
                    problems.append(f"{model['name']}: {check}")
    assert not problems
