"""Issue 10: every failure a message, every crash contained, a preflight in seconds; nothing built ever changes.

One test (or more) per numbered finding; crashes are real TFLM crashes of the fixtures (tests/fixtures/)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import FIXTURES, REPO, digests, doit, write_manifest

from tinyedge_tasks.config import boards
from tinyedge_tasks.config.manifest import validate
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.tflite import runtime, worker

MOBILENET = (FIXTURES / "mobilenet_untrained.tflite").read_bytes()  # untrained: TFLM's SOFTMAX aborts
LSTM = (FIXTURES / "lstm_batch1.tflite").read_bytes()                # TFLM's LSTM segfaults in small arenas
IMAGE = np.full((1, 96, 96, 3), 128, np.uint8)
SERIES = np.full((1, 8, 4), 100, np.int8)




def _manifest(project: Path, changes: dict) -> None:
    write_manifest(project, {**yaml.safe_load((project / "tinyedge.yaml").read_text()), **changes})


# 1. TFLM crashes are contained: a real abort, a real segfault, stale staging folders removed
def test_1_real_abort_names_signal_operator_and_stage():
    with pytest.raises(TinyedgeError) as caught:
        worker.probe(MOBILENET, runtime.model_input(MOBILENET, IMAGE), "quantize: mobilenet_untrained.tflite")
    message = str(caught.value)
    assert message.startswith("quantize: mobilenet_untrained.tflite")
    assert "SIGABRT" in message and "SOFTMAX" in message


def test_1_real_segfault_quotes_tflm_and_names_no_wrong_operator():
    with pytest.raises(TinyedgeError) as caught:
        worker.probe(LSTM, SERIES, "calibrate: lstm_batch1.tflite", arena=4096)
    message = str(caught.value)
    assert "SIGSEGV" in message and "4096-byte arena" in message and "lstm_eval.cc" in message
    assert "Set up one by one" not in message  # an arena-size-dependent crash: no guessed operator


def test_1_arena_search_counts_segfaults_as_too_small():
    arena, notes = worker.smallest_arena(LSTM, SERIES, "calibrate: arena")
    assert notes and all("SIGSEGV" in note for note in notes)
    assert worker.probe(LSTM, SERIES, "check", arena=arena) is None


def test_1_untrained_model_is_a_degenerate_range_error_not_an_abort():
    from tinyedge_tasks.tflite.convert import check_runs
    with pytest.raises(TinyedgeError, match=r"output range is degenerate .* Train it first \(train.epochs > 0\)"):
        check_runs(MOBILENET, "int8", IMAGE)


def test_1_stale_staging_folders_are_removed(project_copy):
    before = digests(project_copy)
    stale = project_copy / "build" / ".tmp" / "calibrate-dead1234"
    stale.mkdir(parents=True)
    (stale / "half.json").write_text("{")
    doit(project_copy, "-a", "calibrate")  # restored from the cache: execute runs, the folder goes
    assert not stale.exists() and digests(project_copy) == before


# 2. a Keras 3 file says so and how to re-save it
def test_2_keras3_file_is_named_as_such(tmp_path):
    from tinyedge_tasks.ml.keras_util import load_model
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"x": "y" * 80000}}))
    with pytest.raises(TinyedgeError) as caught:
        load_model(path, "train.model")
    message = str(caught.value)
    assert "Keras 3.6.0" in message and "tf_keras" in message and len(message) < 500


# 3. a data set of one class is refused, naming the folder
def test_3_single_class_folder_is_refused(project_copy):
    before = digests(project_copy)
    only = project_copy / "images" / "cat"
    only.mkdir(parents=True)
    _manifest(project_copy, {"dataset": {"source": "images", "input": {"width": 32, "height": 32, "channels": 1},
                                         "split": {"val": 0.15, "test": 0.15}}})
    result = doit(project_copy, "dataset", check=False)
    assert result.returncode != 0
    assert "needs at least two class sub-folders, found only cat/" in result.stdout + result.stderr
    assert "images" in result.stdout + result.stderr
    assert digests(project_copy) == before


def test_3_single_class_npz_is_refused(project_copy):
    before = digests(project_copy)
    np.savez(project_copy / "one.npz", x=np.zeros((30, 8, 8), np.uint8), y=np.zeros(30, np.int64))
    _manifest(project_copy, {"dataset": {"source": "one.npz", "input": {"width": 32, "height": 32, "channels": 1},
                                         "split": {"val": 0.15, "test": 0.15}}})
    result = doit(project_copy, "dataset", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "1 class (0)" in out and "at least two classes" in out
    assert "1 classes" not in out and digests(project_copy) == before


# 4. skip_corrupt writes paths relative to the project
def test_4_skipped_images_are_named_relative_to_the_project(tmp_path):
    from conftest import make_project
    from PIL import Image
    project = make_project(tmp_path / "p", {"dataset": {"source": "images", "skip_corrupt": True}})
    for name in ("a", "b"):
        folder = project / "images" / name
        folder.mkdir(parents=True)
        for i in range(12):
            Image.fromarray(np.full((8, 8), i * 20, np.uint8)).save(folder / f"{i}.png")
    (project / "images" / "a" / "broken.png").write_bytes(b"not a png")
    doit(project, "dataset")
    summary = json.loads((project / "build" / "dataset" / "dataset.json").read_text())
    assert summary["skipped"] and summary["skipped"][0].startswith("images/a/broken.png: ")
    assert str(tmp_path) not in (project / "build" / "dataset" / "dataset.json").read_text()


# 5. an arena over the probe ceiling is a budget error with numbers
def test_5_arena_over_probe_ceiling_is_a_budget_error():
    message = str(worker.over_ceiling("calibrate: model.tflite", "Failed to allocate tail memory. Requested: "
                                      "9830400, available 8388000, missing: 1442400"))
    assert "more than 8388608 bytes" in message and "missing: 1442400" in message
    assert "scheme" not in message and "width_multiplier" in message
    assert worker.arena_refused("Failed to allocate tail memory. Requested: 1") and not worker.arena_refused(
        "Didn't find op for builtin opcode 'EXP'")


# 6. an operator no MCU runs: named with its layer, no SELECT_TF_OPS advice, no literal \n, "an int8"
def test_6_converter_flex_ops_name_the_layer_without_select_tf_ops():
    from tinyedge_tasks.tflite.convert import _converter_error
    text = ("Could not translate MLIR to FlatBuffer.\\nloc(callsite(\"sequential/lstm/TensorListReserve@__inference\" "
            "at fused[\"sequential/lstm/x\"])): error: 'tf.TensorListReserve' op is neither a custom op nor a flex op"
            "\\nerror: failed while converting: 'main': \\nSome ops are not supported by the native TFLite runtime, "
            "you can enable TF kernels fallback using TF Select. See instructions: https://www.tensorflow.org/lite/"
            "guide/ops_select \\nTF Select ops: TensorListReserve\\n converter.target_spec.supported_ops = "
            "[tf.lite.OpsSet.SELECT_TF_OPS]")
    message = _converter_error(text, "int8")
    assert "tf.TensorListReserve" in message and "layer lstm" in message and "an int8 model" in message
    assert "SELECT_TF_OPS" not in message.replace("converter's SELECT_TF_OPS", "") and "\\n" not in message


def test_6_operator_the_backend_lacks_is_refused_with_its_layer(monkeypatch):
    from tinyedge_tasks.backends.tflm import preflight as check
    methods = {op: method for op, method in check.builtin_methods().items() if op != "SOFTMAX"}
    monkeypatch.setattr(check, "builtin_methods", lambda: methods)
    with pytest.raises(TinyedgeError, match=r"calibrate: m: .*SOFTMAX \(layer 'StatefulPartitionedCall:0'\).*"
                                            r"firmware.backend"):
        check.check_operators(MOBILENET, "calibrate: m")


# 7. Ctrl-C: one line, exit 130, nothing built changes
def test_7_ctrl_c_is_one_line_and_exit_130(project_copy, tmp_path):
    before = digests(project_copy)
    env = {**__import__("os").environ, "TINYEDGE_CACHE": str(tmp_path / "empty")}  # calibrate computes
    process = subprocess.Popen([sys.executable, "-m", "doit", "-a", "-s", "calibrate"], cwd=project_copy, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith(".  calibrate"):
            break
    while not any((project_copy / "build" / ".tmp").glob("calibrate-*")):  # inside the stage: NumPy, then TFLM
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert err.strip().splitlines()[-1] == "interrupted during calibrate; the last good artifacts are kept"
    assert "Traceback" not in err and digests(project_copy) == before


def test_7_ctrl_c_outside_a_stage_is_one_line_and_exit_130(project_copy):
    """A Ctrl-C while doit checks what is up to date (or hashes the data set) is no stage's, and still one line:
    here raised right after the plugin made the tasks, where doit's own loop would run."""
    code = "import dodo\nraise KeyboardInterrupt\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=project_copy, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGINT, done.stderr
    assert done.stderr.strip() == "interrupted; the last good artifacts are kept"


