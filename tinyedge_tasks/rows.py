"""Stage and command rows: plain data, shared by the engine (which runs them) and the table and backends (which
declare them), so that declaring a row imports no engine."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stage:
    name: str
    doc: str
    reads: tuple[str, ...] = ()        # manifest keys (a section name covers every key below it)
    needs: tuple[str, ...] = ()        # artifacts of other stages, "stage/file"
    makes: tuple[str, ...] = ()        # files this stage writes into <build>/<name>/
    tools: tuple[str, ...] = ()        # distributions whose versions are part of the fingerprint
    module: str = ""                   # the module with run(ctx); default tinyedge_tasks.stages.<name>
    templates: tuple[str, ...] = ()    # package-relative folders of non-Python files the stage reads (code too)
    sources: str = ""                  # "module:function" listing the project files it reads (images, a model
    #                                    file, the board file): called to make tasks, so keep that module light
    watch: str = ""                    # "module:function" for doit's dependencies instead of `sources`: a data
    #                                    folder as one path, checked by a tree state, not one per image
    default: bool = True               # part of a plain `doit`
    enabled_by: str | None = None      # manifest key; when it is null the stage is off and ...
    passthrough: dict = field(default_factory=dict)  # ... its files are these artifacts of earlier stages
    optional: tuple[str, ...] = ()     # artifacts read only when their stage is on and makes or made them
    hooks: tuple[str, ...] = ()        # modules of the project's backend the stage calls by name (code too)
    setup: tuple[str, ...] = ()        # stages run first, and only when this one runs (doit `setup`): a preflight

    def __post_init__(self):
        if not self.module:
            object.__setattr__(self, "module", f"tinyedge_tasks.stages.{self.name}")


@dataclass(frozen=True)
class Command:
    """A task that always runs and is never cached: side effects (flash, monitor) or views of the cache.

    Its module (default `tinyedge_tasks.commands.<name with _>`) has `run(project, options, args)`: `options`
    holds the values of `params` (doit params: dicts with name/long/type/default/help), `args` the positional
    arguments when `pos_arg` is set."""

    name: str
    doc: str
    needs: tuple[str, ...] = ()        # artifacts built first
    params: tuple[dict, ...] = ()
    pos_arg: bool = False
    module: str = ""

    def __post_init__(self):
        if not self.module:
            object.__setattr__(self, "module", f"tinyedge_tasks.commands.{self.name.replace('-', '_')}")
