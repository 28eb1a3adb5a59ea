"""doit sweep: every combination of some manifest values, each variant built in its own folder from the one cache.

Variants run as parallel `doit` processes. A stage that several variants share (one training for a grid over
quantization schemes) is first built once, by one variant per distinct value of the keys it depends on, so the
others restore it instead of computing it at the same time; a variant seen before is restored whole.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import TinyedgeError
from ..experiment import variants as v
from ..report import charts


def _reads_key(read: str, key: str) -> bool:
    return key == read or key.startswith(read + ".") or read.startswith(key + ".")


def _upstream(project, name: str, with_after: bool) -> set[str]:
    """The stages whose outputs `name` reads (and, with_after, its doit setup stages, run before it)."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        stage = project.stage_by_name.get(current)
        if stage is None or current in seen:
            continue
        seen.add(current)
        artifacts = (*stage.needs, *stage.optional, *stage.passthrough.values())
        pending += [artifact.split("/")[0] for artifact in artifacts] + (list(stage.setup) if with_after else [])
    return seen


def shared_phases(project, keys: list[str], outcomes: list[v.Outcome]) -> list[tuple[str, list[v.Outcome]]]:
    """(stage, one variant per distinct value of the swept keys that stage depends on), fewest first, for every
    stage that fewer configurations than variants share; a stage built anyway by a later phase of the same
    keys is left out."""
    phases = []
    for stage in project.stages:
        switched_on = stage.enabled_by and any(_reads_key(stage.enabled_by, k) for k in keys)
        if stage.name not in _upstream(project, v.target(project), True) or not (project.enabled(stage)
                                                                                  or switched_on):
            continue  # `doit prune` with prune off builds nothing: it cannot build the stages before it
        depends = frozenset(k for k in keys for name in _upstream(project, stage.name, False)
                            for read in project.stage_by_name[name].reads if _reads_key(read, k))
        groups: dict[str, v.Outcome] = {}
        for outcome in outcomes:
            groups.setdefault(json.dumps([outcome.values[k] for k in sorted(depends)]), outcome)
        if len(groups) < len(outcomes):
            phases.append((stage.name, depends, list(groups.values())))
    kept = [p for p in phases
            if not any(q is not p and q[1] == p[1] and p[0] in _upstream(project, q[0], True) for q in phases)]
    return [(name, reps) for name, _, reps in sorted(kept, key=lambda p: len(p[2]))]


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
    started = time.perf_counter()
    assignments = command_line_assignments(sys.argv) if options.get("set") else []
    axes = v.parse_assignments(assignments) or dict(project.manifest.get("sweep") or {})
    if not axes:
        raise TinyedgeError(f"{project.manifest.path}: nothing to sweep; give -S key=v1,v2 (repeatable) or a "
                            "sweep: section mapping manifest keys to lists of values")
    grid = v.grid(axes)
    for values in grid:
        v.validate_values(project.root, values)
    build_dir = project.manifest.get("project.build_dir")
    store = project.store.root.resolve()
    outcomes = [v.Outcome(values, project.build / "sweep" / v.folder_name(values)) for values in grid]
    for outcome in outcomes:
        v.write_variant(project.root, outcome.folder, outcome.values, build_dir, store)
    workers = int(options.get("workers") or os.cpu_count() or 1)
    lock = threading.Lock()
    number = {id(o): i for i, o in enumerate(outcomes, 1)}

    def say(outcome: v.Outcome, text: str) -> None:
        with lock:
            print(f"[{number[id(outcome)]}/{len(outcomes)} {outcome.label}] {text}", flush=True)

    def build(outcome: v.Outcome, targets: list[str]) -> None:
        if outcome.status == "failed":
            return
        if not v.run_doit(outcome, targets, store, build_dir, lambda line: say(outcome, line)):
            say(outcome, f"failed at {outcome.failed_stage or 'start'}: {outcome.error.splitlines()[0]}")

    print(f"sweep: {len(outcomes)} variants of {', '.join(axes)} in {project.relative(project.build / 'sweep')}/, "
          f"{workers} at a time, cache {store}", flush=True)
    with ThreadPoolExecutor(workers) as pool:
        for stage, reps in shared_phases(project, list(axes), outcomes):
            print(f"sweep: {stage} first, once for each of its {len(reps)} distinct configuration(s)", flush=True)
            list(pool.map(lambda o: build(o, [stage]), reps))
        list(pool.map(lambda o: build(o, [v.target(project)]), outcomes))
    for outcome in outcomes:
        v.finish(outcome, build_dir)
        v.record(store, "sweep", f"{project.manifest.get('project.name')}-{outcome.folder.name}", outcome, build_dir)
    _summary(project, axes, outcomes, time.perf_counter() - started)
    failed = [f"{number[id(o)]} ({o.label})" for o in outcomes if o.status == "failed"]
    if failed:
        raise TinyedgeError(f"{len(failed)} of {len(outcomes)} variants failed: {', '.join(failed)}; the others "
                            "were built. Their errors are in the table; each folder's doit.log has the rest")


def _summary(project, axes: dict, outcomes: list[v.Outcome], seconds: float) -> None:
    keys = list(axes)
    headers = ["#", *[k.rsplit(".", 1)[-1] for k in keys], "status", "int8 acc", "model B", "arena B", "fits",
               "computed", "restored", "s", "error"]
    rows = []
    for index, o in enumerate(outcomes, 1):
        m = o.metrics or {}
        rows.append([index, *[json.dumps(o.values[k]) for k in keys], o.status,
                     m.get("quantized_test_accuracy", ""), m.get("model_bytes", ""), m.get("arena_bytes", ""),
                     {True: "yes", False: "no", None: "?"}[o.fits], ",".join(o.computed()) or "-",
                     len(o.restored()), round(o.seconds, 1), o.error.splitlines()[0][:60] if o.error else ""])
    trainings = sum("train" in o.computed() for o in outcomes)
    print(charts.text_table(headers, rows))
    print(f"sweep: {len(outcomes)} variants in {seconds:.1f} s; trainings run: {trainings}; variants restored "
          f"whole: {sum(not o.computed() and o.status == 'ok' for o in outcomes)}")
    folder = project.build / "sweep"
    (folder / "summary.md").write_text(f"# Sweep over {', '.join(keys)}\n\n{charts.markdown_table(headers, rows)}\n\n"
                                       f"{len(outcomes)} variants in {seconds:.1f} s, trainings run: {trainings}\n")
    (folder / "summary.json").write_text(json.dumps(
        {"seconds": seconds, "trainings": trainings,
         "variants": [{"values": o.values, "folder": o.folder.name, "status": o.status, "error": o.error,
                       "stages": o.stages, "seconds": o.seconds, "metrics": o.metrics, "fits": o.fits}
                      for o in outcomes]}, indent=1))
    print(f"sweep: summary in {project.relative(folder)}/summary.md; `doit experiments` shows every variant")
