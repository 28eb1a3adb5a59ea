"""Transfer learning without network: a keras.applications MobileNetV2 (alpha 0.35, 32x32) weights file made here,
loaded through `train.pretrained: <path>` as a downloaded file would be; the frozen phase, the fine-tuned top,
early stopping, class weights, augmentation; and the declared input transform in every rendering. One trained
project (conftest's transfer_project, shared with tests/test_transfer_backends.py); the schedule's own tests train
a tiny_cnn on 16x16 digits in-process."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import FINE_TUNED, TRANSFER, digits3, doit, make_project, merge, ran

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="module")
def models(transfer_project):
    """(the trained model, the weights file loaded into keras.applications' RGB backbone), loaded once."""
    from tinyedge_tasks.ml.keras_util import keras, load_model
    trained = load_model(transfer_project / "build/train/model.h5", "trained")
    original = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False,
                                              weights=str(transfer_project / "backbone.h5"))
    return trained, original


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_frozen_backbone_equals_the_file_and_only_the_top_and_head_changed(transfer_project, models):
    """The gray data set's first convolution holds the file's RGB kernel summed over its channels; every other
    frozen layer holds the file's weights exactly."""
    from tinyedge_tasks.ml.zoo import backbone_layers, first_conv, folded_kernel
    trained, rgb = models
    original = {layer.name: layer.get_weights() for layer in rgb.layers}
    stem = first_conv(rgb).name
    original[stem] = [folded_kernel(original[stem][0])]
    backbone = backbone_layers(trained)
    top = {layer.name for layer in backbone[-FINE_TUNED:]}
    with_weights = [layer for layer in backbone if layer.get_weights()]
    assert stem in {layer.name for layer in with_weights} and stem not in top
    for layer in with_weights:
        frozen = layer.name not in top or type(layer).__name__ == "BatchNormalization"  # BN stays in inference mode
        if frozen:
            assert _same(layer.get_weights(), original[layer.name]), f"frozen layer {layer.name} changed"
    metrics = json.loads((transfer_project / "build/train/metrics.json").read_text())
    assert metrics["schedule"]["best_epoch"] > metrics["epochs"], "the epoch kept is not a fine-tuning one"
    changed_top = [layer.name for layer in with_weights if layer.name in top
                   and not _same(layer.get_weights(), original[layer.name])]
    assert changed_top, "fine-tuning changed none of the unfrozen top layers"
    assert metrics["gray_to_rgb"] is True and metrics["pretrained"] == "backbone.h5"
    frozen_phase, fine_phase = metrics["schedule"]["phases"]
    assert frozen_phase["trainable"] == trained.get_layer("logits").count_params()
    assert fine_phase["trainable"] > frozen_phase["trainable"] and metrics["schedule"]["fine_tuned_layers"] == 10


def test_the_folded_first_convolution_sees_gray_as_the_rgb_backbone_does(models):
    """A gray image into the model's one-channel stem gives what the file's RGB stem gives on the image repeated
    to three channels (zero padding, stride and all): the model needs no channel-repeating operator."""
    from tinyedge_tasks.ml.keras_util import keras
    from tinyedge_tasks.ml.zoo import first_conv
    trained, rgb = models
    assert trained.input_shape == (None, 32, 32, 1) and first_conv(trained).get_weights()[0].shape[2] == 1
    assert not [layer.name for layer in trained.layers if type(layer).__name__ == "Concatenate"]
    gray = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    folded = keras.Model(trained.input, first_conv(trained).output)(gray).numpy()
    repeated = keras.Model(rgb.input, first_conv(rgb).output)(np.repeat(gray, 3, axis=-1)).numpy()
    assert np.abs(folded).max() > 0.1
    np.testing.assert_allclose(folded, repeated, rtol=0, atol=1e-5)


def test_the_head_was_trained(transfer_project, models):
    """The head differs from the one the same seed builds before training."""
    from tinyedge_tasks.ml import model_spec
    from tinyedge_tasks.ml.keras_util import deterministic, keras
    deterministic(42)
    fresh = model_spec.build(CONFIG, transfer_project, keras, (32, 32, 1), 3, "backbone.h5")
    assert not _same(fresh.get_layer("logits").get_weights(), models[0].get_layer("logits").get_weights())


