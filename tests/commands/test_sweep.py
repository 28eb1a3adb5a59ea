"""Sweeps, tuning and large data sets: real doit runs on the example, a real PostgreSQL server for the study.

Settings are the fastest that still train (one epoch, few calibration samples); every variant shares one cache.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna  # the tune extra (tests/setup.sh installs it): missing, the file fails, never skips
import pytest
import yaml

from conftest import doit, make_project, ran
from tinyedge_tasks.commands.sweep import command_line_assignments
from tinyedge_tasks.engine import hashing
from tinyedge_tasks.commands.trials import manifest_edit, variants

SWIFT = {"train": {"epochs": 1}, "compression": {"calibrate": {"samples": 20}}}


def test_apply_edits_only_the_values_keeping_comments_and_order():
    text = ("# top comment\nproject:\n  name: x   # the name\n\ndataset:\n  input: {width: 32, height: 32}\n\n"
            "train:\n  epochs: 12   # long\n\ncompression:\n  quantize:\n    scheme: int8\n# trailing comment\n"
            "board: esp32cam\n")
    values = {"train.epochs": 1, "dataset.input.width": 24, "dataset.input.channels": 3,
              "compression.quantize.scheme": "int16x8", "compression.prune.sparsity": 0.5,
              "train.width_multiplier": 0.5}
    edited = manifest_edit.set_values(text, values)
    data = yaml.safe_load(edited)
    assert data["train"] == {"epochs": 1, "width_multiplier": 0.5}
    assert data["dataset"]["input"] == {"width": 24, "height": 32, "channels": 3}
    assert data["compression"] == {"quantize": {"scheme": "int16x8"}, "prune": {"sparsity": 0.5}}
    assert data["board"] == "esp32cam" and data["project"] == {"name": "x"}
    for line in ("# top comment", "  name: x   # the name", "  epochs: 1   # long", "# trailing comment"):
        assert line in edited.splitlines()
    assert [l for l in edited.splitlines() if l and not l.startswith(" ")] == \
        [l for l in text.splitlines() if l and not l.startswith(" ")]  # sections in their order
    assert manifest_edit.set_values("compression:\n  prune:\n", {"compression.prune.sparsity": 0.25}) == \
        "compression:\n  prune: {sparsity: 0.25}\n"


def test_command_line_values():
    argv = ["doit", "sweep", "-S", "train.epochs=1,2", "--set", "a.b=x,y", "--set=c=null", "--workers", "2"]
    assignments = command_line_assignments(argv)
    assert variants.parse_assignments(assignments) == {"train.epochs": [1, 2], "a.b": ["x", "y"], "c": [None]}
    assert len(variants.grid(variants.parse_assignments(assignments))) == 4
    with pytest.raises(Exception, match="given twice"):
        variants.parse_assignments(["a=1", "a=2"])


def test_sweep_and_tune_without_the_extra_name_it(tmp_path):
    """Optuna missing (a package on the path that fails to import as it would when absent): one line naming
    the extra, before anything is built."""
    hidden = tmp_path / "hidden"
    (hidden / "optuna").mkdir(parents=True)
    (hidden / "optuna" / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    project = make_project(tmp_path / "p", {"tune": {"space": {"train.epochs": [1, 2]}}})
    for command in (["sweep", "-S", "train.epochs=1,2"], ["tune"]):
        result = doit(project, *command, check=False, env={"PYTHONPATH": str(hidden)})
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output, output
        assert f"doit {command[0]} needs Optuna" in output and "pip install 'tinyedge[tune]'" in output
    assert not (project / "build").exists()


def _images(folder: Path, per_class: int) -> None:
    import numpy as np
    from PIL import Image
    for label in range(2):
        (folder / f"c{label}").mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = np.full((8, 8), 40 + 150 * label + index, np.uint8)
            Image.fromarray(pixels).save(folder / f"c{label}" / f"{index:03d}.png")


def test_data_folder_is_one_dependency(tmp_path):
    """No-op checks the folder by one stat scan; adding an image or editing one in place reruns dataset, a touch
    does not."""
    project = make_project(tmp_path / "p", {"dataset": {"source": "images", "input": {"width": 8, "height": 8}}})
    _images(project / "images", 30)
    (project / "images" / "README.txt").write_text("not an image: never read by dataset")
    assert ran(doit(project, "dataset")) == {"dataset"}
    info = doit(project, "info", "dataset").stdout
    assert "images" in info and "000.png" not in info  # the folder, not each image
    assert ran(doit(project, "dataset")) == set()
    os.utime(project / "images" / "c0" / "000.png")
    assert ran(doit(project, "dataset")) == set()
    with sqlite3.connect(project / "cache" / "digests.sqlite3") as db:  # the touched tree's digest is kept:
        remembered = db.execute("select stats from trees").fetchall()  # later no-ops do not rehash it
    assert remembered == [(hashing.tree_stat_digest(project / "images"),)]
    _images(project / "extra", 31)
    shutil.copy(project / "extra" / "c1" / "030.png", project / "images" / "c1" / "030.png")
    assert ran(doit(project, "dataset")) == {"dataset"}
    counts = json.loads((project / "build" / "dataset" / "dataset.json").read_text())["samples"]
    assert counts == 61
    edited = project / "images" / "c0" / "005.png"
    size = edited.stat().st_size
    shutil.copy(project / "images" / "c0" / "006.png", edited)
    assert edited.stat().st_size == size  # same size: only the content tells
    assert ran(doit(project, "dataset")) == {"dataset"}
    assert ran(doit(project, "dataset")) == set()


def _summary(project: Path) -> dict:
    return json.loads((project / "build" / "sweep" / "summary.json").read_text())


@pytest.mark.slow
def test_sweep_trains_once_per_training_config_restores_a_second_run_and_reports_failures(tmp_path):
    project = make_project(tmp_path / "p", SWIFT)
    grid = ["-S", "train.width_multiplier=0.5,1", "-S", "compression.quantize.scheme=int8,int16x8"]
    first = doit(project, "sweep", *grid, "--workers", "2")
    summary = _summary(project)
    trials = summary["trials"]
    assert [t["state"] for t in trials] == ["complete"] * 4, first.stdout[-3000:]
    assert sorted(json.dumps(t["values"], sort_keys=True) for t in trials) == \
        sorted(json.dumps(g, sort_keys=True) for g in variants.grid(variants.parse_assignments(
            ["train.width_multiplier=0.5,1", "compression.quantize.scheme=int8,int16x8"])))  # the grid, once each
    computed = lambda stage: sum(t["stages"].get(stage) == "computed" for t in trials)  # noqa: E731
    assert summary["trainings"] == computed("train") == 2  # one per width; the schemes share it
    assert computed("dataset") == 1 and computed("quantize") == 4  # two at a time: one computes, one waits
    assert all(t["fits"] for t in trials) and any(t["pareto"] for t in trials)
    assert 'width_multiplier=1 scheme="int16x8"]' in first.stdout and "trainings run: 2" in first.stdout
    assert (project / "build/sweep/summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.rmtree(project / "build" / "sweep")  # fresh folders: every stage of every variant comes from the cache
    again = doit(project, "sweep", *grid, "--workers", "2")
    summary = _summary(project)
    assert {how for t in summary["trials"] for how in t["stages"].values()} == {"restored"}, again.stdout
    assert summary["seconds"] < 90

    failing = doit(project, "sweep", "-S", "firmware.led_class=zebra,'0'", check=False)
    assert failing.returncode == 1 and "1 of 2 variants failed" in failing.stdout + failing.stderr
    rows = {t["values"]["firmware.led_class"]: t for t in _summary(project)["trials"]}
    assert rows["0"]["state"] == "complete" and rows["zebra"]["state"] == "fail"
    assert "zebra" in rows["zebra"]["error"] and "not a class" in rows["zebra"]["error"]

    table = doit(project, "experiments").stdout
    records = json.loads((project / "build" / "experiments" / "experiments.json").read_text())
    assert len(records) == 4 and all(r["fits"] for r in records), table
    assert all(any(o.startswith("sweep ") for o in r["origin"]) for r in records)
    assert "width_multiplier" in table and "fits" in table


@pytest.mark.slow
def test_ctrl_c_stops_tune_with_one_line_and_the_trial_is_not_a_rejection(tmp_path):
    """Ctrl-C reaches tune and its trial's doit alike (one process group, as in a terminal): the trial fails
    (a rerun makes up for it), it is not counted as rejected by the preflight, and nothing prints a traceback."""
    project = make_project(tmp_path / "p", {"train": {"epochs": 300}, "tune": {"space": {"train.epochs": [300]},
                                                                              "trials": 1}})
    env = {k: v for k, v in os.environ.items() if k != "TINYEDGE_CACHE"}
    process = subprocess.Popen([sys.executable, "-m", "doit", "tune", "--workers", "1"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log = project / "build" / "tune" / "digits-esp32cam" / "trial-0000" / "doit.log"
    lines = []
    for line in process.stdout:  # the trial's doit trains once the check passed
        lines.append(line)
        if "check computed" in line or "check restored" in line:
            break
    staging = project / "build" / "tune" / "digits-esp32cam" / "trial-0000" / "build" / ".tmp"
    while not any(staging.glob("train-*")):  # train's staging folder: the stage has begun (no guessed delay)
        assert process.poll() is None, "".join(lines) + process.stdout.read()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    output = "".join(lines) + process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    assert "interrupted during tune" in output and "Traceback" not in output, output
    study = optuna.load_study(study_name="digits-esp32cam",
                              storage=f"sqlite:///{project / 'cache' / 'tune.sqlite3'}")
    [trial] = study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.FAIL and "rejected" not in trial.user_attrs, trial.user_attrs
    assert "interrupted during train" in log.read_text()  # the trial's own doit stopped too, cleanly


WORKER = """
import sys, time
from tinyedge_tasks.commands.trials import study as s
s.HEARTBEAT_SECONDS = 1  # the product's 30 s, shortened so the test waits seconds, not minutes
optuna = s.load_optuna("test")
study = optuna.create_study(study_name="x", storage=s.storage(optuna, sys.argv[1]), load_if_exists=True,
                            sampler=optuna.samplers.RandomSampler(seed=int(sys.argv[3])))