# 8. smaller findings
def test_8_budget_advice_is_computed_from_the_miss(project_copy):
    board = boards.load(project_copy / "boards" / "esp32cam.yaml")
    with pytest.raises(TinyedgeError) as caught:
        boards.budget(board, "tflm", 20000, 4_000_000, 0.25,
                      {"width_multiplier": 1.0, "input": (160, 160), "scheme": "int8"})
    message = str(caught.value)
    assert "1375040 B too many" in message and "dataset.input 136x136 or smaller (now 160x160)" in message
    assert "int16x8" not in message and "a board with PSRAM" not in message
    with pytest.raises(TinyedgeError) as caught:
        boards.budget(board, "tflm", 4_000_000, 10_000, 0.25, {"width_multiplier": 1.0})
    message = str(caught.value)
    assert "structured pruning" in message and "sparsity 0.48 or more" in message and "0.72 or less" in message


def test_8_advice_for_a_model_file_names_no_width_multiplier(project_copy):
    """A loaded model (train.model: x.h5) has no width knob: the advice names what its user can change."""
    board = boards.load(project_copy / "boards" / "esp32cam.yaml")
    file_model = {"width_multiplier": None, "input": (160, 160), "scheme": "int8"}
    for model_bytes, arena, advice in ((20000, 4_000_000, "dataset.input 136x136 or smaller"),
                                       (4_000_000, 10_000, "a model with fewer filters")):
        with pytest.raises(TinyedgeError) as caught:
            boards.budget(board, "tflm", model_bytes, arena, 0.25, file_model)
        message = str(caught.value)
        assert "width_multiplier" not in message and "structured pruning" in message and advice in message, message