def test_two_clean_runs_give_the_same_bytes(transfer_project, tmp_path):
    """train again from nothing (its outputs and the cache gone; the data set and preflight kept, unchanged)."""
    again = tmp_path / "again"
    shutil.copytree(transfer_project, again, ignore=shutil.ignore_patterns("train", "actions"))
    assert "train" in ran(doit(again, "train"))
    for name in ("model.h5", "metrics.json", "history.json", "augmented.npz"):
        assert (again / "build/train" / name).read_bytes() == (transfer_project / "build/train" / name).read_bytes()


def test_other_weights_retrain(transfer_project, tmp_path):
    """The weights file's digest is an input of train: other weights, another key, train runs again."""
    import h5py
    copy = tmp_path / "copy"
    shutil.copytree(transfer_project, copy)
    def status():
        lines = doit(copy, "list", "--status").stdout.splitlines()
        return {line.split()[1]: line.split()[0] for line in lines if len(line.split()) > 1}
    assert status()["train"] == "U"
    with h5py.File(copy / "backbone.h5", "r+") as weights:   # one weight of the file changed, still a weights file
        kernel = weights["Conv1/Conv1/kernel:0"]
        kernel[0, 0, 0, 0] += 1
    assert status()["train"] == "R" and status()["check"] == "U"   # the preflight builds without weights


def _tiny_data():
    x, y = digits3(150)
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]   # 16x16x1
    return {"x_train": x[:100], "y_train": y[:100], "x_val": x[100:130], "y_val": y[100:130]}


def _config(**train):
    return {"project.seed": 3, "train": {"pretrained": "none", "fine_tune": None, "early_stopping": None,
                                         "class_weight": None, "batch_size": 16, **train}}


def test_early_stopping_keeps_the_best_epoch():
    """A learning rate that overshoots: the best validation loss comes early, and its weights are kept."""
    from tinyedge_tasks.ml import schedule
    from tinyedge_tasks.ml.keras_util import as_float, deterministic, keras
    from tinyedge_tasks.ml.zoo import tiny_cnn
    from tinyedge_tasks.preprocess import UNIT
    deterministic(3)
    data = _tiny_data()
    model = tiny_cnn(keras, (16, 16, 1), 3)
    history, record = schedule.fit(model, data, _config(epochs=8, learning_rate=0.3,
                                                        early_stopping={"patience": 8, "monitor": "val_loss"}),
                                   UNIT, None, lambda line: None)
    losses = history["val_loss"]
    assert record["best_epoch"] == int(np.argmin(losses)) + 1 < len(losses)
    kept = model.evaluate(as_float(data["x_val"], UNIT), data["y_val"], verbose=0)[0]
    assert kept == pytest.approx(losses[record["best_epoch"] - 1], rel=1e-4)
    assert kept != pytest.approx(losses[-1], rel=1e-3)


def test_augmentation_changes_training_images_only():
    from tinyedge_tasks.ml import schedule
    from tinyedge_tasks.ml.keras_util import accuracy, deterministic, keras
    from tinyedge_tasks.ml.zoo import tiny_cnn
    from tinyedge_tasks.preprocess import UNIT
    deterministic(3)
    data = _tiny_data()
    val_before = data["x_val"].copy()
    augment = schedule.augmenter({"flip": "both", "rotate": 30, "zoom": 0.2, "translate": 0.2, "brightness": 0.5,
                                  "contrast": 0.5}, 3)
    model = tiny_cnn(keras, (16, 16, 1), 3)
    history, _ = schedule.fit(model, data, _config(epochs=2, learning_rate=0.01, class_weight="balanced"),
                              UNIT, augment, lambda line: None)
    assert np.array_equal(data["x_val"], val_before)
    # the validation figures Keras reported are those of the untouched validation images
    assert history["val_accuracy"][-1] == pytest.approx(accuracy(model, data["x_val"], data["y_val"], UNIT))
    samples = schedule.augmented_samples(data["x_train"], augment)
    assert samples.shape == (schedule.GRID, 16, 16, 1) and not np.array_equal(samples, data["x_train"][:schedule.GRID])


