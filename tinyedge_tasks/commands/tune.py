"""doit tune: an Optuna study over the manifest's `tune:` space, with the board's budget as a hard constraint.

Each trial is a variant in build/tune/<study>/trial-NNNN, run by commands.trials.study (the mechanism `doit sweep`
uses): the preflight rejects in seconds what cannot fit the board, before it trains; a trial whose values were
seen before (in this study, a sweep or the project) is restored from the cache, not rebuilt. The study lives in
Optuna's storage (SQLite under cache/, or --storage postgresql://...), so workers on several machines sharing
$TINYEDGE_CACHE pull trials from one study, and a rerun adds only the trials still missing.
"""
from __future__ import annotations

import os

from ..config.manifest import validate
from ..errors import TinyedgeError
from .trials import manifest_edit
from .trials import study as s
from .trials import variants as v


def _settings(project, options) -> dict:
    settings = project.manifest.get("tune")
    if not settings or not settings["space"]:
        raise TinyedgeError(f"{project.manifest.path}: no tune: section with a space; add e.g.\n"
                            "tune:\n  space:\n    compression.quantize.scheme: [int8, int16x8]\n"
                            "    train.width_multiplier: {low: 0.25, high: 1.0, step: 0.25}")
    url = (options.get("storage") or settings["storage"]
           or f"sqlite:///{(project.state / 'tune.sqlite3').resolve()}")
    return {**settings, "storage": url, "study": settings["study"] or project.manifest.get("project.name"),
            "trials": options.get("trials") or settings["trials"]}


def run(project, options, args) -> None:
    optuna = s.load_optuna("doit tune")
    settings = _settings(project, options)
    seed = project.manifest.get("project.seed")
    if not settings["storage"].startswith("sqlite"):
        seed += os.getpid()  # workers on a study server must not all draw the same first points
    study = optuna.create_study(study_name=settings["study"], storage=s.storage(optuna, settings["storage"]),
                                directions=list(settings["objectives"].values()), load_if_exists=True,
                                sampler=s.sampler(optuna, settings["sampler"], settings["space"], seed))
    if options.get("apply", -1) >= 0:
        return _apply(project, study, options["apply"])
    base = project.build / "tune" / settings["study"]
    search = s.Search("tune", settings["study"], settings["space"], settings["objectives"],
                      lambda number, values: base / f"trial-{number:04d}", base)
    finished = s.held(study)
    workers = s.workers(options)
    print(f"tune: study {settings['study']} in {s.shown(settings['storage'])}: {finished} finished trial(s), "
          f"running {max(settings['trials'] - finished, 0)} more, {workers} at a time; cache "
          f"{project.store.root.resolve()}", flush=True)
    seconds = s.optimize(project, study, search, settings["trials"], workers)
    s.summarize(project, study, search, seconds)
    print("tune: `doit tune --apply N` puts trial N's values into tinyedge.yaml")


def _apply(project, study, number: int) -> None:
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or "values" not in trial.user_attrs:
        known = [t.number for t in study.get_trials(deepcopy=False) if "values" in t.user_attrs]
        raise TinyedgeError(f"--apply {number}: study {study.study_name} has no trial {number}; its trials are "
                            f"{known or 'none yet'} (run doit tune first)")
    values = trial.user_attrs["values"]
    path = project.manifest.path
    text = manifest_edit.set_values(path.read_text(), values, str(path))
    validate(text, path)
    path.write_text(text)
    print(f"tune: wrote trial {number} into {path.name}: {v.label(values)}; run doit: every stage it built is "
          "restored from the cache")
