"""firmware.backend: espdl, end to end on the built example (one real doit run, esp-ppq in its child process),
and the refusals on small graphs."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import yaml

from conftest import doit, one_line_error, private_copy, ran
from frames import FakeBoard, fake_board
from tinyedge_tasks.errors import TinyedgeError

import esp_ppq  # noqa: E402,F401  the espdl extra (tests/setup.sh installs it): missing, the file fails, never skips

BACKEND_ROWS = {"quantize", "calibrate", "codegen"}
COMMON_ROWS = {"dataset", "train", "prune"}


def set_backend(project, backend: str) -> None:
    manifest = yaml.safe_load((project / "tinyedge.yaml").read_text())
    manifest["firmware"]["backend"] = backend
    (project / "tinyedge.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


@pytest.fixture(scope="module")
def espdl_project(built_project, tmp_path_factory):
    """A copy of the built (tflm) example switched to espdl and built with plain `doit`: (folder, doit result)."""
    project = tmp_path_factory.mktemp("espdl") / "project"
    shutil.copytree(built_project, project)
    set_backend(project, "espdl")
    return project, doit(project)


def test_switching_backend_reruns_only_what_differs_and_switching_back_restores(espdl_project):
    project, first = espdl_project
    assert BACKEND_ROWS <= ran(first) and not COMMON_ROWS & ran(first)
    assert "ESP-DL w8a8 (minmax, esp32) simulated accuracy" in first.stdout
    for backend in ("tflm", "espdl"):
        set_backend(project, backend)
        result = doit(project)
        assert BACKEND_ROWS <= ran(result) and not COMMON_ROWS & ran(result)
        assert result.stdout.count("restored from cache") == len(ran(result)), result.stdout
        assert "stored in cache" not in result.stdout
    assert (project / "build/codegen/firmware/src/model.espdl").is_file()


def test_calibration_is_the_common_record_from_the_simulator(espdl_project):
    from tinyedge_tasks.artifacts import Calibration
    project, _ = espdl_project
    record = Calibration.from_json((project / "build/calibrate/calibration.json").read_text())
    with np.load(project / "build/dataset/data.npz") as data:
        assert record.test_samples == len(data["y_test"]) == np.sum(record.confusion)
    assert record.runtime == "esp-ppq TorchExecutor (esp32)"
    assert record.quantized_test_accuracy > 0.9 and record.accuracy_drop_points < 2
    assert record.model_bytes == (project / "build/quantize/model.espdl").stat().st_size
    assert record.input["dtype"] == "int8" and record.input["scale"] == 2.0 ** record.input["exponent"]
    assert json.loads((project / "build/calibrate/espdl.json").read_text())["warnings"] == []
    budget = json.loads((project / "build/codegen/budget.json").read_text())
    assert budget["model_bytes"] == record.model_bytes and budget["arena"]["measured_min_bytes"] == record.arena_bytes


def test_preflight_quantizes_the_untrained_model_as_codegen_budgets_it(espdl_project):
    """Issue 24: `doit check` on espdl is a real preflight: ESP-DL's operators, the .espdl bytes and activations
    (the same as codegen's for the trained model: weights change neither) and ESP-DL's own runtime in flash."""
    project, _ = espdl_project
    set_backend(project, "espdl")
    checked = doit(project, "-a", "-s", "check")
    assert "no preflight" not in checked.stdout and "fits esp32cam: arena in" in checked.stdout, checked.stdout
    preflight = json.loads((project / "build/check/check.json").read_text())
    budget = json.loads((project / "build/codegen/budget.json").read_text())
    assert preflight["arena"] == budget["arena"] and preflight["flash"] == budget["flash"]
    assert "flash.runtime.espdl" in budget["flash"]["runtime_source"]


def test_two_clean_runs_give_identical_espdl(espdl_project, tmp_path):
    """The doit run's esp-ppq job, run again in a fresh child process into another folder."""
    from tinyedge_tasks.backends.espdl.child import run_child
    project, _ = espdl_project
    job = json.loads((project / "cache/espdl/quantize.json").read_text())
    job.update(onnx=str(project / "build/quantize/model.onnx"), out=str(tmp_path), work=str(tmp_path / "work"))
    run_child(job, tmp_path / "job.json", "test")
    first = (project / "build/quantize/model.espdl").read_bytes()
    assert (tmp_path / "model.espdl").read_bytes() == first and len(first) > 1000
    made = json.loads((project / "build/quantize/ppq.json").read_text())
    assert json.loads((tmp_path / "ppq.json").read_text()) == {k: v for k, v in made.items()
                                                               if k not in ("layer_names", "onnx")}
    assert (tmp_path / "errors.json").read_bytes() == (project / "build/quantize/errors.json").read_bytes()


def test_one_process_exports_the_same_onnx_twice(tmp_path):
    """tf2onnx names the nodes it inserts from a process-wide counter: `doit`, whose check stage exports first, and
    `doit quantize` alone gave .espdl files 32 bytes apart until export restarted it."""
    import tf_keras as keras

    from tinyedge_tasks.backends.espdl import onnx_export
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="head")])
    for name in ("first", "second"):
        onnx_export.export(model, tmp_path / f"{name}.onnx", "quantize")
    assert (tmp_path / "first.onnx").read_bytes() == (tmp_path / "second.onnx").read_bytes()