def test_balanced_class_weights():
    from tinyedge_tasks.ml.schedule import balanced
    weights = balanced(np.array([0] * 90 + [1] * 10))
    assert weights == {0: pytest.approx(100 / 180), 1: pytest.approx(100 / 20)}


def test_symmetric_input_table_and_micropython_preprocessing_agree_with_numpy():
    from tinyedge_tasks.backends.micropython import generate
    from tinyedge_tasks.preprocess import PRESETS, UNIT, input_table, to_float, transform_of
    symmetric = transform_of({"transform": "symmetric"})
    assert symmetric == PRESETS["symmetric"] == transform_of({"scale": 1 / 127.5, "offset": -1.0})
    pixels = np.arange(256, dtype=np.uint8)
    assert to_float(pixels, symmetric).min() == -1.0 and to_float(pixels, symmetric).max() == 1.0
    scale, zero_point = 2 / 255, -1
    table = input_table(scale, zero_point, "int8", symmetric)
    expected = np.clip(np.round((pixels / 127.5 - 1) / scale) + zero_point, -128, 127)
    assert np.array_equal(table, expected) and table[0] == -128 and table[255] == 127
    # the default is the table tinyedge always made, bit for bit
    assert np.array_equal(input_table(1 / 255, -128, "int8", UNIT),
                          np.clip(np.round(np.arange(256) / 255.0 / (1 / 255)) - 128, -128, 127))
    source = generate.preprocess_source(32, 32, 3, {"dtype": "int8", "scale": scale, "zero_point": zero_point},
                                        symmetric)
    namespace: dict = {}
    exec(source.split("\ndef ")[0], namespace)   # the module's constants
    assert namespace["TABLE"] == table.astype(np.int8).tobytes()
    assert "(pixel / 127.5 - 1)" in source


@pytest.mark.parametrize("changes,key,words", [
    ({"dataset": {"input": {"transform": "signed"}}}, "dataset.input.transform", "unit"),
    ({"dataset": {"input": {"offset": 0.5}}}, "dataset.input.offset", "needs a scale"),
    ({"train": {"pretrained": "missing.h5"}}, "train.pretrained", "does not exist"),
    ({"train": {"width_multiplier": 0.3}}, "train.width_multiplier", "0.35"),
    ({"dataset": {"input": {"transform": "unit"}}}, "dataset.input", "symmetric"),
    ({"train": {"model": "tiny_cnn"}}, "train.pretrained", "no pre-trained backbone"),
    ({"train": {"fine_tune": {"fraction": 0.5}}}, "train.fine_tune", "exactly one of layers"),
])
def test_bad_transfer_settings_are_named(tmp_path, changes, key, words):
    project = make_project(tmp_path / "bad", merge(TRANSFER, changes))
    x, y = digits3(30)
    np.savez(project / "digits3.npz", x=x, y=y)
    (project / "backbone.h5").write_bytes(b"")
    result = doit(project, "list", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and key in output and words in output and "Traceback" not in output


CONFIG = {"train.model": "mobilenet_v2", "train.width_multiplier": 0.35, "train.trust_model_code": False}


def test_fine_tune_layers_beyond_the_backbone(tmp_path):
    from tinyedge_tasks.errors import TinyedgeError
    from tinyedge_tasks.ml import model_spec, schedule
    from tinyedge_tasks.ml.keras_util import keras
    model = model_spec.build(CONFIG, tmp_path, keras, (32, 32, 3), 2)
    with pytest.raises(TinyedgeError, match=r"train.fine_tune.layers: 1000, but the mobilenet_v2_0.35 backbone has "
                                            r"\d+ layers"):
        schedule.unfreeze_top(model, {"layers": 1000, "fraction": None})


def test_imagenet_offline_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    from tinyedge_tasks.errors import TinyedgeError
    from tinyedge_tasks.ml import model_spec
    from tinyedge_tasks.ml.keras_util import keras
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")   # no network, whether this machine has one or not
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))           # and a Keras cache without the weights
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"   # 32x32: Keras takes 224's
    with pytest.raises(TinyedgeError) as error:
        model_spec.build(CONFIG, tmp_path, keras, (32, 32, 1), 2, "imagenet")
    message = str(error.value)
    assert f"cannot download {name}" in message and str(tmp_path / "models" / name) in message
    assert "\n" not in message


