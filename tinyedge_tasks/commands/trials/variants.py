"""Variants: manifest overrides -> a project folder of their own -> a real doit run -> one result row.

The variant folder holds its own tinyedge.yaml (the project's, without its sweep/tune sections, with the
overrides), a copy of boards/ and dodo.py, and links to everything else of the project (a data folder, a model
file), so relative paths in the manifest keep working. doit's state and lock are per folder, so variants run in
parallel; the artifacts go to the one store ($TINYEDGE_CACHE), where a stage two variants need at once is
computed by one and restored by the other (engine.cache.Store.computing).
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ...artifacts import Budget, Calibration
from ...engine.hashing import digest_file, digest_json
from ...errors import TinyedgeError

MANIFEST = "tinyedge.yaml"
EXPERIMENT_SECTIONS = ("sweep", "tune")  # a variant is one point: it does not sweep again
TARGET = "codegen"  # metrics (calibrate) and the board's verdict (codegen's budget); no network, no report
BUDGET_STAGES = ("check", "codegen")  # stopped here with "does not fit": the variant does not fit the board
OWN_FILES = {MANIFEST, "dodo.py", "boards", "cache"}


def parse_value(text: str) -> Any:
    """A command-line value as YAML reads it: 0.5 is a number, int8 a string, null None."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_assignments(items: list[str]) -> dict[str, list]:
    """['compression.prune.sparsity=0.25,0.5'] -> {'compression.prune.sparsity': [0.25, 0.5]}."""
    axes: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise TinyedgeError(f"-S {item!r}: expected key=value1,value2,... "
                                "(e.g. -S compression.prune.sparsity=0.25,0.5)")
        if key in axes:
            raise TinyedgeError(f"-S {key}: given twice; give all its values in one -S {key}=v1,v2")
        axes[key] = [parse_value(v.strip()) for v in values.split(",")]
    return axes


def grid(axes: dict[str, list]) -> list[dict]:
    """Every combination of the axes' values, first axis slowest."""
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def label(values: dict) -> str:
    """'sparsity=0.5 scheme=int8': the last part of each key, for progress lines and tables."""
    return " ".join(f"{key.rsplit('.', 1)[-1]}={json.dumps(value)}" for key, value in values.items()) or "(as is)"


def folder_name(values: dict) -> str:
    """A readable, filesystem-safe name that differs for different values."""
    readable = ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in values.items())
    readable = re.sub(r"[^A-Za-z0-9.,_=-]+", "_", readable)[:60]
    return f"{readable}-{digest_json(values)[:8]}"


def set_key(data: dict, key: str, value: Any) -> None:
    """Set a dotted key, creating sections on the way (a section that is off, `prune: null`, is turned on)."""
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    data[parts[-1]] = value


def variant_text(root: Path, values: dict) -> str:
    data = yaml.safe_load((root / MANIFEST).read_text()) or {}
    for section in EXPERIMENT_SECTIONS:
        data.pop(section, None)
    for key, value in values.items():
        set_key(data, key, value)
    return yaml.safe_dump(data, sort_keys=False)


def validate_values(root: Path, values: dict) -> None:
    """A bad key or value fails before anything runs, with the manifest's own message."""
    from ...config.manifest import validate
    try:
        validate(variant_text(root, values), root / MANIFEST)
    except TinyedgeError as exc:
        raise TinyedgeError(f"the variant {label(values)} is not a valid manifest:\n{exc}\n"
                            "fix the sweep/tune values (keys are dotted manifest keys, values as in the manifest)") \
            from None


def target(project) -> str:
    """What a variant builds: up to codegen (the board's verdict), or calibrate for a table without one."""
    return TARGET if TARGET in project.stage_by_name else "calibrate"


