"""The stage table of every backend is consistent, code digests follow imports, and a backend is a registry entry."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, doit, make_project
from tinyedge_tasks import backends, commands, table
from tinyedge_tasks.config.manifest import Manifest, section_type


def _schema_has(key: str) -> bool:
    *parents, last = key.split(".")
    model = section_type(".".join(parents)) if parents else Manifest
    return model is not None and last in model.model_fields


@pytest.mark.parametrize("name", backends.builtin())
def test_every_backend_table_is_consistent(name):
    """Names unique; every input made by an earlier row (or its passthrough); every key read is in the schema."""
    backend = backends.load(type("M", (), {"get": lambda self, key: name})())
    rows = table.stages(backend)
    names = [row.name for row in rows]
    assert len(names) == len(set(names)), names
    made: set[str] = set()
    for row in rows:
        for need in row.needs:
            assert need in made, f"{name}: {row.name} needs {need}, which no earlier row makes"
        for key in row.reads:
            assert _schema_has(key), f"{name}: {row.name} reads {key}, which the manifest schema does not have"
        assert row.module and Path(REPO, *row.module.split(".")).with_suffix(".py").is_file(), row.module
        made |= {f"{row.name}/{f}" for f in row.makes} | {f"{row.name}/{f}" for f in row.passthrough}
    optional_owners = {opt.split("/")[0] for row in rows for opt in row.optional}
    assert optional_owners <= set(names) | {command.name for command in commands.COMMANDS}   # validate/validate.json
    for command in commands.COMMANDS:
        assert set(command.needs) <= made, command.name
    check, quantize = (next(row for row in rows if row.name == stage) for stage in ("check", "quantize"))
    assert set(quantize.tools) <= set(check.tools), "the preflight quantizes as quantize does: its tool versions too"


DIGEST = ("import sys; from tinyedge_tasks.engine.codedigest import code_digest; "
          "print(*(code_digest(m) for m in sys.argv[1:]))")


def _digests(package_parent: Path, *modules: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", DIGEST, *modules], cwd=package_parent, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(package_parent)}, check=True)
    return result.stdout.split()


def test_code_digest_follows_imports_and_ignores_other_backends(tmp_path):
    """An edit to a module a stage imports, even through another module (calibrate -> tflite.runtime ->
    preprocess), changes that stage's key; an edit to another backend's folder or to an unrelated stage does not."""
    shutil.copytree(REPO / "tinyedge_tasks", tmp_path / "tinyedge_tasks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    package = tmp_path / "tinyedge_tasks"
    (package / "backends" / "other").mkdir()
    (package / "backends" / "other" / "__init__.py").write_text("BACKEND = None\n")
    stages = ("tinyedge_tasks.backends.tflm.evaluate", "tinyedge_tasks.stages.dataset",
              "tinyedge_tasks.stages.train")
    before = _digests(tmp_path, *stages)

    with (package / "backends" / "other" / "__init__.py").open("a") as other:
        other.write("# another backend's edit\n")
    with (package / "stages" / "prune.py").open("a") as prune:
        prune.write("# an edit to a stage nobody imports\n")
    assert _digests(tmp_path, *stages) == before

    with (package / "preprocess" / "__init__.py").open("a") as preprocess:
        preprocess.write("# an edit to the input table's module\n")
    calibrate, dataset, train = _digests(tmp_path, *stages)
    assert calibrate != before[0]   # through tflite.runtime, which imports preprocess
    assert dataset != before[1]     # dataset imports preprocess lazily, inside a function: code all the same
    assert train != before[2]       # train -> ml.summary -> tflite.convert -> tflite.runtime -> preprocess


def test_closure_of_calibrate_lists_what_it_runs():
    from tinyedge_tasks.engine.codedigest import closure
    files = {p.relative_to(REPO / "tinyedge_tasks").as_posix()
             for p in closure("tinyedge_tasks.backends.tflm.evaluate")}
    assert {"backends/tflm/evaluate.py", "backends/tflm/__init__.py", "backends/__init__.py", "tflite/runtime.py",
            "preprocess/__init__.py", "artifacts.py"} <= files
    assert "__init__.py" not in files and not any(f.startswith(("engine/", "stages/")) for f in files)


TOY = '''
from tinyedge_tasks.backends import Backend
from tinyedge_tasks.rows import Stage
from tinyedge_tasks.table import QUANTIZE_TFLITE

BACKEND = Backend("toy", "a backend of another package", board_sections=("platformio",), stages=(
    QUANTIZE_TFLITE,
    Stage("toy", "The toy backend's one row.", module="toy_backend", needs=("quantize/model.tflite",),
          makes=("toy.txt",)),
))
'''


def test_a_backend_from_another_package_shows_up_in_doit_list(tmp_path):
    """A third-party backend is a module with a BACKEND and an entry point in the group tinyedge.backends."""
    site = tmp_path / "site"
    (site / "toy_backend-0.1.dist-info").mkdir(parents=True)
    (site / "toy_backend.py").write_text(TOY)
    (site / "toy_backend-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\n"
                                                                  "Version: 0.1\n")
    (site / "toy_backend-0.1.dist-info" / "entry_points.txt").write_text(
        "[tinyedge.backends]\ntoy = toy_backend:BACKEND\n")
    project = make_project(tmp_path / "project", {"firmware": {"backend": "toy"}})
    listing = doit(project, "list", env={"PYTHONPATH": str(site)}).stdout
    assert "toy " in listing and "The toy backend's one row." in listing
    assert "codegen" not in listing  # the table is the toy backend's, not TFLM's

    unknown = doit(project, "list", check=False)  # the entry point is not on the path here
    assert unknown.returncode == 2
    known = ", ".join(backends.builtin())
    assert f"firmware.backend: unknown backend 'toy'; known backends: {known}" in unknown.stderr and "tflm" in known
    assert "tinyedge.yaml:" in unknown.stderr  # file:line like every manifest error


def test_board_without_the_backends_section_is_a_clear_error(project_copy):
    board = project_copy / "boards" / "esp32cam.yaml"
    text = board.read_text()
    board.write_text(text[:text.index("esp_idf:")] + text[text.index("micropython:"):])
    result = doit(project_copy, "codegen", check=False)
    assert result.returncode != 0
    assert ("boards/esp32cam.yaml: firmware.backend tflm builds with 'esp_idf:', and this board file has no "
            "such section") in result.stdout + result.stderr
    assert json.loads((project_copy / "build/codegen/project.json").read_text())["toolchain"] == "platformio"