def test_structured_pruning_refuses_residual_adds_by_name(tmp_path):
    from tinyedge_tasks.errors import TinyedgeError
    from tinyedge_tasks.ml import model_spec
    from tinyedge_tasks.ml.keras_util import keras
    from tinyedge_tasks.stages.prune import shrink
    model = model_spec.build(CONFIG, tmp_path, keras, (32, 32, 3), 2)
    with pytest.raises(TinyedgeError, match="residual Add 'block_2_add'.*kind: unstructured"):
        shrink(model, 0.5, keras)


def test_a_model_file_expecting_another_input_range_is_warned(tmp_path):
    """A pre-trained model fed another range than it learnt on still runs and quietly loses accuracy: a warning
    naming what says so (a rescaling layer of its own, keras.applications MobileNet's layers, its first
    BatchNormalization's statistics) and the transform to set; none when the transform agrees, none for a zoo
    model (trained here, on that range)."""
    from tinyedge_tasks.ml import input_range
    from tinyedge_tasks.ml.keras_util import keras
    pixels = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    inputs = keras.Input((8, 8, 1))
    normed = keras.Model(inputs, keras.layers.BatchNormalization(name="first_bn")(
        keras.layers.Conv2D(4, 3, name="conv")(inputs)))
    conv = keras.Model(inputs, normed.get_layer("conv").output).predict(pixels.astype(np.float32), verbose=0)
    bn = normed.get_layer("first_bn")   # statistics learnt on raw pixels, 0..255
    bn.set_weights([bn.gamma.numpy(), bn.beta.numpy(), conv.mean(axis=(0, 1, 2)), conv.var(axis=(0, 1, 2))])

    def said(model, transform, spec="model.h5"):
        return input_range.warning(model, spec, tmp_path, pixels, {"transform": transform})

    line = said(normed, "unit")
    assert line.startswith("warning: train.model: model.h5: its first BatchNormalization (first_bn) learnt inputs "
                           "whose spread is 255 times larger than this data set gives it")
    assert "dataset.input.transform: unit gives [0, 1]; set dataset.input.transform: raw ([0, 255])" in line
    assert said(normed, "raw") is None and said(normed, "unit", spec="tiny_cnn") is None
    rescaled = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255, name="scale"),
                                 keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    assert "its first layer scale (Rescaling) rescales the input itself" in said(rescaled, "symmetric")
    assert said(rescaled, "raw") is None
    mobilenet = keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=2)
    line = input_range.warning(mobilenet, "person.h5", tmp_path, np.zeros((2, 32, 32, 3), np.uint8),
                               {"transform": "unit"})
    assert "keras.applications MobileNet (v1)'s, trained on [-1, 1]" in line
    assert line.endswith("set dataset.input.transform: symmetric ([-1, 1]) if that is how it was trained")
    assert input_range.warning(mobilenet, "person.h5", tmp_path, np.zeros((2, 32, 32, 3), np.uint8),
                               {"transform": "symmetric"}) is None
    nested = keras.Sequential([keras.Input((32, 32, 3)), mobilenet])   # the backbone as one layer
    assert "MobileNet (v1)'s" in input_range.warning(nested, "person.h5", tmp_path, np.zeros((2, 32, 32, 3), np.uint8),
                                                     {"transform": "unit"})


