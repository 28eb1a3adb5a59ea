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
    assert "6 kept, 0 broken" in result.stdout


def test_a_broken_import_breaks_its_contract(tmp_path):
    """The engine reaching into a backend, and one backend importing another, are each caught."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copytree(REPO / "tinyedge_tasks", tmp_path / "tinyedge_tasks", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "tinyedge_tasks" / "engine" / "cache.py").open("a") as cache:
        cache.write("\nfrom ..backends.tflm import codegen  # a deliberate layering bug\n")
    other = tmp_path / "tinyedge_tasks" / "backends" / "other"
    other.mkdir()
    (other / "__init__.py").write_text("from ..tflm import calibrate  # a deliberate layering bug\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "The engine imports no ML, board, backend, stage or toolchain module BROKEN" in result.stdout
    assert "tinyedge_tasks.engine.cache -> tinyedge_tasks.backends.tflm.codegen" in result.stdout
    assert "Backends do not import each other BROKEN" in result.stdout
