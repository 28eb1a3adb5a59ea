"""The engine: stage rows, and the one loop that turns a table of them into cached doit tasks.

A stage is a row: the manifest keys it reads, the artifacts it needs, the files it makes, the tools whose
versions matter, a module with `run(ctx)`, and optionally a function `sources(manifest)` listing the project files
it reads, such as images. The table itself is made outside the engine (tinyedge_tasks.plugin: the common
rows plus those of the project's firmware backend); the engine knows no model, board or backend. Stage modules
are imported only to run, or (with `sources`) to make tasks: a no-op `doit` imports no NumPy, TensorFlow or
matplotlib.
"""
from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from .._version import __version__
from ..errors import TinyedgeError
from ..rows import Command, Stage
from .cache import Store, place_outputs
from .codedigest import code_digest
from .hashing import STAT_CACHE, XXH3Checker, digest_json

STATE_DIR = "cache"  # doit's state, the lock and the stat cache: always the project's own folder


def _function(reference: str):
    """'package.module:function' -> the function."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=None)
def _installed() -> dict[str, str]:
    """Distribution name -> version, from the names of the `.dist-info` folders on sys.path: one directory
    listing each, where importlib.metadata.version() reads and parses metadata files (20 ms for a stage table)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = [e.name for e in os.scandir(entry or ".") if e.name.endswith(".dist-info")]
        except OSError:
            continue
        for name in names:
            distribution, _, version = name[:-len(".dist-info")].rpartition("-")
            found.setdefault(distribution.lower().replace("_", "-").replace(".", "-"), version)
    return found


@lru_cache(maxsize=None)
def tool_version(distribution: str) -> str:
    listed = _installed().get(distribution.lower().replace("_", "-").replace(".", "-"))
    if listed:
        return listed
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@dataclass
class StageContext:
    """What a stage's run() gets: its config slice, its input files, and a staging folder for its outputs."""

    stage: Stage
    config: Any                  # the ConfigSlice of the keys the row declared
    inputs: dict[str, Path]      # "stage/file" -> path of the artifact in the build folder
    sources: list[Path]          # project files the stage reads (images, a model file, a board file)
    out: Path                    # write outputs here; they are moved into place only if run() succeeds
    root: Path                   # the project folder
    state: Path                  # the project's state folder, for workspaces kept between runs (not outputs)

    def log(self, message: str) -> None:
        print(f"  {message}", flush=True)

    def read(self, record_type, optional: bool = False):
        """A typed record (tinyedge_tasks.artifacts) from the input artifact its class names; with `optional`,
        None when the artifact is not among the inputs (its stage is off or has not run)."""
        path = self.inputs.get(record_type.ARTIFACT) if optional else self.inputs[record_type.ARTIFACT]
        return record_type.from_json(path.read_text()) if path else None

    def write(self, record) -> None:
        (self.out / record.file_name()).write_text(record.to_json())


