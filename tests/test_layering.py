"""The layering rules of pyproject.toml's [tool.importlinter] contracts, checked by import-linter itself."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package in `folder` (its pyproject.toml holds the contracts)."""
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
                          cwd=folder, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(folder)})


def test_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 kept, 0 broken" in result.stdout


def test_a_broken_import_breaks_its_contract(tmp_path):
    """The engine reaching into a backend, and one backend importing another, are each caught."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copytree(REPO / "tinyedge_tasks", tmp_path / "tinyedge_tasks", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "tinyedge_tasks" / "engine" / "cache.py").open("a") as cache:
        cache.write("\nfrom ..backends.tflm import codegen  # a deliberate layering bug\n")
    other = tmp_path / "tinyedge_tasks" / "backends" / "other"
    other.mkdir()
    (other / "__init__.py").write_text("from ..tflm import evaluate  # a deliberate layering bug\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "The engine imports no ML, board, backend, stage or toolchain module BROKEN" in result.stdout
    assert "tinyedge_tasks.engine.cache -> tinyedge_tasks.backends.tflm.codegen" in result.stdout
    assert "Backends do not import each other BROKEN" in result.stdout
    assert "Floors, top to bottom" in result.stdout and "named) BROKEN" in result.stdout


def test_every_top_level_package_is_on_a_floor():
    """A new top-level module or package must be given its floor in the layers contract."""
    import tomllib
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [layers] = [c["layers"] for c in contracts if c["type"] == "layers"]
    named = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    package = REPO / "tinyedge_tasks"
    present = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    present |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert present == named, f"not on a floor: {sorted(present - named)}; gone: {sorted(named - present)}"


def test_no_import_loop_between_modules():
    """Walk the import graph of tinyedge_tasks (lazy imports inside functions too): no module reaches itself."""
    import grimp
    graph = grimp.build_graph("tinyedge_tasks")
    loops = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.find_shortest_chain(importer=imported, imported=module):
                loops.add(tuple(sorted((module, imported))))
    assert not loops, f"import loops: {sorted(loops)}"