def test_calibrate_keeps_what_the_board_must_output(espdl_project):
    """The example ends in a float Softmax: outputs.npy is ESP-DL's own Softmax over esp-ppq's int8 logits, float32,
    each row a distribution whose log-ratios are whole steps of the logits' 2^exponent; calibrate's accuracy is
    these outputs' argmax."""
    from tinyedge_tasks.artifacts import Calibration
    project, _ = espdl_project
    outputs = np.load(project / "build/calibrate/outputs.npy")
    record = Calibration.from_json((project / "build/calibrate/calibration.json").read_text())
    with np.load(project / "build/dataset/data.npz") as data:
        labels = data["y_test"]
    assert outputs.dtype == np.float32 and outputs.shape == (len(labels), 10) and np.isfinite(outputs).all()
    assert np.allclose(outputs.sum(axis=1), 1, atol=1e-5)
    assert np.mean(np.argmax(outputs, axis=1) == labels) == record.quantized_test_accuracy
    said = json.loads((project / "build/calibrate/espdl.json").read_text())["board_outputs"]
    exponent = re.fullmatch(r"\S+ \(int8, 2\^(-\d+)\), through ESP-DL's Softmax", said)
    assert exponent, said
    steps = np.log(outputs[:, 1:] / outputs[:, :1]) / 2.0 ** int(exponent[1])
    assert np.abs(steps - np.round(steps)).max() < 1e-3 and len(np.unique(np.round(steps))) > 10


def test_board_outputs_follow_espdl_softmax_arithmetic():
    """ESP-DL 3.3.9's Softmax (dl_module_softmax.hpp): int8 through a table of expf(2^e * q), no maximum subtracted,
    so logits at 2^0 overflow (exp(127) > 3.4e38) to NaN on the board, which calibrate warns of; int16 subtracts the
    maximum first; an integer output is the output."""
    from tinyedge_tasks.backends.espdl.evaluate import board_outputs, overflow_warning
    logits = np.array([[10, -3, 0], [127, 0, -128]], np.int8)

    def tensor(exponent: int, dtype: str = "int8", softmax=True) -> dict:
        return {"name": "logits", "dtype": dtype, "exponent": exponent, "softmax": {"axis": -1} if softmax else None}
    scaled = np.exp(logits * 0.25)
    out = board_outputs(logits, tensor(-2))
    assert out.dtype == np.float32 and np.allclose(out, scaled / scaled.sum(1, keepdims=True), rtol=1e-6, atol=0)
    assert overflow_warning(out, tensor(-2)) is None
    over = board_outputs(logits, tensor(0))
    assert np.isfinite(over[0]).all() and np.isnan(over[1]).any()
    said = overflow_warning(over, tensor(0))
    assert "overflows on 1 of 2 test samples" in said and "2^0" in said and "sixteen_bit_layers" in said
    wide = board_outputs(np.array([[30000, 0, -30000]], np.int16), tensor(-8, "int16"))
    assert np.isfinite(wide).all() and wide[0, 0] == np.float32(1 / (1 + np.exp(-30000 / 256) + np.exp(-60000 / 256)))
    assert board_outputs(logits, tensor(-2, softmax=False)) is logits


