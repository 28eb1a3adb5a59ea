"""The engine with the real doit command line: incremental runs, the cache, atomic outputs, locking."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import doit, make_project, ran, write_manifest
from tinyedge_tasks.engine.cache import Store
from tinyedge_tasks.engine.hashing import STAT_CACHE, XXH3Checker

SLICE = {"dataset", "train", "quantize", "calibrate"}


def artifacts(project: Path) -> dict[str, bytes]:
    """Every file under build/ (not the staging folder), by relative path."""
    build = project / "build"
    return {str(p.relative_to(build)): p.read_bytes() for p in build.rglob("*")
            if p.is_file() and ".tmp" not in p.parts}


def test_example_builds_the_slice(built_project):
    import json
    calibration = json.loads((built_project / "build/calibrate/calibration.json").read_text())
    assert calibration["input"]["dtype"] == "int8" and calibration["output"]["dtype"] == "int8"
    assert calibration["float_test_accuracy"] > 0.9
    assert abs(calibration["accuracy_drop_points"]) <= 1.5
    assert 1024 < calibration["arena_bytes"] < 200_000
    assert calibration["model_bytes"] == (built_project / "build/quantize/model.tflite").stat().st_size


def test_second_run_and_touch_run_nothing(project_copy):
    assert ran(doit(project_copy)) == set()
    for path in list((project_copy / "build").rglob("*")) + [project_copy / "tinyedge.yaml"]:
        if path.is_file():
            os.utime(path)
    assert ran(doit(project_copy)) == set()


def test_list_help_and_noop_import_no_heavy_library(built_project):
    """TensorFlow takes seconds, NumPy, matplotlib, pydantic and Optuna a tenth each: none belongs in a no-op."""
    probe = ("import sys\nfrom doit.doit_cmd import DoitMain\nfrom doit.cmd_base import ModuleTaskLoader\n"
             "import dodo\nfor args in (['list'], ['help'], ['info', 'train'], []):\n"
             "    assert DoitMain(ModuleTaskLoader(dodo)).run(args) == 0, args\n"
             "print(sorted(m for m in ('tensorflow', 'tf_keras', 'numpy', 'matplotlib', 'pydantic', 'optuna', "
             "'psycopg2', 'sqlalchemy') "
             "if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=built_project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_key_reruns_only_the_stages_that_read_it(project_copy):
    write_manifest(project_copy, {"compression": {"calibrate": {"samples": 60}}})
    executed = ran(doit(project_copy))
    assert {"quantize", "calibrate"} <= executed and not {"dataset", "train"} & executed
    write_manifest(project_copy, {"train": {"epochs": 3}, "compression": {"calibrate": {"samples": 60}}})
    executed = ran(doit(project_copy))
    assert {"train", "quantize", "calibrate"} <= executed and "dataset" not in executed


def test_changing_a_key_back_restores_identical_artifacts(project_copy):
    before = artifacts(project_copy)
    write_manifest(project_copy, {"train": {"epochs": 2}})
    doit(project_copy)
    assert artifacts(project_copy)["train/model.h5"] != before["train/model.h5"]
    write_manifest(project_copy, {})
    result = doit(project_copy)
    assert {"train", "quantize", "calibrate"} <= ran(result)
    assert result.stdout.count("restored from cache") == len(ran(result)), result.stdout  # all of them
    assert artifacts(project_copy) == before


def test_two_clean_runs_give_identical_bytes(built_project, tmp_path):
    """The second run also uses two doit worker processes: they share the project's lock."""
    again = make_project(tmp_path / "again")
    doit(again, "-n", "2")
    first, second = artifacts(built_project), artifacts(again)
    assert first.keys() == second.keys()
    assert first["quantize/model.tflite"] == second["quantize/model.tflite"]
    assert first == second


def test_corrupted_cache_object_is_dropped_and_recomputed(project_copy):
    store = Store(project_copy / "cache")
    model = (project_copy / "build/train/model.h5").read_bytes()
    (key, record), = [(k, r) for k, r in store.records() if r["stage"] == "train"]
    obj = store.objects / record["outputs"]["model.h5"]["digest"][:2] / record["outputs"]["model.h5"]["digest"]
    obj.write_bytes(b"bit rot")
    (project_copy / "build/train/model.h5").unlink()
    result = doit(project_copy)
    assert "missing or corrupted" in result.stderr + result.stdout
    assert "train" in ran(result)
    assert (project_copy / "build/train/model.h5").read_bytes() == model


def test_shared_cache_folder_serves_a_second_checkout(built_project, tmp_path):
    shared = {"TINYEDGE_CACHE": str(built_project / "cache")}
    other = make_project(tmp_path / "other")
    result = doit(other, env=shared)
    assert SLICE <= ran(result)
    assert result.stdout.count("restored from cache") == len(ran(result)), result.stdout
    assert artifacts(other) == artifacts(built_project)


