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
    tree = ast.parse(path.read_text(), str(path))
    for block in ast.walk(tree):
        # Names imported for type checkers only are not imports at run time.
        if isinstance(block, ast.If) and ast.unparse(block.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from legacy_sync.monitor import queries` imports the submodule, not only the package.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {imported for imported in imported_modules(path) if imported in modules and imported != name}
        for name, path in modules.items()
    }


def test_the_runtime_package_imports_no_dev_tool() -> None:
    offenders = {
        f"{module_name(path)} imports {imported}"
        for path in PACKAGE.rglob("*.py")
        for imported in imported_modules(path)
        if imported.split(".")[0] in DEV_MODULES
    }
    assert not offenders, sorted(offenders)


def test_the_runtime_package_has_no_import_cycle() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # A package's __init__ re-exporting its submodules is not a cycle of ours.
    cycles = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not cycles, [" -> ".join(cycle) for cycle in cycles]


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


def test_the_4d_client_speaks_of_4d_only() -> None:
    """Airflow's names (connection, pool) are the Airflow layer's advice, not the 4D client's."""
    said = []
    for path in (PACKAGE / "fourd").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        said += [
            f"{path.name}: {node.value[:60]!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and any(word in node.value.lower() for word in ("airflow", "legacy_4d", " pool"))
        ]
    assert not said, said


def test_the_airflow_layer_adds_airflow_advice_to_4d_errors() -> None:
    from legacy_sync.contracts import FOURD_CONN_ID, POOL
    from legacy_sync.fourd import FourDError, LicenceExhaustedError
    from legacy_sync.fourd.errors import LoginRefusedError
    from legacy_sync.pipeline import extract_failure_message

    assert f"`{POOL}` pool" in extract_failure_message("Products", LicenceExhaustedError("402"))
    assert f"`{FOURD_CONN_ID}` connection" in extract_failure_message("Products", LoginRefusedError("no"))
    assert "Airflow" not in extract_failure_message("Products", FourDError("HTTP 500"))
