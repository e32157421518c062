"""The runtime package stands alone: the wheel carries ``legacy_sync`` only, and ``legacy_sync``
imports neither the dev tools nor the simulator, nor itself in a circle (issue 17)."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "legacy_sync"
# Top-level modules of this repository that are development or operations tools, not the product.
DEV_MODULES = {"devtools", "legacy4d_simulator", "simulator", "deploy", "bench", "reliability", "tests"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function (lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from legacy_sync.monitor import queries` imports the submodule, not only the package.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_runtime_package_imports_no_dev_tool() -> None:
    offenders = {
        f"{module_name(path)} imports {imported}"
        for path in PACKAGE.rglob("*.py")
        for imported in imported_modules(path)
        if imported.split(".")[0] in DEV_MODULES
    }
    assert not offenders, sorted(offenders)


def test_the_wheel_carries_only_the_runtime_package(tmp_path: Path) -> None:
    builders = pytest.importorskip("hatchling.builders.wheel")
    (wheel,) = builders.WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not n.startswith(("legacy_sync/", "legacy_erp_sync-"))]
    assert not outside, outside
    assert "legacy_sync/dag_factory.py" in names
    assert "legacy_sync/sql/schema.sql" in names
    dev_tools = [n for n in names if Path(n).stem in {"local_run", "local_postgres", "demo"}]
    assert not dev_tools, dev_tools
