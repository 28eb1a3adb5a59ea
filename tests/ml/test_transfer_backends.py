"""The transfer models on every backend, not only TFLM: conftest's trained MobileNetV2 0.35 (grayscale data, its
first convolution folded over RGB) after `doit quantize`, and a MobileNet v1 0.25 loaded from a weights file, int8,
through the C backend (host gcc on every image of the data set, QEMU's Cortex-M4 on a few) and MicroPython (the
unix port, viper), byte for byte against the TFLM runtime; ESP-DL (esp-ppq, its simulator) and quantization-aware
training through doit."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import backbone_file, doit, ran, tflm_outputs

from tinyedge_tasks.backends.c.codegen import memory_plan
from tinyedge_tasks.backends.c.generate import constant_bytes, generate, lower_model
from tinyedge_tasks.backends.micropython import generate as micropython
from tinyedge_tasks.backends.micropython import unix
from tinyedge_tasks.preprocess import PRESETS, input_table
from tinyedge_tasks.tflite import model_file
from tinyedge_tasks.toolchains import qemu
from tinyedge_tasks.toolchains.host import compile_host, run_host

SYMMETRIC = PRESETS["symmetric"]
QEMU_SAMPLES = 4


def edited(project: Path, folder: Path, section: str, values: dict) -> Path:
    """A copy of `project` (its build and cache) with `values` set in one manifest section."""
    shutil.copytree(project, folder)
    manifest = yaml.safe_load((folder / "tinyedge.yaml").read_text())
    manifest.setdefault(section, {}).update(values)
    (folder / "tinyedge.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def quantized(transfer_project, tmp_path_factory) -> Path:
    """The trained transfer project after `doit quantize` (tflm, int8)."""
    project = tmp_path_factory.mktemp("quantized") / "project"
    shutil.copytree(transfer_project, project)
    assert ran(doit(project, "quantize")) == {"quantize"}
    return project


def test_quantization_aware_training_on_the_transfer_model(quantized, tmp_path):
    """tfmot wraps the backbone's own layers (a flat model, no nested one) and what train froze stays frozen (tfmot's
    wrapper counts a frozen kernel as trainable: the backbone was trained at 0.01 and collapsed); QAT goes on at the
    fine-tuning rate. The QAT model converts and runs in TFLM (quantize checks it runs and measures it), beside
    post-training quantization of the same float model."""
    from tinyedge_tasks.ml.keras_util import load_model
    from tinyedge_tasks.stages.quantize import aware_model
    float_model = load_model(quantized / "build/train/model.h5", "the float model", False)
    trainable = sum(int(np.prod(w.shape)) for w in float_model.trainable_weights)
    assert 0 < trainable < float_model.count_params() / 2
    assert sum(int(np.prod(w.shape)) for w in aware_model(float_model).trainable_weights) == trainable
    project = edited(quantized, tmp_path / "qat", "compression",
                     {"quantize": {"scheme": "int8", "aware": True, "aware_epochs": 1}})
    result = doit(project, "quantize")
    assert ran(result) == {"quantize"} and "1 epochs at learning rate 0.0001" in result.stdout
    summary = json.loads((project / "build/quantize/quantize.json").read_text())
    assert summary["aware"] is True and summary["bytes"] == (project / "build/quantize/model.tflite").stat().st_size
    assert 0 <= summary["ptq_test_accuracy"] <= 1 and 0 <= summary["qat_test_accuracy"] <= 1
    qat, ptq = (folder / "build/quantize/model.tflite" for folder in (project, quantized))
    assert qat.read_bytes() != ptq.read_bytes()


def _images(project: Path) -> np.ndarray:
    """Every image of the data set (uint8): training, validation and test splits."""
    with np.load(project / "build/dataset/data.npz") as data:
        return np.concatenate([data["x_train"], data["x_val"], data["x_test"]])


def _mobilenet_v1(folder: Path, images: np.ndarray) -> bytes:
    """keras.applications' MobileNet 0.25 from a weights file, grayscale input (folded), a new 3-class head, int8."""
    from tinyedge_tasks.ml import model_spec
    from tinyedge_tasks.ml.keras_util import as_float, deterministic, keras
    from tinyedge_tasks.tflite.convert import convert
    backbone_file(folder / "v1.h5", model="mobilenet_v1", alpha=0.25)
    deterministic(5)
    config = {"train.model": "mobilenet_v1", "train.width_multiplier": 0.25, "train.trust_model_code": False}
    model = model_spec.build(config, folder, keras, (32, 32, 1), 3, "v1.h5")
    return convert(model, as_float(images[:30], SYMMETRIC), "int8")