def test_validate_takes_float_outputs_to_the_ulp_and_names_a_step_off(espdl_project, tmp_path):
    """No ESP-DL runtime on this host and no board: a fake board (tests/frames.py) on a loopback socket sends
    calibrate's outputs with every value one float32 step up (as the board's expf may give): they agree. A board
    whose sample 3 has class 2 one percent off (far less than one logit step) is named."""
    project = private_copy(espdl_project[0], tmp_path)

    def ulp(index, output):
        output[:] = np.nextafter(output, np.float32(2))
    board = FakeBoard(fake_board(project, change=ulp))
    try:
        result = doit(project, "validate", "--port", board.url, "--samples", "12")
    finally:
        board.close()
    record = json.loads((project / "build/validate/validate.json").read_text())
    assert record["comparison"] == "float32 within 16 ulps" and record["agreeing_outputs"] == 12
    assert record["identical_outputs"] == 0 and 0 < record["largest_difference"] < 1e-6, result.stdout
    assert record["link"]["bytes_from_device_per_sample"] == 12 + 16 + 40

    def off(index, output):
        if index == 3:
            output[2] *= np.float32(1.01)
    board = FakeBoard(fake_board(project, change=off))
    try:
        line = one_line_error(doit(project, "validate", "--port", board.url, "--samples", "6", check=False))
    finally:
        board.close()
    assert line.startswith("the board's outputs differ from calibrate's: first at sample 3, output 2 (1 samples")


def test_generated_project_reads_back(espdl_project):
    """idf_component.yml through idf-component-manager, platformio.ini through PlatformIO, the model byte for byte."""
    from idf_component_tools.manager import ManifestManager
    from platformio.project.config import ProjectConfig

    from tinyedge_tasks.artifacts import ProjectIndex
    project, _ = espdl_project
    firmware = project / "build/codegen/firmware"
    manifest = ManifestManager(str(firmware / "src"), "main").load()
    pins = {requirement.name: requirement.version_spec for requirement in manifest.requirements}
    assert pins["espressif/esp-dl"] == "==3.3.9" and pins["espressif/esp32-camera"] == "==2.1.5"
    config = ProjectConfig(str(firmware / "platformio.ini"))
    assert config.envs() == ["esp32cam"] and config.get("env:esp32cam", "framework") == ["espidf"]
    assert (firmware / "src/model.espdl").read_bytes() == (project / "build/quantize/model.espdl").read_bytes()
    cmake = (firmware / "src/CMakeLists.txt").read_text()
    assert "target_add_aligned_binary_data(${COMPONENT_LIB} ${CMAKE_CURRENT_SOURCE_DIR}/model.espdl BINARY)" in cmake
    assert not [line for line in cmake.splitlines() if "EMBED_FILES" in line and not line.startswith("#")]
    assert 'CONFIG_IDF_TARGET="esp32"' in (firmware / "sdkconfig.defaults").read_text()
    index = ProjectIndex.from_json((project / "build/codegen/project.json").read_text())
    assert index.toolchain == "platformio" and "src/model.espdl" in index.files
    quant = json.loads((project / "build/calibrate/calibration.json").read_text())["input"]
    assert index.input == {"kind": "image", "shape": [32, 32, 1], "given": "uint8",   # the camera's pixels
                           "transform": {"divisor": 255.0, "offset": 0.0}, "dtype": "int8",
                           "scale": 2.0 ** quant["exponent"], "zero_point": 0}


def test_input_table_is_what_the_simulator_feeds(espdl_project):
    """The firmware's table (the common preprocessing with scale 2**exponent) == esp-ppq's quantizer on
    pixel / 255, for all 256 pixel values."""
    import torch
    from esp_ppq.api.interface import load_native_graph
    from esp_ppq.quantization.qfunction.linear import PPQLinearQuant_toInt

    from tinyedge_tasks.preprocess import UNIT, input_table
    project, _ = espdl_project
    config = next(iter(load_native_graph(str(project / "build/quantize/model.native")).inputs.values())
                  ).dest_op_configs[0]
    expected = PPQLinearQuant_toInt(torch.arange(256, dtype=torch.float32) / 255.0, config).numpy()
    record = json.loads((project / "build/calibrate/calibration.json").read_text())["input"]
    assert np.array_equal(input_table(2.0 ** record["exponent"], 0, record["dtype"], UNIT), expected)
    table = (project / "build/codegen/firmware/src/preprocess.c").read_text()
    assert ", ".join(str(v) for v in expected[112:128]) in table