def test_24_arena_advice_for_features_names_the_samples_not_dataset_input(project_copy):
    """An .npz of float features has no dataset.input size to turn: the advice names the samples' own shape."""
    board = boards.load(project_copy / "boards" / "esp32cam.yaml")
    with pytest.raises(TinyedgeError) as caught:
        boards.budget(board, "tflm", 20000, 4_000_000, 0.25,
                      {"width_multiplier": None, "features": [49, 10, 1], "scheme": "int8"})
    message = str(caught.value)
    assert "smaller samples in the data set's x (now (49, 10, 1): 0.72 times the values or fewer)" in message
    assert "dataset.input" not in message


def test_8_worst_layer_is_a_layer_name():
    from tinyedge_tasks.tflite.convert import _layer_name
    assert _layer_name("StatefulPartitionedCall:0", ["conv1", "logits"]) == "logits"
    assert _layer_name("tiny_cnn/conv1/Relu;tiny_cnn/conv1/BiasAdd", ["conv1"]) == "conv1"


@pytest.mark.parametrize("text, expected", [
    ("project:\n\tname: x\n", "use spaces|replace the tab with spaces"),
    ("dataset:\n  input: {width: 32, height: 32, channels: 2}\n", r"1 \(grayscale\) or 3 \(RGB\), found 2"),
])
def test_8_manifest_messages(text, expected):
    with pytest.raises(TinyedgeError, match=expected):
        validate(text, Path("tinyedge.yaml"))


# the preflight: seconds, its table, the same verdict as the pipeline
def test_check_preflight_passes_on_the_example_with_the_trained_bytes(project_copy, tmp_path):
    before = digests(project_copy)
    result = doit(project_copy, "-a", "-s", "check", env={"TINYEDGE_CACHE": str(tmp_path / "empty")})
    calibration = json.loads((project_copy / "build/calibrate/calibration.json").read_text())
    assert f"measured arena {calibration['arena_bytes']} B" in result.stdout
    charged = next(line for line in result.stdout.splitlines() if "flash: model" in line)
    assert charged.split()[-1] == str(calibration["model_bytes"])
    assert "fits esp32cam" in result.stdout and digests(project_copy) == before