def test_cache_prune_by_size_and_age(project_copy):
    store = Store(project_copy / "cache")
    old = time.time() - 10 * 86400
    for path in list(store.objects.rglob("*")) + list(store.actions.glob("*.json")):
        os.utime(path, (old, old))
    kept = subprocess.run([sys.executable, "-m", "tinyedge_tasks.cli", "cache-prune", "--older-than", "30"],
                          cwd=project_copy, capture_output=True, text=True)
    assert kept.returncode == 0 and "dropped 0" in kept.stdout, kept.stdout + kept.stderr
    gone = subprocess.run([sys.executable, "-m", "tinyedge_tasks.cli", "cache-prune", "--max-size", "0"],
                          cwd=project_copy, capture_output=True, text=True)
    assert gone.returncode == 0, gone.stderr
    assert not list(store.actions.glob("*.json")) and not list(store.objects.glob("*/*"))
    (project_copy / "build/calibrate/calibration.json").unlink()
    assert "calibrate" in ran(doit(project_copy))  # an emptied cache recomputes


def test_checker_rehashes_only_when_stat_moved(tmp_path):
    STAT_CACHE.db_path = tmp_path / "digests.sqlite3"
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    checker = XXH3Checker()
    state = checker.get_state(str(path), None)
    assert checker.get_state(str(path), state) is None
    assert not checker.check_modified(str(path), os.stat(path), state)
    os.utime(path, ns=(state[0] + 10**9, state[0] + 10**9))
    assert not checker.check_modified(str(path), os.stat(path), state)  # touched, same bytes
    path.write_bytes(b"b" * 1000)
    assert checker.check_modified(str(path), os.stat(path), state)       # same size, new bytes


def _image_folder(root: Path, per_class: int = 30) -> Path:
    """A real image folder: digits drawn as 24x24 RGB PNGs, one sub-folder per class."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    folder = root / "images"
    for label in (0, 1, 7):
        (folder / f"class_{label}").mkdir(parents=True)
        for n, image in enumerate(digits.images[digits.target == label][:per_class]):
            pixels = np.kron(np.round(image * 255 / 16).astype(np.uint8), np.ones((3, 3), np.uint8))
            Image.fromarray(np.stack([pixels] * 3, axis=2)).save(folder / f"class_{label}" / f"{n:03}.png")
    return folder


def test_npz_source_and_a_file_that_is_not_one(tmp_path):
    from sklearn.datasets import load_digits
    digits = load_digits()
    project = make_project(tmp_path / "p", {"dataset": {"source": "digits.npz", "input": {"channels": 3}}})
    np.savez(project / "digits.npz", x=np.round(digits.images * 255 / 16).astype(np.uint8), y=digits.target + 3)
    doit(project, "dataset")
    with np.load(project / "build/dataset/data.npz") as data:
        assert data["x_train"].shape[1:] == (32, 32, 3)
        assert sum(len(data[f"y_{s}"]) for s in ("train", "val", "test")) == len(digits.target)
    (project / "digits.npz").write_bytes(b"not a zip")
    result = doit(project, "dataset", check=False)
    assert result.returncode != 0 and "digits.npz: not an .npz file" in result.stdout + result.stderr


def test_image_folder_split_is_stable_when_an_image_is_added(tmp_path):
    project = make_project(tmp_path / "p", {"dataset": {"source": "images", "input": {"width": 16, "height": 16}}})
    folder = _image_folder(project)
    doit(project, "dataset")
    with np.load(project / "build/dataset/data.npz") as data:
        before = {s: data[f"x_{s}"] for s in ("train", "val", "test")}
    assert sum(len(x) for x in before.values()) == 90 and before["train"].shape[1:] == (16, 16, 1)
    shutil.copy(folder / "class_7/000.png", folder / "class_7/zzz_new.png")
    assert ran(doit(project, "dataset")) == {"dataset"}
    with np.load(project / "build/dataset/data.npz") as data:
        after = {s: data[f"x_{s}"] for s in ("train", "val", "test")}
    grown = [s for s in before if len(after[s]) != len(before[s])]
    assert len(grown) == 1 and len(after[grown[0]]) == len(before[grown[0]]) + 1
    for split in before:  # every earlier sample is still in its split, in order
        assert all(any(np.array_equal(x, y) for y in after[split]) for x in before[split])


CONVERT_MODEL = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tf_keras as keras
model = keras.models.load_model(sys.argv[1], compile=False)
model.save(sys.argv[2])                          # the native Keras format
model.save(sys.argv[3], save_format="tf")        # a SavedModel directory
"""


