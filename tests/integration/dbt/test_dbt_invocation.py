"""How the pipeline runs dbt (``dbt_build.invoke_dbt`` with a results file), on a one-model
project against the test PostgreSQL: dbt writes none of its JSON artifacts (its manifest of every
node, macro and doc was a tenth of an hourly run) but the run's results, and what each node did
survives an on-run-end hook that raises after the nodes ran -- a merge that ran is counted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from legacy_sync.dbt_build import DbtInvocation, dbt_project_dir, invoke_dbt
from legacy_sync.erp_db import dbt_env

pytestmark = pytest.mark.integration


def build(url: str, tmp_path: Path, on_run_end: str) -> tuple[DbtInvocation, Path]:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "one.sql").write_text("select 1 as id\n")
    (project / "dbt_project.yml").write_text(
        "name: probe\nversion: '1.0'\nconfig-version: 2\nprofile: legacy_erp_sync\n"
        f'on-run-end:\n  - "{on_run_end}"\n'
    )
    shutil.copy(dbt_project_dir() / "profiles.yml", project)
    target = tmp_path / "target"
    args = [
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target),
    ]
    return invoke_dbt(args, dbt_env(url), target / "run_results.json"), target


def test_a_build_writes_its_results_and_no_manifest(erp_db_url: str, tmp_path: Path) -> None:
    outcome, target = build(erp_db_url, tmp_path, "select 1")
    assert outcome.success, outcome.lines
    assert outcome.run_results is not None
    results = outcome.run_results["results"]
    assert {(r["unique_id"], r["status"]) for r in results} == {
        ("model.probe.one", "success"),
        ("operation.probe.probe-on-run-end-0", "success"),
    }
    assert (target / "run_results.json").exists()
    assert not (target / "manifest.json").exists()
    assert outcome.manifest["nodes"]["model.probe.one"]["name"] == "one"


def test_what_ran_is_kept_when_an_on_run_end_hook_raises(erp_db_url: str, tmp_path: Path) -> None:
    outcome, _ = build(erp_db_url, tmp_path, "{{ run_query('select 1 / 0') }}")
    assert not outcome.success
    assert "division by zero" in repr(outcome.exception)
    assert outcome.run_results is not None
    results = outcome.run_results["results"]
    assert [(r["unique_id"], r["status"]) for r in results] == [("model.probe.one", "success")]
