"""doit sweep: every combination of some manifest values, each variant built in its own folder from the one cache.

A sweep is a study with Optuna's grid sampler (trials.study, the mechanism `doit tune` uses), kept in memory:
a rerun restores every variant from the cache instead of replaying a stored study. Variants run in parallel;
a stage several of them share (one training for a grid over quantization schemes) is computed by one and
restored by the others.
"""
from __future__ import annotations

import sys

from ..config.manifest import Tune
from ..errors import TinyedgeError
from .trials import study as s
from .trials import variants as v


def command_line_assignments(argv: list[str]) -> list[str]:
    """The KEY=V1,V2 after each -S/--set. doit takes every `name=value` argument as one of its own command-line
    variables before a task sees its options, so `-S` is a flag and its values are read from the command line."""
    found = []
    for flag, value in zip(argv, argv[1:]):
        if flag in ("-S", "--set"):
            found.append(value)
    found += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--set=")]
    return found


def run(project, options, args) -> None:
    optuna = s.load_optuna("doit sweep")
    assignments = command_line_assignments(sys.argv) if options.get("set") else []
    axes = v.parse_assignments(assignments) or dict(project.manifest.get("sweep") or {})
    if not axes:
        raise TinyedgeError(f"{project.manifest.path}: nothing to sweep; give -S key=v1,v2 (repeatable) or a "
                            "sweep: section mapping manifest keys to lists of values")
    combinations = v.grid(axes)
    for values in combinations:  # a typo fails before anything runs
        v.validate_values(project.root, values)
    objectives = dict((project.manifest.get("tune") or {}).get("objectives") or Tune().objectives)
    folder = project.build / "sweep"
    search = s.Search("sweep", str(project.manifest.get("project.name")), axes, objectives,
                      lambda number, values: folder / v.folder_name(values), folder)
    study = optuna.create_study(directions=list(objectives.values()),
                                sampler=s.sampler(optuna, "grid", axes, project.manifest.get("project.seed")))
    workers = s.workers(options)
    print(f"sweep: {len(combinations)} variants of {', '.join(axes)} in {project.relative(folder)}/, {workers} at a "
          f"time, cache {project.store.root.resolve()}", flush=True)
    seconds = s.optimize(project, study, search, len(combinations), workers)
    rows = s.summarize(project, study, search, seconds)
    failed = [f"{r['number']} ({v.label(r['values'])})" for r in rows if r["state"] == "fail"]
    if failed:
        raise TinyedgeError(f"{len(failed)} of {len(rows)} variants failed: {', '.join(failed)}; the others "
                            "were built. Their errors are in the table; each folder's doit.log has the rest")