def test_check_preflight_refuses_a_model_too_large_for_the_board(project_copy):
    (project_copy / "wide.py").write_text(
        "import tf_keras as keras\n\n"
        "def build(input_shape, classes):\n"
        "    inputs = keras.Input(shape=input_shape)\n"
        "    x = keras.layers.Conv2D(96, 3, padding='same', activation='relu', name='wide1')(inputs)\n"
        "    x = keras.layers.Conv2D(96, 3, padding='same', activation='relu', name='wide2')(x)\n"
        "    x = keras.layers.GlobalAveragePooling2D(name='pool')(x)\n"
        "    return keras.Model(inputs, keras.layers.Dense(classes, activation='softmax', name='logits')(x))\n")
    _manifest(project_copy, {"train": {**yaml.safe_load((project_copy / "tinyedge.yaml").read_text())["train"],
                                       "model": "wide:build"},
                             "dataset": {"source": "sklearn:digits", "input": {"width": 160, "height": 160,
                                                                                "channels": 1},
                                         "split": {"val": 0.15, "test": 0.15}}})
    trained = {k: v for k, v in digests(project_copy).items() if not k.startswith("dataset/")}
    result = doit(project_copy, "check", check=False, env={"TINYEDGE_CACHE": str(project_copy / "fresh")})
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "tensor arena does not fit in RAM" in out and "B too many" in out
    assert "too big" in out and "dataset.input" in out
    assert {k: v for k, v in digests(project_copy).items() if not k.startswith("dataset/")} == trained


# issue 24: budgets per backend, tables that say what is charged and where the arena went
def _rows(board, backend, model_bytes, arena, margin=0.25):
    rows = []
    boards.budget(board, backend, model_bytes, arena, margin, on_table=rows.extend)
    return {row[0].split(" (")[0]: row for row in rows}, rows


def test_24_runtime_belongs_to_the_backend_and_says_where_it_comes_from(project_copy):
    board = boards.load(project_copy / "boards/esp32cam.yaml")
    figures = {backend: boards.budget(board, backend, 1000, 1000, 0.25)["flash"]
               for backend in ("tflm", "c", "espdl")}
    assert len({f["runtime_bytes"] for f in figures.values()}) == 3
    for backend, flash in figures.items():
        assert flash["needed_bytes"] == 1000 + board.flash.runtime[backend].bytes
        assert flash["runtime_source"].startswith(f"boards/esp32cam.yaml flash.runtime.{backend}: estimate")
    qemu = boards.load(project_copy / "boards/qemu-cortex-m4.yaml")
    with pytest.raises(TinyedgeError, match=r"qemu-cortex-m4.yaml: flash.runtime has no entry for firmware.backend "
                                            r"tflm \(it has c\); add tflm: \{bytes: N"):
        boards.budget(qemu, "tflm", 1000, 1000, 0.25)


def test_24_old_runtime_bytes_key_names_its_replacement(project_copy):
    path = project_copy / "boards/esp32cam.yaml"
    data = yaml.safe_load(path.read_text())
    data["flash"]["runtime_bytes"] = data["flash"].pop("runtime")["tflm"]["bytes"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TinyedgeError, match=r"esp32cam.yaml: flash: .*runtime: \{tflm: \{bytes: 1048576"):
        boards.load(path)


def test_24_budget_table_rows_say_no_psram_and_moved_to_psram(project_copy):
    esp32cam = boards.load(project_copy / "boards/esp32cam.yaml")
    rows, ordered = _rows(esp32cam, "tflm", 20000, 200_000)   # over 96 KB internal, fits PSRAM
    assert rows["arena"][3] == "→ PSRAM" and rows["arena, PSRAM"][3] == "fits"
    assert [r[1] for r in ordered[:3]] == [20000, esp32cam.flash.runtime["tflm"].bytes,
                                           20000 + esp32cam.flash.runtime["tflm"].bytes]
    rows, _ = _rows(esp32cam, "tflm", 20000, 10_000)
    assert rows["arena"][3] == "fits"
    qemu = boards.load(project_copy / "boards/qemu-cortex-m4.yaml")
    rows, _ = _rows(qemu, "c", 20000, 10_000, 0.0)
    assert rows["arena, PSRAM"][2:] == (None, "no PSRAM") and rows["arena"][3] == "fits"