class Project:
    """One manifest, its build and cache folders, its stage table, and the doit task of each stage.

    `manifest` is any object with .root, .get(key) and .slice(keys, stage) (tinyedge_tasks.config)."""

    def __init__(self, manifest, stages: tuple[Stage, ...], commands: tuple["Command", ...] = ()):
        self.manifest = manifest
        self.stages = stages
        self.commands = commands
        self.stage_by_name = {stage.name: stage for stage in stages}
        made = {f"{s.name}/{f}" for s in stages for f in (*s.makes, *s.passthrough)}
        for stage in stages:
            missing = [need for need in stage.needs if need not in made]
            if missing:
                raise TinyedgeError(f"stage {stage.name} needs {', '.join(missing)}, which no stage of this "
                                    "project's table makes (a bug in the firmware backend's rows)")
        self.root = self.manifest.root
        self.build = self.root / self.manifest.get("project.build_dir")
        self.state = self.root / STATE_DIR
        store_dir = os.environ.get("TINYEDGE_CACHE") or self.manifest.get("project.cache_dir") or STATE_DIR
        self.store = Store(self.root / store_dir)
        STAT_CACHE.db_path = self.state / "digests.sqlite3"

    def relative(self, path: Path) -> str:
        """Paths inside the project are kept relative, so a copied or moved project stays up to date."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def enabled(self, stage: Stage) -> bool:
        return stage.enabled_by is None or self.manifest.get(stage.enabled_by) is not None

    def artifact(self, name: str) -> Path:
        """Path of an artifact 'stage/file' (or 'command/file'), following the passthrough of a stage that is off."""
        stage_name, file_name = name.split("/", 1)
        stage = self.stage_by_name.get(stage_name)
        if stage is not None and not self.enabled(stage) and file_name in stage.passthrough:
            return self.artifact(stage.passthrough[file_name])
        return self.build / stage_name / file_name

    def optional_inputs(self, stage: Stage) -> tuple[list[str], list[str]]:
        """(file_deps, present): optional artifacts a default stage makes in this run are file_deps; those of a
        stage outside the default run (a build that needs the network) count only when they exist, so
        reading them never forces that stage to run; so do a command's (validate/validate.json). Artifacts of a
        stage that is off or absent are left out."""
        made, present = [], []
        commands = {command.name for command in self.commands}
        for name in stage.optional:
            owner_name, file_name = name.split("/", 1)
            owner = self.stage_by_name.get(owner_name)
            if owner is None and owner_name in commands and self.artifact(name).is_file():
                present.append(name)
                continue
            if owner is None or not self.enabled(owner):
                continue
            if owner.default and file_name in owner.makes:
                made.append(name)
            elif self.artifact(name).is_file():
                present.append(name)
        return made, present

    def sources(self, stage: Stage) -> list[Path]:
        return sorted(_function(stage.sources)(self.manifest)) if stage.sources else []

    def dependencies(self, stage: Stage) -> list[Path]:
        """doit's file_dep for the stage's project files: what `watch` names (a folder is one dependency, checked
        by a stat-only scan, see hashing.XXH3Checker), else the sources themselves."""
        return sorted(_function(stage.watch)(self.manifest)) if stage.watch else self.sources(stage)

    def fingerprint(self, stage: Stage) -> dict:
        """Everything but the input files that decides a stage's outputs."""
        return {
            "stage": stage.name,
            "tinyedge": __version__,
            "python": platform.python_version(),
            "code": code_digest(stage.module, stage.templates, stage.hooks),
            "tools": {tool: tool_version(tool) for tool in stage.tools},
            "config": self.manifest.slice(stage.reads, stage.name).values,
        }

    def task(self, stage: Stage) -> dict:
        if not self.enabled(stage):
            return {"basename": stage.name, "doc": f"{stage.doc} (off: no {stage.enabled_by})", "actions": []}
        sources = self.dependencies(stage)
        made, present = self.optional_inputs(stage)
        fingerprint = self.fingerprint(stage)
        if present:
            fingerprint["optional"] = {n: STAT_CACHE.digest(self.artifact(n)) for n in present}
        return {
            "basename": stage.name,
            "doc": stage.doc,
            "actions": [(execute, [self, stage])],
            "file_dep": [self.relative(self.artifact(n)) for n in stage.needs + tuple(made)]
                        + [self.relative(p) for p in sources],
            "targets": [self.relative(self.build / stage.name / f) for f in stage.makes],
            "setup": list(stage.setup),
            "uptodate": [config_changed(digest_json(fingerprint))],
            "clean": True,
            "verbosity": 2,
        }

    def command_task(self, command: Command) -> dict:
        return {
            "basename": command.name,
            "doc": command.doc,
            "actions": [(run_command, [self, command])],
            "file_dep": [self.relative(self.artifact(n)) for n in command.needs],
            "uptodate": [False],
            "params": list(command.params),
            "pos_arg": "args" if command.pos_arg else None,
            "verbosity": 2,
        }


_LOCK_HANDLE = None
RUN_ENV = "TINYEDGE_DOIT_RUN"  # pid of the doit process that loaded dodo.py; its `doit -n` workers inherit it


def _take_project_lock(state: Path) -> None:
    """One building doit run per project: a second run stops with a message instead of racing the first.

    The lock file names the run, so the worker processes of one `doit -n N` run share the lock."""
    global _LOCK_HANDLE
    if _LOCK_HANDLE is not None:
        return
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / "build.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        if holder == os.environ.get(RUN_ENV):
            return
        raise TinyedgeError(
            f"another doit run (pid {holder}) is building this project (lock {state / 'build.lock'}); "
            "wait for it to finish and run doit again") from None
    handle.seek(0)
    handle.truncate()
    handle.write(os.environ.get(RUN_ENV, str(os.getpid())))
    handle.flush()
    _LOCK_HANDLE = handle