@pytest.fixture(scope="module")
def models(quantized, tmp_path_factory) -> dict[str, bytes]:
    images = _images(quantized)
    return {"mobilenet_v2": (quantized / "build/quantize/model.tflite").read_bytes(),
            "mobilenet_v1": _mobilenet_v1(tmp_path_factory.mktemp("v1"), images)}


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v1"])
def test_c_backend_runs_the_transfer_model_as_tflm_does(name, models, quantized, tmp_path):
    """No CONCATENATION (the gray input is folded into the first convolution): the C lowering takes the whole
    graph; host build on every image and the Cortex-M4 build in QEMU on a few give TFLM's bytes."""
    tflite = models[name]
    model = lower_model(tflite)
    assert {op.op for op in model.ops} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    assert ("ADD" in {op.op for op in model.ops}) == (name == "mobilenet_v2")   # v2's residual Adds
    inputs = input_table(model.input.scale, model.input.zero_point, "int8", SYMMETRIC)[_images(quantized)]
    expected = tflm_outputs(tflite, inputs)
    src = tmp_path / "src"
    src.mkdir()
    for file_name, text in generate(model).items():
        (src / file_name).write_text(text)
    got, _ = run_host(compile_host(src, tmp_path / "host"), inputs)
    assert got.shape == expected.shape == (90, 3) and int((got != expected).sum()) == 0
    assert len({row.tobytes() for row in expected}) > 10   # the outputs vary: the comparison is not of constants
    on_m4 = qemu.run(qemu.compile_firmware(src, tmp_path / "m4"), inputs[:QEMU_SAMPLES])
    assert np.array_equal(on_m4.outputs, expected[:QEMU_SAMPLES])
    assert 0 < constant_bytes(model) < len(tflite) and memory_plan(model)["arena_bytes"] > 0


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v1"])
def test_micropython_runs_the_transfer_model_as_tflm_does(name, models, quantized):
    """The generated package in the unix port (viper kernels, its own symmetric input table) on uint8 images."""
    tflite = models[name]
    files, model = micropython.model_files(tflite)
    quant, _ = model_file.io_details(model_file.interpreter(tflite))
    _, height, width, channels = quant["shape"]
    files["te_preprocess.py"] = micropython.preprocess_source(width, height, channels, quant, SYMMETRIC)
    images = _images(quantized)[:16]
    inputs = input_table(model.input.scale, model.input.zero_point, "int8", SYMMETRIC)[images]
    got, _ = unix.run(files, images, "viper", 300, "test")
    assert channels == 1 and np.array_equal(got, tflm_outputs(tflite, inputs))


def test_espdl_quantizes_and_simulates_the_transfer_model(transfer_project, tmp_path):
    """firmware.backend espdl: the Keras model to ONNX (checked against Keras on the test split), esp-ppq int8 with
    16 calibration samples (two batches: esp-ppq asserts two calibration steps; its layer-wise error analysis runs
    the graph twice per op and batch, the cost of this test), its simulator on the test split, the ESP-IDF
    project; no operator refused, and the one-channel input the folded model takes."""
    project = edited(transfer_project, tmp_path / "espdl", "firmware", {"backend": "espdl"})
    manifest = yaml.safe_load((project / "tinyedge.yaml").read_text())
    manifest["compression"]["calibrate"]["samples"] = 16
    (project / "tinyedge.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    result = doit(project, "codegen")
    assert {"quantize", "calibrate", "codegen"} <= ran(result) and "train" not in ran(result)
    onnx_check = re.search(r"max \|ONNX - Keras\| (\S+), argmax agreement (\S+) on (\d+) test samples", result.stdout)
    assert onnx_check and float(onnx_check[1]) < 1e-4 and onnx_check[2] == "1.000", result.stdout
    from tinyedge_tasks.artifacts import Calibration
    record = Calibration.from_json((project / "build/calibrate/calibration.json").read_text())
    with np.load(project / "build/dataset/data.npz") as data:
        assert record.test_samples == len(data["y_test"]) == np.sum(record.confusion) == int(onnx_check[3])
    assert record.runtime == "esp-ppq TorchExecutor (esp32)" and record.input["shape"] == [1, 32, 32, 1]
    assert {"Add", "Conv", "ReduceMean"} <= set(record.operators) and "Concat" not in record.operators
    assert record.model_bytes == (project / "build/quantize/model.espdl").stat().st_size
    assert (project / "build/codegen/firmware/src/model.espdl").is_file()