def objective(trial):
    x = trial.suggest_int("x", 0, 10**9)
    print("running", x, flush=True)
    if sys.argv[2] == "hang":
        time.sleep(600)
    return x
study.optimize(objective, n_trials=1)
"""


@pytest.mark.slow
def test_a_killed_workers_trial_is_retried_with_its_values(tmp_path):
    """kill -9 leaves a trial running in the storage; once its heartbeat is stale the next worker marks it
    failed and runs its values again (their stages come from the cache)."""
    url = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    hung = subprocess.Popen([sys.executable, "-c", WORKER, url, "hang", "1"], stdout=subprocess.PIPE, text=True)
    first = hung.stdout.readline().split()[1]
    time.sleep(2)  # a heartbeat or two recorded
    hung.kill()
    hung.wait()
    hung.stdout.close()
    time.sleep(5)  # past the grace period (4 heartbeats)
    retried = subprocess.run([sys.executable, "-c", WORKER, url, "run", "2"], capture_output=True, text=True,
                             check=True)
    assert retried.stdout.split()[1] == first  # another seed would draw another value
    trials = optuna.load_study(study_name="x", storage=url).get_trials()
    assert [(t.state.name, t.params["x"]) for t in trials] == [("FAIL", int(first)), ("COMPLETE", int(first))]


# --- doit tune against a real PostgreSQL server, two workers sharing one cache ------------------------------------

def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres():
    """A PostgreSQL server in a temporary folder on a unix socket; its URL. Run as the postgres user when the
    tests run as root (the server refuses root)."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.fail("PostgreSQL is not installed: run tests/setup.sh (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="tinyedge-pg-", dir="/tmp"))
    folder.chmod(0o777)
    as_user = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    data, port = folder / "data", str(20000 + os.getpid() % 20000)
    subprocess.run(as_user + [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "tinyedge"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"),
                              "-o", f"-k {folder} -c listen_addresses='' -p {port}", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run(as_user + [str(binaries.parent / "bin" / "createdb"), "-h", str(folder), "-p", port,
                                  "-U", "tinyedge", "studies"], check=True, capture_output=True)
        yield f"postgresql://tinyedge@/studies?host={folder}&port={port}"
    finally:
        subprocess.run(as_user + [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _tight_board(project: Path) -> None:
    """esp32cam with 20 KB for the arena in internal RAM and in PSRAM (beside the camera frames): a wide model
    cannot fit, and the preflight says so."""
    from tinyedge_tasks.config import boards
    loaded = boards.load(project / "boards" / "esp32cam.yaml")
    frames = getattr(loaded, "frame_buffers", 1) * loaded.frame_bytes
    board = yaml.safe_load((project / "boards" / "esp32cam.yaml").read_text())
    board["psram"]["bytes"] = board["psram"]["reserved_bytes"] + frames + 20480
    board["sram"]["arena_max_bytes"] = 20480
    (project / "boards" / "tight.yaml").write_text(yaml.safe_dump(board))


@pytest.mark.slow
@pytest.mark.postgres
def test_tune_two_workers_on_postgresql_share_the_study_and_the_cache(tmp_path, postgres):
    tune = {"space": {"train.width_multiplier": [0.5, 3.0], "compression.quantize.scheme": ["int8", "int16x8"]},
            "objectives": {"quantized_test_accuracy": "maximize", "arena_bytes": "minimize"},
            "trials": 4, "sampler": "random", "study": "shared"}
    store = tmp_path / "shared-cache"
    workers = []
    for name in ("machine-a", "machine-b"):
        project = make_project(tmp_path / name, {**SWIFT, "board": "tight", "tune": tune})
        _tight_board(project)
        workers.append(project)
    env = {**{k: v for k, v in os.environ.items() if k != "TINYEDGE_CACHE"}, "TINYEDGE_CACHE": str(store)}
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "doit", "tune", f"--storage={postgres}", "--workers", "1"],
                                  cwd=p, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for p in workers]
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    seconds = time.perf_counter() - started

    study = optuna.load_study(study_name="shared", storage=postgres.replace("postgresql:", "postgresql+psycopg2:"))
    trials = study.get_trials(deepcopy=False)
    ran_by = {p.name: sorted(int(f.name.split("-")[1]) for f in (p / "build" / "tune" / "shared").glob("trial-*"))
              for p in workers}
    numbers = ran_by["machine-a"] + ran_by["machine-b"]
    assert sorted(numbers) == sorted(t.number for t in trials)  # each trial ran in exactly one worker
    assert len(numbers) == len(set(numbers)) >= 4 and all(ran_by.values()), ran_by
    assert all(t.state.is_finished() for t in trials)
    for t in trials:
        if t.params["train.width_multiplier"] == 3.0:  # the preflight stops it before training
            assert t.state == optuna.trial.TrialState.PRUNED and "tight" in t.user_attrs["rejected"]
            assert t.user_attrs["preflight_seconds"] < seconds
            continue
        assert t.state == optuna.trial.TrialState.COMPLETE, t.user_attrs
        owner = next(p for p in workers if t.number in ran_by[p.name])
        calibration = owner / "build" / "tune" / "shared" / f"trial-{t.number:04d}" / "build" / "calibrate"
        digest = variants.digest_file(calibration / "calibration.json")
        assert (store / "objects" / digest[:2] / digest).is_file()  # in the shared cache

    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    trained = [t for t in complete if t.user_attrs["stages"].get("train") == "computed"]
    assert len(trained) == len({t.params["train.width_multiplier"] for t in complete})  # once per width, whoever ran it

    project = workers[0]
    done = complete[0]
    doit(project, "tune", f"--storage={postgres}", "--apply", str(done.number), env={"TINYEDGE_CACHE": str(store)})
    manifest = yaml.safe_load((project / "tinyedge.yaml").read_text())
    assert manifest["compression"]["quantize"]["scheme"] == done.params["compression.quantize.scheme"]
    rebuilt = doit(project, "codegen", env={"TINYEDGE_CACHE": str(store)})
    assert "done in" not in rebuilt.stdout and "restored from cache" in rebuilt.stdout  # nothing recomputed