def execute(project: Project, stage: Stage):
    """doit action: restore the stage's outputs from the cache, or run it and store them."""
    staging = None
    try:
        _take_project_lock(project.state)
        fingerprint = project.fingerprint(stage)
        made, present = project.optional_inputs(stage)
        inputs = {name: project.artifact(name) for name in (*stage.needs, *made, *present)}
        sources = project.sources(stage)
        digests = {name: STAT_CACHE.digest(p) for name, p in inputs.items()}
        for done, path in enumerate(sources, 1):
            digests[project.relative(path)] = STAT_CACHE.digest(path)
            if len(sources) >= 1000 and done % (len(sources) // 10) == 0:
                print(f"  hashed {done}/{len(sources)} input files", flush=True)
        key = digest_json({"fingerprint": fingerprint, "inputs": digests})
        (project.build / ".tmp").mkdir(parents=True, exist_ok=True)
        for stale in (project.build / ".tmp").glob(f"{stage.name}-*"):  # left by a run that was killed
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{stage.name}-", dir=project.build / ".tmp"))
        destination = project.build / stage.name

        if _restored(project, key, staging, destination):
            return None
        with project.store.computing(key, lambda: print(f"  waiting: another run is computing the same {stage.name} "
                                                        f"(key {key[:12]})", flush=True)):
            if _restored(project, key, staging, destination):  # stored while this run waited
                return None
            _compute(project, stage, key, fingerprint, inputs, sources, digests, staging, destination)
        return None
    except TinyedgeError as exc:
        return TaskFailed(str(exc))
    except KeyboardInterrupt:  # doit would print the traceback; outputs are placed only after a finished run
        print(f"interrupted during {stage.name}; the last good artifacts are kept", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _restored(project: Project, key: str, staging: Path, destination: Path) -> bool:
    """Place the cached outputs of `key`, when the store has them whole."""
    record = project.store.lookup(key)
    started = time.perf_counter()
    if not (record and project.store.restore(key, record, staging)):
        return False
    place_outputs(staging, destination)
    print(f"  restored from cache in {time.perf_counter() - started:.3f} s "
          f"(computed in {record.get('seconds', 0):.1f} s; key {key[:12]})", flush=True)
    return True


def _compute(project: Project, stage: Stage, key: str, fingerprint: dict, inputs: dict, sources: list,
             digests: dict, staging: Path, destination: Path) -> None:
    """Run the stage into `staging`, store what it made under `key`, then place it."""
    started = time.perf_counter()
    staging.mkdir(parents=True, exist_ok=True)
    context = StageContext(stage, project.manifest.slice(stage.reads, stage.name), inputs, sources,
                           staging, project.root, project.state)
    importlib.import_module(stage.module).run(context)
    seconds = time.perf_counter() - started
    missing = [f for f in stage.makes if not (staging / f).is_file()]
    if missing:
        raise TinyedgeError(f"stage {stage.name} did not write {', '.join(missing)} (a bug in tinyedge)")
    project.store.save(key, {**fingerprint, "inputs": digests, "seconds": seconds}, staging)
    place_outputs(staging, destination)
    print(f"  done in {seconds:.1f} s, stored in cache (key {key[:12]})", flush=True)


def run_command(project: Project, command: Command, task):
    """doit action of a Command: its errors are messages, not tracebacks."""
    try:
        importlib.import_module(command.module).run(project, task.options or {}, task.pos_arg_val or [])
        return None
    except TinyedgeError as exc:
        return TaskFailed(str(exc))
    except KeyboardInterrupt:  # what the command finished stays (a study keeps its finished trials)
        print(f"interrupted during {command.name}; what it finished is kept, run it again to go on",
              file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def doit_config(default_tasks: list[str]) -> dict:
    return {
        "dep_file": f"{STATE_DIR}/doit-state.sqlite3",
        "backend": "sqlite3",
        "check_file_uptodate": XXH3Checker,
        "default_tasks": default_tasks,
        "verbosity": 2,
    }