def test_24_c_preflight_charges_the_constants_it_prints():
    from tinyedge_tasks.backends.c import preflight
    from tinyedge_tasks.backends.c.generate import constant_bytes, lower_model
    from tinyedge_tasks.lowering.lower import lower
    model = (FIXTURES / "zoo/mobilenet_int8_none.tflite").read_bytes()
    board = boards.load(REPO / "boards/esp32cam.yaml")
    rows = []
    budget = preflight.budget(board, lower_model(model), 0, 0.0, on_table=rows.extend)
    assert rows[0][:2] == ("flash: model", constant_bytes(lower(model))) != ("flash: model", len(model))
    assert budget["model_bytes"] == rows[0][1] and budget["flash"]["needed_bytes"] == rows[2][1]


def test_24_legacy_saved_model_is_named_once_in_our_words(tmp_path, capfd, caplog):
    """tf_keras warns in a paragraph on every load of a SavedModel without keras_metadata.pb (three per run: check,
    train, ...): one line of ours, once, and not theirs (its warning sent through TensorFlow's own logger, as
    tf_keras' loader sends it, while our loader is loading that folder)."""
    from tinyedge_tasks.ml import keras_util
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy/saved_model.pb").write_bytes(b"")
    for _ in range(3):
        with keras_util._legacy_saved_model_said(tmp_path / "legacy", "train.model"):
            keras_util.tf.compat.v1.logging.warning("SavedModel saved prior to TF 2.5 detected when loading Keras "
                                                    "model.")
    keras_util.tf.compat.v1.logging.warning("another warning")
    out, err = capfd.readouterr()
    assert (out + err).count("has no keras_metadata.pb") == 1
    assert [record.getMessage() for record in caplog.records if record.name == "tensorflow"] == ["another warning"]


def test_24_a_model_that_is_not_a_classifier_is_said_so_in_one_line(tmp_path):
    """The anomaly autoencoder (640 floats in, 640 out) met "gives 640 classes ... make them agree", which no one
    can do: one line naming the file and what is supported. A map output (detection) is refused the same way;
    a softmax classifier of the wrong class count keeps the message that says to make them agree."""
    from tinyedge_tasks.ml.keras_util import keras
    from tinyedge_tasks.ml.model_spec import build
    config = {"train.model": "autoencoder.h5", "train.width_multiplier": 1.0, "train.trust_model_code": False}
    inputs = keras.Input((640,))
    keras.Model(inputs, keras.layers.Dense(640)(keras.layers.Dense(8, activation="relu")(inputs))).save(
        tmp_path / "autoencoder.h5")
    with pytest.raises(TinyedgeError) as caught:
        build(config, tmp_path, keras, (640,), 2)
    message = str(caught.value)
    assert "autoencoder.h5 gives output (640,) with a linear last layer: not a classifier" in message
    assert "classifiers only" in message and "\n" not in message
    image = keras.Input((8, 8, 1))
    keras.Model(image, keras.layers.Conv2D(5, 1, activation="sigmoid")(image)).save(tmp_path / "detector.h5")
    with pytest.raises(TinyedgeError, match=r"detector.h5 gives output \(8, 8, 5\) .*not a classifier"):
        build({**config, "train.model": "detector.h5"}, tmp_path, keras, (8, 8, 1), 2)
    keras.Sequential([keras.Input((640,)), keras.layers.Dense(3, activation="softmax")]).save(tmp_path / "three.h5")
    with pytest.raises(TinyedgeError, match="gives 3 classes, but the data set .* 2 classes; make them agree"):
        build({**config, "train.model": "three.h5"}, tmp_path, keras, (640,), 2)


