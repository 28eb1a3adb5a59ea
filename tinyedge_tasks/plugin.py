"""tinyedge's doit glue: the project's manifest -> its firmware backend -> the stage table -> doit tasks.

The one place that knows the engine, the manifest and the backends together.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import backends, commands, table
from .config import manifest_loader
from .engine.pipeline import RUN_ENV, STATE_DIR, Project, doit_config
from .rows import Command, Stage
from .errors import TinyedgeError


def load_project(root: Path) -> Project:
    """The project whose tinyedge.yaml is in `root`, with the stage table of its backend."""
    manifest = manifest_loader.load(root / manifest_loader.MANIFEST_NAME, memo_dir=root / STATE_DIR)
    stages = table.stages(backends.load(manifest))
    names = {stage.name for stage in stages}
    usable = tuple(c for c in commands.COMMANDS if all(need.split("/")[0] in names for need in c.needs))
    return Project(manifest, stages, usable)


def _fail(exc: TinyedgeError):
    print(f"tinyedge: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


def _creator(project: Project, row: Stage | Command):
    """A doit task creator; an error while making the task (a missing data folder, say) is a message."""
    def create():
        try:
            return project.task(row) if isinstance(row, Stage) else project.command_task(row)
        except TinyedgeError as exc:
            _fail(exc)
    create.__name__ = f"task_{row.name}"
    create.__doc__ = row.doc
    return create


def _one_line_on_ctrl_c(previous_hook):
    """A Ctrl-C outside a stage (doit checking what is up to date, hashing the data set, loading the manifest)
    ends the run like one inside it: one line, exit 130 (Python exits by SIGINT after an unhandled
    KeyboardInterrupt). Stage outputs are only ever placed whole, so nothing built is lost."""
    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted; the last good artifacts are kept", file=sys.stderr, flush=True)
        else:
            previous_hook(kind, value, traceback)
    hook.tinyedge = True
    return hook


def stage_tasks() -> dict:
    """`task_<stage>` functions and DOIT_CONFIG for a dodo.py namespace; a manifest error stops doit with its
    message. Called when doit imports dodo.py, in the project folder, before doit opens its state in cache/."""
    if not getattr(sys.excepthook, "tinyedge", False):
        sys.excepthook = _one_line_on_ctrl_c(sys.excepthook)
    Path(STATE_DIR).mkdir(exist_ok=True)
    os.environ[RUN_ENV] = str(os.getpid())
    try:
        project = load_project(Path.cwd())
    except TinyedgeError as exc:
        _fail(exc)
    namespace = {f"task_{row.name}": _creator(project, row) for row in project.stages + project.commands}
    namespace["DOIT_CONFIG"] = doit_config([stage.name for stage in project.stages if stage.default])
    return namespace
