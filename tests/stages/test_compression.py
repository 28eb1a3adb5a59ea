"""Compression recipes on the example project: pruning (unstructured and structured), quantization schemes,
quantization-aware training, the per-layer error table, caching between them, and the errors a user meets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import doit, merge, ran
from tinyedge_tasks.engine.hashing import digest_file

FAST_PRUNE = {"sparsity": 0.5, "epochs": 2}


def edit(project: Path, changes: dict) -> None:
    """Apply `changes` to the project's manifest (None removes a key)."""
    path = project / "tinyedge.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), changes), sort_keys=False))


def artifact(project: Path, name: str) -> dict:
    return json.loads((project / "build" / name).read_text())


def snapshot(project: Path) -> dict:
    """Digest of every artifact under build/: what a failed run must leave untouched."""
    return {str(p.relative_to(project)): digest_file(p) for p in sorted((project / "build").rglob("*"))
            if p.is_file() and ".tmp" not in p.parts}


def failing(project: Path) -> str:
    result = doit(project, "calibrate", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    return output


# ---------------------------------------------------------------- structured pruning, in-process ---------

def _dead_half(model, keras) -> None:
    """Silence the first half of every hidden Conv2D's filters (zero kernel, bias, BatchNorm shift and mean):
    those are then the least-L1 filters, and removing them must not change what the model computes."""
    rng = np.random.default_rng(0)
    output_layer = [layer for layer in model.layers if layer.get_weights()][-1]
    for layer in model.layers:
        weights = layer.get_weights()
        kind = type(layer).__name__
        if kind == "Conv2D" and layer is not output_layer:
            half = weights[0].shape[-1] // 2
            weights[0][..., :half] = 0
            for bias in weights[1:]:
                bias[:half] = 0
        elif kind == "BatchNormalization":
            count = weights[0].shape[0]
            half = count // 2
            weights[0][:] = rng.uniform(0.5, 1.5, count)            # gamma
            weights[1][:] = rng.uniform(0.0, 0.2, count)            # beta
            weights[3][:] = rng.uniform(0.002, 0.01, count)         # variance: amplify
            weights[1][:half] = weights[2][:half] = 0               # dead channels stay exactly 0
        layer.set_weights(weights)


@pytest.mark.parametrize("name", ["tiny_cnn", "mobilenet"])
def test_structured_shrink_keeps_what_the_model_computes(name):
    from tinyedge_tasks.ml.keras_util import deterministic, keras
    from tinyedge_tasks.ml.layers import layer_table
    from tinyedge_tasks.stages.prune import shrink
    from tinyedge_tasks.ml.zoo import ZOO

    deterministic(1)
    model = ZOO[name](keras, (32, 32, 1), 10, 1.0)
    _dead_half(model, keras)
    small, plan = shrink(model, 0.5, keras)

    assert plan and all(kept == count // 2 for count, kept in plan.values())
    x = np.random.default_rng(2).random((8, 32, 32, 1), dtype=np.float32)
    channels = model.layers[-2].input_shape[-1]      # features before the output layer, (..., channels)
    features = keras.Model(model.inputs, model.layers[-2].output)(x).numpy().reshape(len(x), -1, channels)
    small_features = keras.Model(small.inputs, small.layers[-2].output)(x).numpy()
    assert not features[..., :channels // 2].any()
    assert features.std(axis=0).max() > 1e-3          # the comparison is not between constants
    np.testing.assert_allclose(small_features, features[..., channels // 2:].reshape(len(x), -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    before, after = layer_table(model), layer_table(small)
    assert sum(r["params"] for r in after) < 0.6 * sum(r["params"] for r in before)
    assert sum(r["macs"] for r in after) < 0.6 * sum(r["macs"] for r in before)


def test_structured_shrink_refuses_a_model_with_nothing_to_prune():
    from tinyedge_tasks.errors import TinyedgeError
    from tinyedge_tasks.ml.keras_util import keras
    from tinyedge_tasks.stages.prune import shrink

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax", name="logits")], name="linear")
    with pytest.raises(TinyedgeError, match=r"compression.prune.kind: .*nothing to prune.*'logits'"):
        shrink(model, 0.5, keras)


# ---------------------------------------------------------------- the pipeline, with real doit -----------

def test_unstructured_sparsity_zlib_and_cache(project_copy, built_project):
    edit(project_copy, {"compression": {"prune": FAST_PRUNE}})
    first = doit(project_copy, "calibrate")
    assert {"prune", "quantize", "calibrate"} <= ran(first) and "train" not in ran(first)
    report = artifact(project_copy, "prune/prune.json")
    assert set(report["sparsity"]) == {"conv1", "conv2", "logits"}
    assert all(abs(value - 0.5) <= 0.01 for value in report["sparsity"].values()), report["sparsity"]
    assert report["pruning"]["frequency"] < report["pruning"]["steps_per_epoch"]
    assert report["ratios"]["int8_zlib_bytes"] < 0.9 and report["ratios"]["int8_bytes"] == 1.0
    assert report["accuracy_drop_points"] == pytest.approx(
        100 * (report["before"]["test_accuracy"] - report["after"]["test_accuracy"]), abs=1e-3)
    assert report["before"]["test_accuracy"] == artifact(built_project, "train/metrics.json")["test_accuracy"]
    pruned_model = digest_file(project_copy / "build/prune/model.h5")

    edit(project_copy, {"compression": {"prune": {"sparsity": 0.6}}})
    second = doit(project_copy, "quantize")
    assert ran(second) == {"prune", "quantize"}
    assert all(abs(v - 0.6) <= 0.01 for v in artifact(project_copy, "prune/prune.json")["sparsity"].values())

    edit(project_copy, {"compression": {"quantize": {"scheme": "int8_per_tensor"}}})
    third = doit(project_copy, "quantize")
    assert ran(third) == {"quantize"}
    assert artifact(project_copy, "quantize/quantize.json")["scheme"] == "int8_per_tensor"

    edit(project_copy, {"compression": {"prune": {"sparsity": 0.5}, "quantize": {"scheme": "int8"}}})
    fourth = doit(project_copy, "quantize")
    assert ran(fourth) == {"prune", "quantize"}
    assert fourth.stdout.count("restored from cache") == 2
    assert digest_file(project_copy / "build/prune/model.h5") == pruned_model


def test_structured_prune_shrinks_bytes_and_arena(project_copy, built_project):
    edit(project_copy, {"compression": {"prune": {**FAST_PRUNE, "kind": "structured"}}})
    doit(project_copy, "calibrate")
    report = artifact(project_copy, "prune/prune.json")
    assert report["filters"] == {"conv1": {"before": 8, "after": 4}, "conv2": {"before": 16, "after": 8}}
    assert report["ratios"]["int8_bytes"] <= 2 / 3 and report["ratios"]["arena_bytes"] <= 2 / 3
    assert report["after"]["macs"] < report["before"]["macs"] / 2
    assert "accuracy_drop_points" in report and report["after"]["test_accuracy"] > 0.8
    before, after = artifact(built_project, "calibrate/calibration.json"), artifact(project_copy,
                                                                                     "calibrate/calibration.json")
    assert after["model_bytes"] <= 2 / 3 * before["model_bytes"]
    assert after["arena_bytes"] <= 2 / 3 * before["arena_bytes"]


def test_int16x8_runs_in_tflm(project_copy, built_project):
    edit(project_copy, {"compression": {"quantize": {"scheme": "int16x8"}}})
    result = doit(project_copy, "calibrate")
    assert ran(result) == {"quantize", "calibrate"}
    calibration = artifact(project_copy, "calibrate/calibration.json")
    assert calibration["input"]["dtype"] == "int16" and calibration["output"]["dtype"] == "int16"
    int8 = artifact(built_project, "calibrate/calibration.json")
    assert calibration["quantized_test_accuracy"] >= int8["quantized_test_accuracy"] - 0.02
    assert calibration["arena_bytes"] > int8["arena_bytes"]  # 16-bit activations take twice the room
    assert "int8 models only" in artifact(project_copy, "quantize/layer_error.json")["note"]


def test_layer_error_table(built_project):
    table = artifact(built_project, "quantize/layer_error.json")
    rows = {(row["layer"], row["op"]): row for row in table["layers"]}
    assert {("conv1", "CONV_2D"), ("conv2", "CONV_2D"), ("logits", "FULLY_CONNECTED")} <= set(rows)
    assert ("logits", "SOFTMAX") in rows  # the Dense layer's softmax activation, named after its Keras layer
    rows = {layer: row for (layer, op), row in rows.items() if op != "SOFTMAX"}
    for row in table["layers"]:
        assert row["rmse/scale"] == pytest.approx(row["rmse"] / row["scale"], rel=1e-4)
    assert 0 < rows["conv2"]["rmse/scale"] < 1   # int8 rounding costs less than one step on average
    assert artifact(built_project, "quantize/quantize.json")["worst_layer"] in rows


def test_quantization_aware_beside_post_training(project_copy):
    edit(project_copy, {"compression": {"quantize": {"aware": True, "aware_epochs": 1}}})
    result = doit(project_copy, "calibrate")
    assert ran(result) == {"quantize", "calibrate"}
    summary = artifact(project_copy, "quantize/quantize.json")
    assert 0.8 < summary["ptq_test_accuracy"] <= 1 and 0.8 < summary["qat_test_accuracy"] <= 1
    assert artifact(project_copy, "calibrate/calibration.json")["quantized_test_accuracy"] == \
        summary["qat_test_accuracy"]


def test_manifest_rejects_bad_recipes(project_copy):
    before = snapshot(project_copy)
    edit(project_copy, {"compression": {"prune": {"sparsity": 1.0}}})
    output = failing(project_copy)
    assert "compression.prune.sparsity: expected a fraction in [0, 1)" in output and "found 1.0" in output
    edit(project_copy, {"compression": {"prune": None, "quantize": {"scheme": "int16x8", "aware": True}}})
    output = failing(project_copy)
    assert "compression.quantize.aware: quantization-aware training cannot make scheme int16x8" in output
    assert snapshot(project_copy) == before


MODELS = '''
import tf_keras as keras

def elu_linear(input_shape, num_classes):
    """Nothing structured pruning could remove, and an ELU the 16x8 converter refuses."""
    return keras.Sequential([keras.Input(input_shape), keras.layers.ELU(), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax", name="logits")])

def with_exp(input_shape, num_classes):
    """Converts to int8, but TFLM has no int8 EXP kernel."""
    return keras.Sequential([keras.Input(input_shape), keras.layers.Activation("exponential"), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax", name="logits")])
'''


def test_errors_of_a_model_leave_the_build_alone(project_copy):
    (project_copy / "user_models.py").write_text(MODELS)
    edit(project_copy, {"train": {"model": "user_models:elu_linear", "epochs": 1}})
    doit(project_copy, "calibrate")
    built = snapshot(project_copy)

    edit(project_copy, {"compression": {"prune": {"kind": "structured", "epochs": 1}}})
    output = failing(project_copy)
    assert "compression.prune.kind: structured pruning found nothing to prune" in output
    assert snapshot(project_copy) == built

    edit(project_copy, {"compression": {"prune": None, "quantize": {"scheme": "int16x8"}}})
    output = failing(project_copy)
    assert "compression.quantize.scheme" in output and "16x8" in output and "ELU" in output
    assert snapshot(project_copy) == built

    edit(project_copy, {"train": {"model": "user_models:with_exp"}, "compression": {"quantize": {"scheme": "int8"}}})
    output = failing(project_copy)
    # the preflight (doit setup of train) finds it before training, with the message quantize would give
    assert "check: the untrained user_models:with_exp model" in output and "does not run in TFLM" in output
    assert "EXP" in output and "compression.quantize.scheme" in output
    assert {k: v for k, v in snapshot(project_copy).items() if "/train/" not in k} == \
        {k: v for k, v in built.items() if "/train/" not in k}