def test_24_a_split_without_some_class_is_warned_naming_class_and_sizes(tmp_path):
    """The hash split put no sample of one class into the test split, silently: a warning naming the class, the
    split sizes and what to do. A class of one sample is in one split only, so the other two lack it."""
    from conftest import make_project
    project = make_project(tmp_path / "p", {"dataset": {"source": "rare.npz"}})
    y = np.array([0] * 40 + [1] * 40 + [2])
    np.savez(project / "rare.npz", x=np.arange(len(y) * 64, dtype=np.int64).reshape(-1, 8, 8).astype(np.uint8),
             y=y)
    out = doit(project, "dataset").stdout
    counts = json.loads((project / "build/dataset/dataset.json").read_text())["counts"]
    lacking = [name for name in ("train", "val", "test") if counts[name][2] == 0]
    assert len(lacking) == 2
    sizes = ", ".join(f"{name} {sum(counts[name])}" for name in ("train", "val", "test"))
    for name in lacking:
        assert f"warning: the {name} split has no sample of class 2 (split sizes: {sizes})" in out
    assert out.count("has no sample of class") == 2 and "has no sample of class 0" not in out


@pytest.mark.parametrize("changes, x, words", [
    ({}, np.ones((40, 6, 5), np.float32),
     "dataset.input.transform: unit divides pixels (0..255), but the data set holds float features; set "
     "dataset.input.transform: raw"),
    ({"input": {"transform": "raw"}, "augment": {"flip": "horizontal"}}, np.ones((40, 6, 5), np.float32),
     "dataset.augment: flips, rotations, zoom and brightness change images, but the data set holds float features"),
    ({"input": {"transform": "raw"}}, np.where(np.arange(40)[:, None] == 7, np.nan, 1.0).astype(np.float32),
     "1 sample(s) of x hold NaN or infinity (the first: index 7); fix or drop them"),
    ({"input": {"transform": "raw"}}, np.ones(40, np.float32),
     "expected x as uint8 images (N,H,W[,C]) or float features (N, ...), and y (N,) labels; found x float32 (40,)"),
    ({"input": {"transform": "raw"}}, np.ones((40, 3), np.float32),
     "y holds float64 values that are not class labels (e.g. 0.5); tinyedge trains classifiers only"),
], ids=["pixel transform", "augment", "nan", "rank 0 samples", "regression targets"])
def test_24_float_features_refuse_what_only_pixels_mean(tmp_path, changes, x, words):
    """Float features are not pixels: /255, image augmentation and NaN are refused in one line each; so are
    regression targets as y (a classifier's labels are integers)."""
    from conftest import make_project, merge
    project = make_project(tmp_path / "p", {"dataset": merge({"source": "features.npz"}, changes)})
    y = np.arange(40) % 2 + (0.5 if "not class labels" in words else 0)
    np.savez(project / "features.npz", x=x, y=y)
    result = doit(project, "dataset", check=False)
    assert result.returncode != 0 and words in result.stdout + result.stderr
    assert not (project / "build/dataset/data.npz").exists()


def test_24_float_features_with_labels_as_a_column_are_a_data_set(tmp_path):
    """Features of another rank (N, 3, 4, 5) and y as a column (N, 1), as Keras examples keep labels."""
    from conftest import make_project
    project = make_project(tmp_path / "p", {"dataset": {"source": "f.npz", "input": {"transform": "raw"}}})
    x = np.random.default_rng(0).normal(size=(60, 3, 4, 5))   # float64: stored as float32
    np.savez(project / "f.npz", x=x, y=(np.arange(60) % 3)[:, None])
    doit(project, "dataset")
    with np.load(project / "build/dataset/data.npz") as data:
        assert data["x_train"].dtype == np.float32 and data["x_train"].shape[1:] == (3, 4, 5)
        assert sorted(set(data["y_train"].tolist())) == [0, 1, 2]
        stored = np.concatenate([data[f"x_{name}"] for name in ("train", "val", "test")])
    assert sorted(map(bytes, stored)) == sorted(map(bytes, x.astype(np.float32)))   # unchanged, only split


def test_24_zoo_cnn_on_flat_features_says_how_to_shape_them(tmp_path):
    from tinyedge_tasks.ml.keras_util import keras
    from tinyedge_tasks.ml.model_spec import build
    config = {"train.model": "tiny_cnn", "train.width_multiplier": 1.0, "train.trust_model_code": False}
    with pytest.raises(TinyedgeError, match=r"tiny_cnn is a convolutional network for \(height, width, channels\) "
                                            r"inputs, but the data set's samples are \(49, 10\); .*x\[\.\.\., None\]"):
        build(config, tmp_path, keras, (49, 10), 2)