def _features(count: int, shape: tuple, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of float features around -3..3 (a band of rows per class), far from pixels: divided by 255
    they would all be near zero, and the model at chance."""
    rng = np.random.default_rng(seed)
    y = np.arange(count) % 3
    x = rng.normal(0, 0.5, (count, *shape)).astype(np.float32)
    rows = shape[0] // 3
    for c in range(3):
        x[y == c, c * rows:(c + 1) * rows] += 2.5
    return x, y


def test_float_features_flow_through_train_quantize_calibrate_into_the_project(tmp_path):
    """An .npz of float features (here 12x8x1 spectrogram-like frames) is a data set: kept float32 and unresized,
    trained and quantized with the model's input scale, measured in TFLM, and codegen/project.json says what the
    firmware is given (float32 features of that shape) and how they become the int8 tensor; the report draws them."""
    from tinyedge_tasks.preprocess import quantize
    project = make_project(tmp_path / "p", {"dataset": {"source": "frames.npz", "input": {"transform": "raw"}},
                                            "train": {"epochs": 6}})
    x, y = _features(240, (12, 8, 1))
    np.savez(project / "frames.npz", x=x, y=y)
    doit(project)
    build = project / "build"
    assert 'alt="class counts and sample images"' in (build / "report/report.html").read_text()
    summary = json.loads((build / "dataset/dataset.json").read_text())
    assert summary["input"] == {"shape": [12, 8, 1], "dtype": "float32"}
    with np.load(build / "dataset/data.npz") as data:
        assert data["x_train"].dtype == np.float32 and data["x_train"].shape[1:] == (12, 8, 1)
        x_test = data["x_test"]
    calibration = json.loads((build / "calibrate/calibration.json").read_text())
    assert calibration["input"]["shape"] == [1, 12, 8, 1]
    assert calibration["quantized_test_accuracy"] > 0.9 and calibration["accuracy_drop_points"] < 5
    quant = calibration["input"]
    record = json.loads((build / "codegen/project.json").read_text())["input"]
    assert record == {"kind": "features", "shape": [12, 8, 1], "given": "float32",
                      "transform": {"divisor": 1.0, "offset": 0.0}, "dtype": "int8", "scale": quant["scale"],
                      "zero_point": quant["zero_point"]}
    q = quantize(x_test, quant, (1.0, 0.0))
    expected = np.clip(np.round(x_test.astype(np.float64) / quant["scale"]) + quant["zero_point"], -128, 127)
    assert q.dtype == np.int8 and np.array_equal(q, expected) and len(np.unique(q)) > 50


@pytest.mark.parametrize("backend", ["c", "micropython"])
def test_rank_one_features_run_in_the_code_generators(tmp_path, backend):
    """Features of rank one (N, 24: a sensor window) through a user function, the generated code (the C backend's
    host build, the MicroPython unix port) and the TFLM reference: the same quantized inputs reach both, so their
    outputs agree."""
    project = make_project(tmp_path / "p", {"dataset": {"source": "windows.npz", "input": {"transform": "raw"}},
                                            "train": {"model": "dense:model", "epochs": 8},
                                            "firmware": {"backend": backend}})
    (project / "dense.py").write_text(
        "import tf_keras as keras\n"
        "def model(input_shape, num_classes):\n"
        "    return keras.Sequential([keras.layers.Input(input_shape), keras.layers.Dense(16, activation='relu'),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax')])\n")
    x, y = _features(240, (24,), seed=1)
    np.savez(project / "windows.npz", x=x, y=y)
    doit(project, "calibrate")
    calibration = json.loads((project / "build/calibrate/calibration.json").read_text())
    assert calibration["input"]["shape"] == [1, 24] and calibration["quantized_test_accuracy"] > 0.9
    assert calibration["differing_samples"] == 0
    record = json.loads((project / "build/codegen/project.json").read_text())["input"]
    assert record["kind"] == "features" and record["shape"] == [24]


def test_a_model_file_fed_features_of_another_scale_is_warned(tmp_path):
    """A DS-CNN-like model file fed MFCC features 100 times smaller than it learnt on: the scale to set."""
    from tinyedge_tasks.ml import input_range
    from tinyedge_tasks.ml.keras_util import keras
    x = np.random.default_rng(0).normal(size=(64, 24)).astype(np.float32)
    inputs = keras.Input((24,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(6, name="d")(inputs)))
    dense = keras.Model(inputs, model.get_layer("d").output).predict(x * 100, verbose=0)   # learnt on x * 100
    bn = model.get_layer("bn")
    bn.set_weights([bn.gamma.numpy(), bn.beta.numpy(), dense.mean(axis=0), dense.var(axis=0)])
    line = input_range.warning(model, "kws.h5", tmp_path, x, {"transform": "raw"})
    assert "its first BatchNormalization (bn) learnt inputs whose spread is 100 times larger" in line
    assert line.endswith("set dataset.input.scale: 100 (now 1)")
    assert input_range.warning(model, "kws.h5", tmp_path, x, {"scale": 100.0}) is None