def write_variant(root: Path, folder: Path, values: dict, build_dir: str, store: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = variant_text(root, values)
    manifest = folder / MANIFEST
    if not manifest.exists() or manifest.read_text() != text:
        manifest.write_text(text)
    shutil.copy(root / "dodo.py", folder / "dodo.py")
    if (root / "boards").is_dir():
        shutil.copytree(root / "boards", folder / "boards", dirs_exist_ok=True)
    skip = OWN_FILES | {Path(build_dir).parts[0]}
    for entry in root.iterdir():
        link = folder / entry.name
        if (entry.name in skip or entry.name.startswith(".") or link.is_symlink() or link.exists()
                or entry.resolve() == store):
            continue
        link.symlink_to(entry.resolve())


@dataclass
class Outcome:
    """What one variant gave: its stages' fate, its metrics, its board verdict, or its error."""

    values: dict
    folder: Path
    status: str = "pending"             # ok, failed
    error: str = ""
    failed_stage: str = ""
    stages: dict = field(default_factory=dict)  # stage -> computed, restored, up to date, failed
    seconds: float = 0.0
    metrics: dict | None = None         # artifacts.Calibration's fields
    budget: dict | None = None          # artifacts.Budget's fields
    fits: bool | None = None
    crashed: bool = False               # a traceback (doit TaskError), not a TinyedgeError message
    interrupted: bool = False           # Ctrl-C: no verdict on the variant

    @property
    def label(self) -> str:
        return label(self.values)

    def computed(self) -> list[str]:
        return [name for name, how in self.stages.items() if how == "computed"]

    def restored(self) -> list[str]:
        return [name for name, how in self.stages.items() if how == "restored"]


FAILURE = re.compile(r"^(?:TaskFailed|TaskError) - taskid:(\S+)\n(.*?)(?=^#{10,}|\Z)", re.M | re.S)


def run_doit(outcome: Outcome, targets: list[str], store: Path, build_dir: str,
             progress: Callable[[str], None] = lambda line: None) -> bool:
    """Run `python -m doit targets` in the variant's folder; fold what happened into `outcome`. A failing
    variant is an outcome with its error (doit's TaskFailed message), never an exception."""
    env = {**os.environ, "TINYEDGE_CACHE": str(store)}
    log = outcome.folder / "doit.log"
    started = time.perf_counter()
    current, lines = None, []
    with open(log, "w") as errors:
        process = subprocess.Popen([sys.executable, "-m", "doit", *targets], cwd=outcome.folder, env=env,
                                   stdout=subprocess.PIPE, stderr=errors, text=True, bufsize=1)
        for line in process.stdout:
            lines.append(line)
            if line.startswith(".  "):
                current = line[3:].strip()
                outcome.stages.setdefault(current, "ran")
            elif line.startswith("-- "):
                outcome.stages.setdefault(line[3:].strip(), "up to date")
            elif current and line.startswith("  restored from cache"):
                outcome.stages[current] = "restored"
                progress(f"{current} restored")
            elif current and line.startswith("  done in"):
                outcome.stages[current] = "computed"
                progress(f"{current} computed ({line.split()[2]} s)")
        code = process.wait()
    outcome.seconds += time.perf_counter() - started
    if code == 0:
        return True
    text = "".join(lines) + log.read_text(errors="replace")  # doit reports a failed task on stdout
    log.write_text(text)
    if code in (130, -signal.SIGINT):
        outcome.status, outcome.error, outcome.interrupted = "failed", "interrupted (Ctrl-C)", True
        return False
    found = FAILURE.search(text)
    if found:
        outcome.failed_stage, message = found.group(1), found.group(2).strip()
        outcome.crashed = found.group(0).startswith("TaskError")
        outcome.stages[outcome.failed_stage] = "failed"
    else:
        message = "\n".join(line for line in text.splitlines()[-5:] if line.strip()) or f"doit exited with {code}"
    outcome.status, outcome.error = "failed", message
    if outcome.failed_stage in BUDGET_STAGES and "does not fit" in message:
        outcome.fits = False
    return False


def finish(outcome: Outcome, build_dir: str) -> None:
    """Read the metrics and budget a successful run left in the variant's build folder."""
    build = outcome.folder / build_dir
    if outcome.stages.get("calibrate") in ("computed", "restored", "up to date"):
        outcome.metrics = Calibration.from_json((build / Calibration.ARTIFACT).read_text()).plain()
    if outcome.stages.get("codegen") in ("computed", "restored", "up to date"):
        outcome.budget = Budget.from_json((build / Budget.ARTIFACT).read_text()).plain()
        outcome.fits = True
    if outcome.status == "pending":
        outcome.status = "ok"


def record(store: Path, kind: str, name: str, outcome: Outcome, build_dir: str, extra: dict | None = None) -> None:
    """Note in the store which manifest values gave which configuration: `doit experiments` names them."""
    calibration = outcome.folder / build_dir / Calibration.ARTIFACT
    entry = {"kind": kind, "name": name, "values": outcome.values, "status": outcome.status,
             "error": outcome.error, "failed_stage": outcome.failed_stage, "fits": outcome.fits,
             "calibration": digest_file(calibration) if outcome.metrics is not None else None, **(extra or {})}
    path = store / "experiments" / kind / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as handle:
        json.dump(entry, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def recorded(store: Path) -> list[dict]:
    """Every sweep variant and tune trial noted in the store."""
    return [json.loads(p.read_text()) for p in sorted((store / "experiments").glob("*/*.json"))]