def test_child_errors_name_the_stage_and_the_last_lines(espdl_project, tmp_path):
    from tinyedge_tasks.backends.espdl.child import run_child
    project, _ = espdl_project
    job = json.loads((project / "cache/espdl/quantize.json").read_text())
    job.update(onnx=str(project / "build/quantize/model.onnx"), out=str(tmp_path), work=str(tmp_path / "work"),
               sixteen_bit_layers=["conv9"])
    with pytest.raises(TinyedgeError, match="compression.espdl.sixteen_bit_layers: no Keras layer named conv9"):
        run_child(job, tmp_path / "job.json", "quantize: esp-ppq")
    with pytest.raises(TinyedgeError, match=r"(?s)calibrate: x.*exit code 1.*FileNotFoundError"):
        run_child({"task": "simulate", "native": "none", "data": str(tmp_path / "absent.npz"), "out": str(tmp_path)},
                  tmp_path / "crash.json", "calibrate: x")


def test_abs_is_refused_naming_the_keras_layer(tmp_path):
    import onnx
    import tensorflow as tf
    import tf_keras as keras

    from tinyedge_tasks.backends.espdl import onnx_export, operators
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.Activation(tf.math.abs, name="absval"), keras.layers.Flatten(),
                              keras.layers.Dense(3, name="head")])
    onnx_export.export(model, tmp_path / "abs.onnx", "quantize")
    with pytest.raises(TinyedgeError, match=r"ESP-DL 3.3.9 has no module for Abs \(from Keras layer 'absval'"):
        operators.check_onnx(onnx.load(str(tmp_path / "abs.onnx")), [layer.name for layer in model.layers], "quantize")


def test_lstm_is_refused_before_export(tmp_path):
    import tf_keras as keras

    from tinyedge_tasks.backends.espdl import onnx_export
    model = keras.Sequential([keras.Input((10, 4)), keras.layers.LSTM(8, name="memory"), keras.layers.Dense(3)])
    with pytest.raises(TinyedgeError, match="layer 'memory' is a LSTM"):
        onnx_export.export(model, tmp_path / "lstm.onnx", "quantize")
    assert not (tmp_path / "lstm.onnx").exists()


def test_manifest_section_is_validated(tmp_path):
    from tinyedge_tasks.config.manifest import validate
    from tinyedge_tasks.errors import ManifestError
    data, _ = validate("compression:\n  espdl: {bits: 8, sixteen_bit_layers: [conv1]}\n", tmp_path / "t.yaml")
    assert data["compression"]["espdl"] == {"bits": "8", "method": "minmax", "sixteen_bit_layers": ["conv1"]}
    with pytest.raises(ManifestError, match="t.yaml:2: compression.espdl.sixteen_bit_layers: every layer is already"):
        validate("compression:\n  espdl: {bits: 16, sixteen_bit_layers: [conv1]}\n", tmp_path / "t.yaml")
    with pytest.raises(ManifestError, match="compression.espdl.method"):
        validate("compression:\n  espdl: {method: isotone}\n", tmp_path / "t.yaml")


def test_loss_warning_compares_with_the_float_model_and_names_chance():
    """Issue 24: a 2.4-point loss on a float model at chance (11.1 % -> 8.7 % on 10 classes) is noise: said so,
    with no 16-bit advice; the same loss from 95 % names the worst layers and the settings."""
    from tinyedge_tasks.artifacts import Calibration
    from tinyedge_tasks.backends.espdl.evaluate import warning
    record = {"quant_type": "w8a8", "method": "minmax"}
    errors = {"ops": [{"op": "conv1", "layer": "conv1", "graphwise": 0.3, "layerwise": 0.01}]}
    labels = np.arange(1000) % 10

    def measured(right: int, float_accuracy: float) -> Calibration:
        predicted = np.where(np.arange(1000) < right, labels, (labels + 1) % 10)
        return Calibration.measured(predicted, labels, 10, float_accuracy, model_bytes=0, arena_bytes=0, input={},
                                    output={}, operators=[])

    at_chance = warning(record, errors, measured(87, 0.111), 10)
    assert "the float model itself is at chance (11.1% on 10 classes, chance 10.0%)" in at_chance
    assert "sixteen_bit_layers" not in at_chance
    assert "sixteen_bit_layers: [conv1]" in warning(record, errors, measured(926, 0.95), 10)
    assert warning(record, errors, measured(940, 0.95), 10) is None
