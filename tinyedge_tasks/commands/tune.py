"""doit tune: an Optuna study over the manifest's `tune:` space, with the board's budget as a hard constraint.

Each trial is a variant (tinyedge_tasks.experiment.variants) in build/tune/<study>/trial-NNNN: the preflight
(`doit check`, when the table has it) rejects in seconds what cannot fit the board, before it trains; then the
pipeline runs up to codegen, from the shared cache, so a trial whose values were seen before (in this study, a
sweep or the project) is restored, not rebuilt. The study lives in Optuna's storage (SQLite under cache/, or
--storage postgresql://...), so workers on several machines sharing $TINYEDGE_CACHE pull trials from one study.
"""
from __future__ import annotations

import json
import os
import threading
import time

from ..errors import TinyedgeError
from ..experiment import manifest_edit
from ..experiment import variants as v
from ..report import charts

EXTRA = "the `tune` extra: pip install 'tinyedge[tune]' (Optuna and the PostgreSQL driver)"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise TinyedgeError(f"doit tune needs Optuna, which is not installed; it comes with {EXTRA}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is a row of our table, not a traceback
    return optuna


def _storage(optuna, url: str):
    if url.startswith("postgresql"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise TinyedgeError(f"--storage {_shown(url)}: the PostgreSQL driver psycopg2 is not installed; "
                                f"it comes with {EXTRA}") from None
        url = url.replace("postgresql://", "postgresql+psycopg2://", 1)  # SQLAlchemy 2.1 would look for psycopg 3
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    from sqlalchemy.exc import IntegrityError, ProgrammingError
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (IntegrityError, ProgrammingError):  # workers creating the tables of a new database at once
            if attempt == 4:
                raise
            time.sleep(1 + attempt)


def _default_storage(project) -> str:
    return f"sqlite:///{(project.state / 'tune.sqlite3').resolve()}"


def _settings(project, options) -> dict:
    settings = project.manifest.get("tune")
    if not settings or not settings["space"]:
        raise TinyedgeError(f"{project.manifest.path}: no tune: section with a space; add e.g.\n"
                            "tune:\n  space:\n    compression.quantize.scheme: [int8, int16x8]\n"
                            "    train.width_multiplier: {low: 0.25, high: 1.0, step: 0.25}")
    url = options.get("storage") or settings["storage"] or _default_storage(project)
    return {**settings, "storage": url, "study": settings["study"] or project.manifest.get("project.name"),
            "trials": options.get("trials") or settings["trials"]}


def _suggest(trial, key: str, spec):
    if isinstance(spec, list):
        return trial.suggest_categorical(key, spec)
    low, high, step = spec["low"], spec["high"], spec["step"]
    if all(isinstance(x, int) for x in (low, high, step or 1)):
        return trial.suggest_int(key, low, high, step=step or 1, log=spec["log"])
    return trial.suggest_float(key, low, high, step=step, log=spec["log"])


def _grid(space: dict) -> dict[str, list]:
    """The choices of every key, for the grid sampler (a range needs a step)."""
    grid = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            grid[key] = spec
        elif spec["step"] is None:
            raise TinyedgeError(f"tune.space.{key}: the grid sampler needs choices or a range with a step; "
                                "add step: or use sampler: tpe")
        else:
            count = int(round((spec["high"] - spec["low"]) / spec["step"])) + 1
            grid[key] = [spec["low"] + i * spec["step"] for i in range(count)]
    return grid


def _sampler(optuna, settings: dict, seed: int):
    name = settings["sampler"]
    if name == "grid":
        return optuna.samplers.GridSampler(_grid(settings["space"]), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _figure(outcome: v.Outcome, name: str) -> float:
    """An objective's value: a calibration.json figure, or budget.<key> of codegen's budget."""
    source, keys = (outcome.budget, name.split(".")[1:]) if name.startswith("budget.") else (outcome.metrics, [name])
    value = source
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, (int, float)):
        known = sorted(k for k, x in (outcome.metrics or {}).items() if isinstance(x, (int, float)))
        raise TinyedgeError(f"tune.objectives: {name} is not a number the trial produced; expected one of "
                            f"{', '.join(known)} or budget.<key> (budget.flash.needed_bytes, budget.arena.bytes)")
    return float(value)


def run(project, options, args) -> None:
    optuna = _optuna()
    settings = _settings(project, options)
    seed = project.manifest.get("project.seed")
    if not settings["storage"].startswith("sqlite"):
        seed += os.getpid()  # workers on a study server must not all draw the same first points
    study = optuna.create_study(study_name=settings["study"], storage=_storage(optuna, settings["storage"]),
                                directions=list(settings["objectives"].values()), load_if_exists=True,
                                sampler=_sampler(optuna, settings, seed))
    if options.get("apply", -1) >= 0:
        return _apply(project, study, options["apply"])
    build_dir = project.manifest.get("project.build_dir")
    store = project.store.root.resolve()
    base = project.build / "tune" / settings["study"]
    preflight = "check" in project.stage_by_name
    lock = threading.Lock()

    def say(number: int, text: str) -> None:
        with lock:
            print(f"[trial {number}] {text}", flush=True)

    def objective(trial):
        values = {key: _suggest(trial, key, spec) for key, spec in settings["space"].items()}
        v.validate_values(project.root, values)
        trial.set_user_attr("values", values)
        outcome = v.Outcome(values, base / f"trial-{trial.number:04d}")
        v.write_variant(project.root, outcome.folder, values, build_dir, store)
        say(trial.number, f"{v.label(values)} in {project.relative(outcome.folder)}")
        progress = lambda line: say(trial.number, line)  # noqa: E731
        name = f"{settings['study']}-{trial.number:04d}"
        extra = {"study": settings["study"], "trial": trial.number}
        if preflight:
            passed = v.run_doit(outcome, ["check"], store, build_dir, progress)
            trial.set_user_attr("preflight_seconds", round(outcome.seconds, 2))
            if not passed and outcome.crashed:
                trial.set_user_attr("error", outcome.error)
                v.record(store, "tune", name, outcome, build_dir, extra)
                raise TinyedgeError(f"trial {trial.number} crashed in {outcome.failed_stage}: "
                                    f"{outcome.error.splitlines()[-1]} (its doit.log has the traceback)")
            if not passed:
                trial.set_user_attr("rejected", outcome.error)
                v.record(store, "tune", name, outcome, build_dir, extra)
                say(trial.number, f"rejected by the preflight in {outcome.seconds:.1f} s: "
                                  f"{outcome.error.splitlines()[0]}")
                raise optuna.TrialPruned(outcome.error)
        v.run_doit(outcome, [v.target(project)], store, build_dir, progress)
        v.finish(outcome, build_dir)
        trial.set_user_attr("seconds", round(outcome.seconds, 2))
        trial.set_user_attr("stages", outcome.stages)
        v.record(store, "tune", name, outcome, build_dir, extra)
        if outcome.metrics is None or (outcome.status == "failed" and outcome.fits is not False):
            trial.set_user_attr("error", outcome.error)  # not the board's verdict: a failed trial, not a point
            raise TinyedgeError(f"trial {trial.number} failed at {outcome.failed_stage}: {outcome.error}")
        trial.set_constraint("fits the board", 0.0 if outcome.fits else 1.0)  # <= 0 is feasible
        figures = [_figure(outcome, name) for name in settings["objectives"]]
        say(trial.number, f"{'fits' if outcome.fits else 'does NOT fit'}; "
                          + ", ".join(f"{n} {f:g}" for n, f in zip(settings["objectives"], figures))
                          + f" ({outcome.seconds:.1f} s, computed: {','.join(outcome.computed()) or 'nothing'})")
        return figures

    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    remaining = settings["trials"] - len(finished)
    workers = int(options.get("workers") or os.cpu_count() or 1)
    print(f"tune: study {settings['study']} in {_shown(settings['storage'])}: {len(finished)} finished trial(s), "
          f"running {max(remaining, 0)} more, {workers} at a time; cache {store}", flush=True)
    started = time.perf_counter()
    if remaining > 0:
        stop = optuna.study.MaxTrialsCallback(settings["trials"], states=None)
        study.optimize(objective, n_trials=remaining, n_jobs=workers, catch=(TinyedgeError,), callbacks=[stop])
    _summary(project, study, settings, base, time.perf_counter() - started)


def _shown(url: str) -> str:
    """The storage URL without its password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@')[-1]}" if "@" in rest else url


def _summary(project, study, settings: dict, base, seconds: float) -> None:
    trials = study.get_trials(deepcopy=False)
    front = {t.number for t in study.best_trials} if any(t.values for t in trials) else set()
    keys = list(settings["space"])
    names = list(settings["objectives"])
    headers = ["#", *[k.rsplit(".", 1)[-1] for k in keys], "state", *names, "fits", "Pareto", "preflight s", "s",
               "note"]
    rows = []
    for t in trials:
        values = t.user_attrs.get("values", t.params)
        fits = {None: "?", 0.0: "yes"}.get(t.constraints.get("fits the board") if t.constraints else None, "no")
        error = t.user_attrs.get("error", "").strip().splitlines()
        note = (t.user_attrs.get("rejected") or "").split("\n")[0] or (error[-1] if error else "")
        rows.append([t.number, *[json.dumps(values.get(k)) for k in keys], t.state.name.lower(),
                     *([int(x) if x.is_integer() else round(x, 4) for x in t.values] if t.values
                       else [""] * len(names)),
                     "no" if t.user_attrs.get("rejected") else fits, "*" if t.number in front else "",
                     t.user_attrs.get("preflight_seconds", ""), t.user_attrs.get("seconds", ""),
                     note[:70]])
    rejected = [t for t in trials if t.user_attrs.get("rejected")]
    print(charts.text_table(headers, rows))
    rejection_seconds = sum(t.user_attrs.get("preflight_seconds", 0) for t in rejected)
    lines = [f"{len(trials)} trials; Pareto front (fits the board): {sorted(front) or 'none yet'}",
             f"rejected by the preflight before training: {len(rejected)} trial(s), {rejection_seconds:.1f} s in all",
             f"this run: {seconds:.1f} s"]
    print("tune: " + "\ntune: ".join(lines))
    base.mkdir(parents=True, exist_ok=True)
    (base / "summary.md").write_text(f"# Study {settings['study']}\n\n{charts.markdown_table(headers, rows)}\n\n"
                                     + "\n".join(f"- {line}" for line in lines) + "\n")
    print(f"tune: table in {project.relative(base)}/summary.md; `doit tune --apply N` puts trial N into "
          "tinyedge.yaml")


def _apply(project, study, number: int) -> None:
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or "values" not in trial.user_attrs:
        known = [t.number for t in study.get_trials(deepcopy=False) if "values" in t.user_attrs]
        raise TinyedgeError(f"--apply {number}: study {study.study_name} has no trial {number}; its trials are "
                            f"{known or 'none yet'} (run doit tune first)")
    values = trial.user_attrs["values"]
    path = project.manifest.path
    text = manifest_edit.set_values(path.read_text(), values, str(path))
    from ..config.manifest import validate
    validate(text, path)
    path.write_text(text)
    print(f"tune: wrote trial {number} into {path.name}: {v.label(values)}; run doit: every stage it built is "
          "restored from the cache")