def test_the_three_pretrained_model_kinds_and_a_user_function(built_project, tmp_path):
    """A .h5, a .keras file and a SavedModel folder (the TFLite converter's inputs), used as they are."""
    import json
    project = make_project(tmp_path / "p")
    shutil.copy(built_project / "build/train/model.h5", project / "pretrained.h5")
    subprocess.run([sys.executable, "-c", CONVERT_MODEL, str(project / "pretrained.h5"),
                    str(project / "pretrained.keras"), str(project / "pretrained_savedmodel")], check=True)
    reference = json.loads((built_project / "build/train/metrics.json").read_text())
    for model_file in ("pretrained.h5", "pretrained.keras", "pretrained_savedmodel"):
        write_manifest(project, {"train": {"model": model_file, "epochs": 0}})
        result = doit(project, "train")
        assert "kept as loaded (train.epochs: 0, not trained)" in result.stdout and "0 epochs" not in result.stdout
        metrics = json.loads((project / "build/train/metrics.json").read_text())
        assert metrics["test_accuracy"] == reference["test_accuracy"], model_file
        assert metrics["kept_as_loaded"] is True and json.loads((project / "build/train/history.json").read_text()) == {}

    (project / "mymodels.py").write_text(
        "import tf_keras as keras\n"
        "def small(input_shape, num_classes):\n"
        "    return keras.Sequential([keras.layers.Input(input_shape), keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax', name='head')])\n")
    write_manifest(project, {"train": {"model": "mymodels:small", "epochs": 1}})
    assert "train" in ran(doit(project, "train"))
    trained = json.loads((project / "build/train/metrics.json").read_text())
    assert trained["parameters"] == 32 * 32 * 10 + 10 and "kept_as_loaded" not in trained


BAD_PROJECTS = [
    ("missing data folder", {"dataset": {"source": "data/nowhere"}}, None,
     ["tinyedge.yaml:", "dataset.source", "data/nowhere does not exist", "image folder"]),
    ("empty class folder", {"dataset": {"source": "images"}}, "empty_class",
     ["dataset.source", "class_empty holds no .jpg/.png images"]),
    ("corrupt image", {"dataset": {"source": "images"}}, "corrupt",
     ["1 unreadable image", "broken.png", "skip_corrupt: true"]),
    ("missing model file", {"train": {"model": "models/trained.h5"}}, None,
     ["train.model", "models/trained.h5 does not exist", ".h5"]),
    ("unknown board", {"board": "esp32-cma"}, None, ["board", "esp32cam"]),
]


@pytest.mark.parametrize("what,changes,damage,words", BAD_PROJECTS, ids=[c[0] for c in BAD_PROJECTS])
def test_bad_project_fails_clearly_and_keeps_what_was_built(project_copy, what, changes, damage, words):
    before = artifacts(project_copy)
    if damage:
        folder = _image_folder(project_copy, per_class=8)
        if damage == "empty_class":
            (folder / "class_empty").mkdir()
        else:
            (folder / "class_1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    write_manifest(project_copy, changes)
    result = doit(project_copy, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, output
    assert artifacts(project_copy) == before


def test_skip_corrupt_leaves_the_bad_image_out(project_copy):
    folder = _image_folder(project_copy, per_class=8)
    (folder / "class_1" / "broken.png").write_bytes(b"garbage")
    write_manifest(project_copy, {"dataset": {"source": "images", "skip_corrupt": True}})
    result = doit(project_copy, "dataset")
    assert "skipped" in result.stdout and "broken.png" in result.stdout
    import json
    summary = json.loads((project_copy / "build/dataset/dataset.json").read_text())
    assert summary["samples"] == 24 and len(summary["skipped"]) == 1


def _start_training(project: Path) -> subprocess.Popen:
    write_manifest(project, {"train": {"epochs": 200}})
    process = subprocess.Popen([sys.executable, "-m", "doit"], cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:  # wait until training is under way
        if "Epoch 2/200" in line:
            return process
    raise AssertionError("training never started")


def test_interrupted_stage_keeps_the_last_good_artifacts(project_copy):
    before = artifacts(project_copy)
    process = _start_training(project_copy)
    process.send_signal(signal.SIGINT)
    said = process.communicate(timeout=60)[0]
    assert process.returncode == 130 and "interrupted during train" in said, said[-2000:]
    assert artifacts(project_copy) == before
    write_manifest(project_copy, {})
    rerun = doit(project_copy)
    assert ran(rerun) == set(), rerun.stdout


def test_second_concurrent_run_stops_with_a_message(project_copy):
    process = _start_training(project_copy)
    try:
        second = doit(project_copy, check=False)
    finally:
        process.kill()
        process.wait(timeout=60)
        process.stdout.close()
    assert second.returncode != 0
    assert f"another doit run (pid {process.pid}) is building this project" in second.stdout + second.stderr
    assert "Traceback" not in second.stdout + second.stderr


def test_two_checkouts_computing_the_same_stage_at_once_compute_it_once(project_copy, tmp_path):
    """A second run that needs an action another run is computing (a sweep variant, a tune worker sharing the
    cache) waits for it and restores it, instead of training the same model twice."""
    changes = {"train": {"epochs": 8}}
    write_manifest(project_copy, changes)
    other = make_project(tmp_path / "other", changes)
    first = subprocess.Popen([sys.executable, "-m", "doit", "train"], cwd=project_copy, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    for line in first.stdout:
        if "Epoch 1/8" in line:
            break
    second = doit(other, "train", env={"TINYEDGE_CACHE": str(project_copy / "cache")})
    first_output = first.stdout.read()
    assert first.wait(timeout=300) == 0, first_output
    first.stdout.close()
    assert "waiting: another run is computing the same train" in second.stdout, second.stdout
    assert "done in" in first_output and "done in" not in second.stdout  # trained once, restored by the other
    assert (other / "build/train/model.h5").read_bytes() == (project_copy / "build/train/model.h5").read_bytes()
