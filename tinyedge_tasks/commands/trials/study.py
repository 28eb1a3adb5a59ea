"""One mechanism for `doit sweep` and `doit tune`: an Optuna study whose trials are variants.

A trial takes manifest values from the study's sampler (the grid sampler for a sweep; TPE, NSGA-II, random or
grid for tune), builds them as a variant (trials.variants) from the shared cache, the preflight first, and
gives back the objectives, with the board's budget as a constraint. Trials run in parallel threads, each driving
its own `doit` process; two trials that need the same stage at once compute it once (the store's lock: one
computes, the other waits and restores).
"""
from __future__ import annotations

import json
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...errors import TinyedgeError
from ...report import charts
from . import variants as v

HEARTBEAT_SECONDS = 30
VERDICTS = ("COMPLETE", "PRUNED")  # a point, or a rejection by the preflight
FITS = "fits the board"  # the study's one constraint
EXTRA = "the `tune` extra: pip install 'tinyedge[tune]' (Optuna and the PostgreSQL driver)"


def load_optuna(command: str):
    try:
        import optuna
    except ImportError:
        raise TinyedgeError(f"{command} needs Optuna, which is not installed; it comes with {EXTRA}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is a row of our table, not a traceback
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's retry
    return optuna


def storage(optuna, url: str):
    if url.startswith("postgresql"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise TinyedgeError(f"--storage {shown(url)}: the PostgreSQL driver psycopg2 is not installed; "
                                f"it comes with {EXTRA}") from None
        url = url.replace("postgresql://", "postgresql+psycopg2://", 1)  # SQLAlchemy 2.1 would look for psycopg 3
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    from sqlalchemy.exc import IntegrityError, ProgrammingError
    # A worker that was killed leaves its trial running: after 2 minutes without a heartbeat it is marked
    # failed and its values are tried once more (the stages it finished come from the cache).
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=4 * HEARTBEAT_SECONDS, heartbeat_stale_trial_callback=retry)
        except (IntegrityError, ProgrammingError):  # workers creating the tables of a new database at once
            if attempt == 4:
                raise
            time.sleep(1 + attempt)


def shown(url: str) -> str:
    """The storage URL without its password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@')[-1]}" if "@" in rest else url


def grid(space: dict) -> dict[str, list]:
    """The choices of every key, for the grid sampler (a range needs a step)."""
    choices = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            choices[key] = spec
        elif spec["step"] is None:
            raise TinyedgeError(f"tune.space.{key}: the grid sampler needs choices or a range with a step; "
                                "add step: or use sampler: tpe")
        else:
            count = int(round((spec["high"] - spec["low"]) / spec["step"])) + 1
            choices[key] = [spec["low"] + i * spec["step"] for i in range(count)]
    return choices


def sampler(optuna, name: str, space: dict, seed: int):
    if name == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _suggest(trial, key: str, spec):
    if isinstance(spec, list):
        return trial.suggest_categorical(key, spec)
    low, high, step = spec["low"], spec["high"], spec["step"]
    if all(isinstance(x, int) for x in (low, high, step or 1)):
        return trial.suggest_int(key, low, high, step=step or 1, log=spec["log"])
    return trial.suggest_float(key, low, high, step=step, log=spec["log"])


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


@dataclass
class Search:
    """What a study searches and where its trials build: build/<kind>/... from folder(number, values)."""

    kind: str                            # sweep or tune: how `doit experiments` names the trials' origin
    name: str                            # the study's name
    space: dict                          # dotted manifest key -> choices, or a range {low, high, step, log}
    objectives: dict[str, str]           # figure -> maximize or minimize
    folder: Callable[[int, dict], Path]  # trial number and values -> the variant's folder
    base: Path                           # where the summary goes


def _check_choices(search: Search) -> None:
    for key, choices in search.space.items():
        odd = [c for c in choices if not isinstance(c, (str, int, float, bool, type(None)))] \
            if isinstance(choices, list) else []
        if odd:
            raise TinyedgeError(f"{search.kind} {key}: {odd[0]!r} is not a single value; a choice is a number, "
                                "a string, true/false or null (sweep a list-valued key through one of its items)")


class _Objective:
    """One trial: its values built as a variant from the shared cache, the preflight first; the objectives back,
    the board's fit as the constraint. Called from several threads at once (workers)."""

    def __init__(self, project, search: Search, optuna):
        self.project, self.search, self.optuna = project, search, optuna
        self.build_dir = project.manifest.get("project.build_dir")
        self.store = project.store.root.resolve()
        self.preflight = "check" in project.stage_by_name
        self.lock = threading.Lock()

    def __call__(self, trial):
        values = {key: _suggest(trial, key, spec) for key, spec in self.search.space.items()}
        v.validate_values(self.project.root, values)
        trial.set_user_attr("values", values)
        outcome = v.Outcome(values, self.search.folder(trial.number, values))
        v.write_variant(self.project.root, outcome.folder, values, self.build_dir, self.store)
        say = self._sayer(trial, outcome)
        say(f"in {self.project.relative(outcome.folder)}")
        if self.preflight:
            self._preflight(trial, outcome, say)
        v.run_doit(outcome, [v.target(self.project)], self.store, self.build_dir, say)
        v.finish(outcome, self.build_dir)
        if outcome.metrics is None or (outcome.status == "failed" and outcome.fits is not False):
            self._done(trial, outcome, error=outcome.error)  # not the board's verdict: a failed trial, not a point
            failure = outcome.error if outcome.interrupted else \
                f"failed at {outcome.failed_stage or 'start'}: {outcome.error}"
            say(failure.splitlines()[0])
            raise TinyedgeError(failure)
        self._done(trial, outcome)
        trial.set_constraint(FITS, 0.0 if outcome.fits else 1.0)  # <= 0 is feasible
        figures = [_figure(outcome, name) for name in self.search.objectives]
        say(f"{'fits' if outcome.fits else 'does NOT fit'}; "
            + ", ".join(f"{n} {_number(f)}" for n, f in zip(self.search.objectives, figures))
            + f" ({outcome.seconds:.1f} s, computed: {','.join(outcome.computed()) or 'nothing'})")
        return figures

    def _preflight(self, trial, outcome: v.Outcome, say: Callable[[str], None]) -> None:
        """`doit check` of the variant: a rejection prunes the trial before it trains."""
        if v.run_doit(outcome, ["check"], self.store, self.build_dir, say):
            trial.set_user_attr("preflight_seconds", round(outcome.seconds, 2))
            return
        if outcome.crashed or outcome.interrupted:  # no verdict on the board: a failed trial
            self._done(trial, outcome, error=outcome.error)
            raise TinyedgeError(outcome.error if outcome.interrupted else
                                f"crashed in {outcome.failed_stage}: {outcome.error.splitlines()[-1]} "
                                "(its doit.log has the traceback)")
        self._done(trial, outcome, rejected=outcome.error, preflight_seconds=round(outcome.seconds, 2))
        say(f"rejected by the preflight in {outcome.seconds:.1f} s: {outcome.error.splitlines()[0]}")
        raise self.optuna.TrialPruned(outcome.error)

    def _sayer(self, trial, outcome: v.Outcome) -> Callable[[str], None]:
        def say(text: str) -> None:
            with self.lock:
                print(f"[{self.search.kind} {trial.number} {outcome.label}] {text}", flush=True)
        return say

    def _done(self, trial, outcome: v.Outcome, **attributes) -> None:
        for key, value in {"seconds": round(outcome.seconds, 2), "stages": outcome.stages, **attributes}.items():
            trial.set_user_attr(key, value)
        v.record(self.store, self.search.kind, f"{self.search.name}-{outcome.folder.name}", outcome,
                 self.build_dir, {"study": self.search.name, "trial": trial.number})


def optimize(project, study, search: Search, trials: int, workers: int) -> float:
    """Run trials until the study holds `trials` of them; the seconds it took."""
    optuna = load_optuna(f"doit {search.kind}")
    _check_choices(search)
    started = time.perf_counter()
    missing = trials - held(study)
    if missing > 0:
        stop = optuna.study.MaxTrialsCallback(trials, states=[optuna.trial.TrialState[name] for name in VERDICTS])
        study.optimize(_Objective(project, search, optuna), n_trials=missing, n_jobs=workers,
                       catch=(TinyedgeError,), callbacks=[stop])
    return time.perf_counter() - started


def workers(options) -> int:
    """--workers, else one trial per core."""
    return int(options.get("workers") or os.cpu_count() or 1)


def held(study) -> int:
    """Trials the study holds a verdict for (a point, or a rejection); a failed or interrupted trial is not
    one, so a rerun makes up for it."""
    return sum(t.state.name in VERDICTS for t in study.get_trials(deepcopy=False))


def _number(x: float):
    return int(x) if x.is_integer() else round(x, 4)


def _chart(rows: list[dict], names: list[str]) -> bytes:
    """The trials with a point: the first objective against the second (or the trial number), the Pareto
    front of those that fit starred, those that do not fit hollow."""
    fig, [axis] = charts.figure(1, width=5.0, height=3.6)
    points = [r for r in rows if r["figures"]]
    xs = [r["figures"][1] if len(names) > 1 else r["number"] for r in points]
    charts.pareto_points(axis, [(x, r["figures"][0]) for x, r in zip(xs, points)], [r["pareto"] for r in points],
                         [r["fits"] for r in points], [str(r["number"]) if r["pareto"] else None for r in points])
    charts.x_axis(axis, xs, names[1] if len(names) > 1 else "trial")
    axis.set_ylabel(names[0])
    axis.set_title(f"{len(points)} trials with a point, Pareto front starred", fontsize=9)
    return charts.png(fig)


def summarize(project, study, search: Search, seconds: float) -> list[dict]:
    """Print the trials as a table (the Pareto front of those that fit starred) and write summary.{md,json}
    beside them; the rows."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    front = {t.number for t in study.best_trials} if any(t.values for t in trials) else set()
    rows = []
    for t in trials:
        error = (t.user_attrs.get("rejected") or t.user_attrs.get("error") or "").strip()
        fits = {None: None, 0.0: True}.get(t.constraints.get(FITS), False)
        rows.append({"number": t.number, "values": t.user_attrs.get("values", t.params),
                     "state": t.state.name.lower(), "figures": [_number(x) for x in t.values or []],
                     "fits": False if t.user_attrs.get("rejected") else fits, "pareto": t.number in front,
                     "stages": t.user_attrs.get("stages", {}), "preflight_seconds": t.user_attrs.get("preflight_seconds"),
                     "seconds": t.user_attrs.get("seconds"), "error": error})
    keys, names = list(search.space), list(search.objectives)
    headers = ["#", *[k.rsplit(".", 1)[-1] for k in keys], "state", *names, "fits", "Pareto", "computed",
               "restored", "preflight s", "s", "note"]
    table = [[r["number"], *[json.dumps(r["values"].get(k)) for k in keys], r["state"],
              *(r["figures"] or [""] * len(names)), {True: "yes", False: "no", None: "?"}[r["fits"]],
              "*" if r["pareto"] else "", ",".join(s for s, how in r["stages"].items() if how == "computed") or "-",
              sum(how == "restored" for how in r["stages"].values()), r["preflight_seconds"] or "",
              r["seconds"] or "", r["error"].split("\n")[0][:70]] for r in rows]
    rejected = [r for r in rows if r["fits"] is False and r["state"] == "pruned"]
    trainings = sum(r["stages"].get("train") == "computed" for r in rows)
    lines = [f"{len(rows)} trials ({seconds:.1f} s in this run); trainings run: {trainings}; restored whole: "
             f"{sum(bool(r['stages']) and r['state'] == 'complete' and 'computed' not in r['stages'].values() for r in rows)}",
             f"Pareto front of the trials that fit the board: {sorted(front) or 'none yet'}",
             f"rejected by the preflight before training: {len(rejected)}, "
             f"{sum(r['preflight_seconds'] or 0 for r in rejected):.1f} s in all"]
    print(charts.text_table(headers, table))
    print(f"{search.kind}: " + f"\n{search.kind}: ".join(lines))
    search.base.mkdir(parents=True, exist_ok=True)
    picture = ""
    if any(r["figures"] for r in rows):
        (search.base / "summary.png").write_bytes(_chart(rows, names))
        picture = "\n![the trials' objectives](summary.png)\n"
    (search.base / "summary.md").write_text(f"# {search.kind} {search.name}\n\n{charts.markdown_table(headers, table)}"
                                            "\n\n" + "\n".join(f"- {line}" for line in lines) + "\n" + picture)
    (search.base / "summary.json").write_text(json.dumps(
        {"study": search.name, "objectives": search.objectives, "seconds": seconds, "trainings": trainings,
         "trials": rows}, indent=1))
    print(f"{search.kind}: table in {project.relative(search.base)}/summary.md; `doit experiments` shows every "
          "configuration, with its chart")
    return rows
