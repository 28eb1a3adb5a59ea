"""The C backend (firmware.backend: c): generated C against the real TFLM runtime byte for byte, the same outputs on
the emulated Cortex-M4 (QEMU mps2-an386), the memory plan, refusals, and the whole doit flow on the qemu board.

Fixtures (tests/fixtures/zoo/): the int8 models of the zoo (tiny_cnn, mobilenet; per-channel and per-tensor;
unpruned and structured-pruned), each `doit quantize` of the example with those manifest values and 4 epochs; data.npz
is the example's test split. tests/fixtures/unsupported_logistic has a LOGISTIC layer named `squash`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import FIXTURES, REPO, doit, ran, tflm_outputs, write_manifest

from tinyedge_tasks.backends.c.codegen import memory_plan
from tinyedge_tasks.backends.c.generate import c_params, generate, lower_model, overlap, scratch_bytes
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.lowering.lower import lower
from tinyedge_tasks.preprocess import UNIT, input_table
from tinyedge_tasks.toolchains import qemu
from tinyedge_tasks.toolchains.host import compile_host, run_host

ZOO_DIR = FIXTURES / "zoo"
ZOO = [f"{model}_{scheme}_{prune}" for model in ("tiny_cnn", "mobilenet") for scheme in ("int8", "int8_per_tensor")
       for prune in ("none", "structured")]
REPO_PACKAGE = REPO / "tinyedge_tasks"
SHELL = ("te_shell.c", "te_model.h", "te_protocol.c", "te_protocol.h", "te_app.h", "te_model_c.c")
QEMU_SAMPLES = 8
ON_QEMU = {"tiny_cnn_int8_per_tensor_none", "mobilenet_int8_structured"}
STUB_HEADER = ("#include <stdint.h>\n#define TINYEDGE_INPUT_SIZE 1\n#define TINYEDGE_OUTPUT_SIZE 1\n"
               "int tinyedge_invoke(const int8_t *in, int8_t *out);\n")


def _inputs(model) -> tuple[np.ndarray, np.ndarray]:
    """(the test split quantized with the model's input parameters, labels)."""
    with np.load(ZOO_DIR / "data.npz") as data:
        x, y = data["x_test"], data["y_test"]
    return input_table(model.input.scale, model.input.zero_point, "int8", UNIT)[x], y


def _write(files: dict[str, str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _no_overlap(plan: dict) -> int:
    """Asserts that no two tensors alive at the same step share a byte (unless one shares the other's bytes by
    design, a RESHAPE); returns the pairs checked."""
    tensors, checked = plan["tensors"], 0
    for i, a in enumerate(tensors):
        assert 0 <= a["offset"] and a["offset"] + a["bytes"] <= plan["arena_bytes"]
        for b in tensors[i + 1:]:
            if a["first"] <= b["last"] and b["first"] <= a["last"] and b["tensor"] not in (a["shares"], None) \
                    and a["tensor"] != b["shares"] and a["shares"] != b["tensor"]:
                checked += 1
                assert a["offset"] + a["bytes"] <= b["offset"] or b["offset"] + b["bytes"] <= a["offset"], (a, b)
    return checked


@pytest.mark.qemu
@pytest.mark.parametrize("name", ZOO)
def test_c_matches_tflm_on_every_test_sample(name, tmp_path):
    """Host gcc build (the plain C kernels) on all 254 test samples: 0 differing bytes; on two models the QEMU build
    (the SMLAD/SXTB16 kernels) prints the same outputs as the host build (a subset of samples), and its
    per-operator counts add up to the whole. The plan is overlap-free and smaller than TFLM's arena."""
    tflite = (ZOO_DIR / f"{name}.tflite").read_bytes()
    model = lower_model(tflite)
    inputs, labels = _inputs(model)
    src = _write(generate(model), tmp_path / "src")
    got, seconds = run_host(compile_host(src, tmp_path / "host"), inputs)
    expected = tflm_outputs(tflite, inputs)
    assert got.shape == expected.shape == (254, 10) and seconds > 0
    assert int((got != expected).sum()) == 0
    assert np.mean(np.argmax(got, axis=1) == labels) > 0.5
    assert _no_overlap(memory_plan(model)) > 0
    if name in ON_QEMU:
        result = qemu.run(qemu.compile_firmware(src, tmp_path / "m4"), inputs[:QEMU_SAMPLES])
        assert np.array_equal(result.outputs, got[:QEMU_SAMPLES])
        # QEMU -icount is deterministic: a loose bound that catches a return to the generic kernels (8.9-12.9)
        assert 1 < result.instructions_per_inference / model.macs < 4
        assert len(result.layer_instructions) == len(model.ops)
        assert abs(sum(result.layer_instructions) - result.instructions_per_inference) <= 40 * len(model.ops)


def test_the_plan_puts_an_overlapping_output_at_its_distance():
    """plan_memory with a delta: an output sharing its dying input's bytes starts exactly delta bytes from it,
    and a scratch alive with both stays clear of the pair; without the overlap the three take their sum. The zoo
    MobileNet's plan uses such overlaps (a depthwise output before its input) and stays overlap-free otherwise;
    the zoo CNN's max pools run inside their convolutions, whose full-size outputs are then never planned;
    the report names the shared tensor and the distance."""
    from tinyedge_tasks.lowering.plan import plan_memory
    sizes = {0: 100, 1: 100, 2: 40}
    steps = [([0], [1, 2]), ([1], [])]   # step 0 reads tensor 0, writes 1 and its scratch 2
    plan = plan_memory(sizes, steps, [0], [1], {1: 0}, {1: -40})
    assert plan.offsets[1] == plan.offsets[0] - 40 and plan.deltas == {1: -40}
    assert plan.offsets[2] >= plan.offsets[0] + 100 or plan.offsets[2] + 40 <= plan.offsets[1]
    assert plan.arena_size == 180 and plan_memory(sizes, steps, [0], [1], {}).arena_size == 240
    tiny_cnn = (ZOO_DIR / "tiny_cnn_int8_none.tflite").read_bytes()   # max pools inside their convolutions
    fused, apart = lower_model(tiny_cnn), lower(tiny_cnn, scratch_bytes, overlap)
    assert [op.op for op in fused.ops][:2] == ["CONV_2D+MAX_POOL_2D"] * 2 and len(fused.plan.buffers) == \
        len(apart.plan.buffers) - 2 and fused.arena_size < apart.arena_size / 2
    mobilenet = memory_plan(lower_model((ZOO_DIR / "mobilenet_int8_none.tflite").read_bytes()))
    assert any(t["shares_from"] < 0 for t in mobilenet["tensors"]) and _no_overlap(mobilenet) > 0
    from tinyedge_tasks.stages.report import _shares   # the report's memory plan column, tensor 0 included
    assert _shares({"shares": 0, "shares_from": -40}) == "0 (from -40 B)" and _shares({"shares": None}) == ""


ODD_SHAPES = """import sys
import numpy as np
from tinyedge_tasks.ml.keras_util import keras
from tinyedge_tasks.tflite.convert import convert
layers = keras.layers
keras.utils.set_random_seed(0)
shapes = {"c6": ((7, 5, 6), dict(kernel_size=3, padding="same")),
          "dm2_s2": ((9, 8, 4), dict(kernel_size=3, strides=2, depth_multiplier=2, padding="same")),
          "k5_s2_valid": ((11, 7, 12), dict(kernel_size=5, strides=2, padding="valid", activation="relu6"))}
for name, (shape, options) in shapes.items():
    inputs = keras.Input(shape)
    x = layers.DepthwiseConv2D(**options)(layers.Conv2D(shape[2], 1)(inputs))
    model = keras.Model(inputs, layers.Dense(5)(layers.Flatten()(layers.Conv2D(20, 1)(x))))
    samples = np.random.default_rng(0).uniform(-1, 1, (32, *shape)).astype(np.float32)
    open(f"{sys.argv[1]}/{name}.tflite", "wb").write(convert(model, samples, "int8"))
pools = {"pool3": ((7, 7, 3), dict(filters=5, kernel_size=3, padding="same", activation="relu"), 3),
         "pool2_valid": ((7, 5, 3), dict(filters=6, kernel_size=3, padding="valid"), 2)}
for name, (shape, options, window) in pools.items():
    inputs = keras.Input(shape)
    x = layers.MaxPooling2D(window)(layers.Conv2D(**options)(inputs))
    model = keras.Model(inputs, layers.Dense(5)(layers.Flatten()(x)))
    samples = np.random.default_rng(0).uniform(-1, 1, (32, *shape)).astype(np.float32)
    open(f"{sys.argv[1]}/{name}.tflite", "wb").write(convert(model, samples, "int8"))
first = {"ch1_same": ((9, 7, 1), dict(filters=24, kernel_size=3, padding="same", activation="relu"), 0),
         "ch1_s21_valid": ((10, 9, 1), dict(filters=5, kernel_size=3, strides=(2, 1), padding="valid"), 0),
         "ch1_k53": ((8, 6, 1), dict(filters=6, kernel_size=(5, 3), padding="same"), 0),
         "ch1_narrow": ((6, 3, 1), dict(filters=4, kernel_size=3, padding="same"), 0),
         "ch1_s2": ((9, 9, 1), dict(filters=8, kernel_size=3, strides=2, padding="same"), 0),
         "ch1_pool2": ((9, 11, 1), dict(filters=4, kernel_size=3, padding="same"), 2),
         "ch1_pool3_valid": ((11, 10, 1), dict(filters=3, kernel_size=3, padding="valid", activation="relu"), 3)}
for name, (shape, options, window) in first.items():
    inputs = keras.Input(shape)
    x = layers.Conv2D(**options)(inputs)
    x = layers.MaxPooling2D(window)(x) if window else x
    model = keras.Model(inputs, layers.Dense(5)(layers.Flatten()(x)))
    samples = np.random.default_rng(0).uniform(0, 1, (32, *shape)).astype(np.float32)   # zero point -128
    open(f"{sys.argv[1]}/{name}.tflite", "wb").write(convert(model, samples, "int8"))
"""
ROW3 = {"ch1_same": True, "ch1_s21_valid": True, "ch1_k53": True, "ch1_narrow": True, "ch1_s2": False,
        "ch1_pool2": True, "ch1_pool3_valid": True}   # whether te_conv_row3 runs the first convolution


@pytest.mark.qemu
def test_depthwise_and_pooled_shapes_beyond_the_zoo_match_tflm(tmp_path):
    """The zoo's depthwise layers are 3x3 over multiples of 8 channels; these are not (6 channels: a group of 4 and
    2 left over; depth multiplier 2: the plain path; 5x5 stride 2 unpadded with ReLU6), each output over its dying
    input. The zoo's max pools are 2x2 over even sizes and channels; these, taken into their convolutions, are not
    (a 3x3 window, odd channel counts, an unpadded pool leaving a row and a column of the convolution unread).
    First convolutions of one channel (te_conv_row3, the zoo's are 3x3 'same' with a 2x2 pool over even sizes):
    inputs in [0, 1] (zero point -128, which the padding must read), odd widths (a last pair of one pixel),
    'valid', vertical stride 2, a 5x3 kernel, an image 3 wide (edge words byte by byte), 24 output channels, pools over odd sizes and a 3-wide window (a pair and a half); stride 2
    across takes the im2col kernel. Converted in a child Python (TensorFlow beside the TFLM runtime aborts); the
    host build and the QEMU Cortex-M4 build give TFLM's outputs."""
    subprocess.run([sys.executable, "-c", ODD_SHAPES, str(tmp_path)], check=True, capture_output=True,
                   timeout=300)
    for name in ("c6", "dm2_s2", "k5_s2_valid", "pool3", "pool2_valid", *ROW3):
        tflite = (tmp_path / f"{name}.tflite").read_bytes()
        model = lower_model(tflite)
        if name in ROW3:
            assert ("channels" in c_params(model.ops[0])) == ROW3[name], name
            assert model.ops[0].op == ("CONV_2D+MAX_POOL_2D" if "pool" in name else "CONV_2D"), name
        elif name.startswith("pool"):
            assert [op.op for op in model.ops][0] == "CONV_2D+MAX_POOL_2D", name
        else:
            assert any(op.kernel == "depthwise_conv2d" for op in model.ops) and model.plan.deltas, name
        inputs = np.random.default_rng(1).integers(-128, 128, (6, *model.input.shape[1:]), dtype=np.int8)
        expected = tflm_outputs(tflite, inputs)
        src = _write(generate(model), tmp_path / name)
        assert np.array_equal(run_host(compile_host(src, tmp_path / f"{name}-host"), inputs)[0], expected), name
        result = qemu.run(qemu.compile_firmware(src, tmp_path / f"{name}-m4"), inputs)
        assert np.array_equal(result.outputs, expected), name


@pytest.mark.qemu
def test_the_same_code_on_the_cortex_m7_board(tmp_path):
    """boards/qemu-cortex-m7.yaml (mps2-an500): codegen accepts it, and the same generated C built for the
    Cortex-M7 (DSP kernels) gives TFLM's outputs there, with per-operator counts."""
    from tinyedge_tasks.backends.c.codegen import _toolchain
    from tinyedge_tasks.config import boards

    board = boards.load(REPO / "boards" / "qemu-cortex-m7.yaml")
    assert _toolchain(board) == "qemu"
    assert (board.qemu.machine, board.qemu.cpu) == ("mps2-an500", "cortex-m7")
    tflite = (ZOO_DIR / "mobilenet_int8_structured.tflite").read_bytes()
    model = lower_model(tflite)
    inputs, _ = _inputs(model)
    src = _write(generate(model), tmp_path / "src")
    elf = qemu.compile_firmware(src, tmp_path / "m7", cpu=board.qemu.cpu)
    result = qemu.run(elf, inputs[:4], machine=board.qemu.machine, cpu=board.qemu.cpu)
    assert np.array_equal(result.outputs, tflm_outputs(tflite, inputs[:4]))
    assert 1 < result.instructions_per_inference / model.macs < 4 and len(result.layer_instructions) == len(model.ops)


REQUANTIZE_CHECK = r"""#include <stdio.h>
#include "te_fixed_point.h"
int main(void) {
    unsigned long long s = 88172645463325252ull;
    long differ = 0;
    for (long i = 0; i < 2000000; ++i) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        const int32_t acc = ((int32_t)(s & 0x7fffffff) - (1 << 30)) >> (int)((s >> 33) % 24);
        const int32_t m = (int32_t)((1u << 30) + ((s >> 20) & 0x3fffffff)), shift = -1 - (int32_t)((s >> 52) % 31);
        const int32_t off = (int32_t)((s >> 40) & 255) - 128;
        const int32_t low = (s & 1) ? off : -128;   /* a ReLU's range, or all of int8 */
        differ += te_output(acc, m, -shift - 1, 1, off, low, 127) != te_output(acc, m, shift, 0, off, low, 127);
    }
    printf("%ld\n", differ);
    return 0;
}
"""


def test_short_requantization_equals_tflite_rounding(tmp_path):
    """te_output's short path (the generator's `fast` layers) against te_mbqm, TFLite's double rounding, on 2
    million accumulators of every magnitude below 2^30, multipliers, right shifts, offsets, with and without a
    ReLU's range (its own shorter rounding) (plain C, host gcc)."""
    (tmp_path / "check.c").write_text(REQUANTIZE_CHECK)
    kernels = REPO / "tinyedge_tasks" / "backends" / "c" / "kernels"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(kernels),
                    str(tmp_path / "check.c"), "-o", str(tmp_path / "check")], check=True, timeout=60)
    assert subprocess.run([str(tmp_path / "check")], check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip() == "0"


def test_one_mac_count_for_the_report_and_the_c_stages():
    """Issue 24: the report counts the Keras model, the C and MicroPython stages the .tflite, with one set of rules
    (lowering.macs): pooling and mean count none on either side, a recurrent layer counts its gates."""
    from tinyedge_tasks.ml.keras_util import keras
    from tinyedge_tasks.ml.layers import layer_table
    from tinyedge_tasks.tflite.convert import convert
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(5, activation="softmax")(x))
    counted = sum(row["macs"] for row in layer_table(model))
    assert counted == 16 * 16 * 8 * 27 + 16 * 16 * 8 * 9 + 4 * 4 * 16 * 8 + 16 * 5
    samples = np.random.default_rng(0).random((8, 16, 16, 3), np.float32)
    assert lower(convert(model, samples, "int8")).macs == counted

    series = keras.Input((8, 4))
    recurrent = keras.Model(series, layers.Dense(3)(layers.LSTM(16)(series)))
    assert sum(row["macs"] for row in layer_table(recurrent)) == 8 * 4 * 16 * (4 + 16) + 16 * 3


def test_unsupported_operator_is_refused_naming_its_layer():
    with pytest.raises(TinyedgeError) as error:
        lower((FIXTURES / "unsupported_logistic.tflite").read_bytes())
    assert "squash" in str(error.value) and "LOGISTIC" in str(error.value) and "tflm" in str(error.value)


@pytest.mark.qemu
def test_instruction_count_is_exact_and_a_fault_is_reported(tmp_path):
    """A loop of 2,000,000 instructions counts as 2,000,000 (+-40: one SysTick tick); a hard fault ends the run
    at once with a message instead of hanging."""
    loop = _write({"model.h": STUB_HEADER, "model.c": '#include "model.h"\nint tinyedge_invoke(const int8_t *in, '
                   'int8_t *out) {\n    unsigned n = 1000000u;\n    __asm__ volatile("1: subs %0, %0, #1\\n bne 1b" '
                   ': "+r"(n) : : "cc");\n    out[0] = in[0];\n    return 0;\n}\n'}, tmp_path / "loop")
    result = qemu.run(qemu.compile_firmware(loop, tmp_path / "loop-out"), np.zeros((2, 1), np.int8))
    assert abs(result.instructions_per_inference - 2_000_000) <= 40
    fault = _write({"model.h": STUB_HEADER, "model.c": '#include "model.h"\nint tinyedge_invoke(const int8_t *in, '
                    'int8_t *out) {\n    *(volatile int *)0xFFFFFFF0u = in[0];\n    out[0] = 0;\n    return 0;\n}\n'},
                   tmp_path / "fault")
    with pytest.raises(TinyedgeError, match="hard fault"):
        qemu.run(qemu.compile_firmware(fault, tmp_path / "fault-out"), np.zeros((1, 1), np.int8), timeout=30)


@pytest.mark.qemu
def test_doit_on_the_qemu_board_and_switching_backends(project_copy):
    """The built example (tflm, esp32cam) switched to board qemu-cortex-m4 with firmware.backend c reruns codegen,
    calibrate and report only; calibrate runs the QEMU build on the whole test split with 0 samples differing from
    TFLM; `doit build` records its sizes, `doit flash` runs it in QEMU; switching back restores from the cache."""
    before = json.loads((project_copy / "build/calibrate/calibration.json").read_text())
    write_manifest(project_copy, {"board": "qemu-cortex-m4", "firmware": {"backend": "c"}})
    result = doit(project_copy)
    assert ran(result) == {"codegen", "calibrate", "report"}, result.stdout
    calibration = json.loads((project_copy / "build/calibrate/calibration.json").read_text())
    assert calibration["runtime"] == "c (qemu mps2-an386 cortex-m4)"
    assert calibration["differing_samples"] == 0 and calibration["test_samples"] == 254
    assert calibration["quantized_test_accuracy"] == before["quantized_test_accuracy"]
    figures = json.loads((project_copy / "build/calibrate/c_runtime.json").read_text())
    assert abs(calibration["instructions_per_inference"] / figures["macs"] - figures["instructions_per_mac"]) < 0.01
    assert figures["arena_bytes"] <= 0.75 * figures["tflm_arena_bytes"]
    per_op = figures["layers"]   # per-operator QEMU counts, shown in the report
    assert [r["op"] for r in per_op][:2] == ["CONV_2D+MAX_POOL_2D"] * 2 and per_op[0]["instructions_per_mac"] < 8
    assert abs(sum(r["instructions"] for r in per_op) - calibration["instructions_per_inference"]) < 40 * len(per_op)
    assert "| instructions per MAC |" in (project_copy / "build/report/report.md").read_text()
    assert _no_overlap(json.loads((project_copy / "build/codegen/memory_plan.json").read_text())) > 0
    assert "build" in ran(doit(project_copy, "build"))
    build = json.loads((project_copy / "build/build/build.json").read_text())
    assert build["env"] == "mps2-an386 cortex-m4" and 0 < build["flash_used_bytes"] < build["flash_available_bytes"]
    budget = json.loads((project_copy / "build/codegen/budget.json").read_text())   # the board file's measured runtime
    assert 0.8 * budget["flash"]["runtime_bytes"] < build["flash_used_bytes"] - budget["model_bytes"] \
        <= budget["flash"]["runtime_bytes"], (build, budget["flash"])
    flashed = doit(project_copy, "flash")
    assert "sample 9: top output" in flashed.stdout and "instructions per inference" in flashed.stdout
    monitored = doit(project_copy, "monitor", check=False)
    assert monitored.returncode != 0 and "no serial port" in monitored.stdout + monitored.stderr

    write_manifest(project_copy, {})
    back = doit(project_copy)
    assert ran(back) == {"codegen", "calibrate", "report"}, back.stdout
    restored = [block.split("\n")[0] for block in back.stdout.split(".  ") if "restored from cache" in block]
    # The report is redrawn, not restored: the qemu build's build/build/build.json is still in build/ (the tflm
    # table's build is not a default stage); the report shows it as another project's build, not as this one's.
    assert {"codegen", "calibrate"} <= set(restored), back.stdout
    assert "another firmware project" in (project_copy / "build/report/report.md").read_text()
    assert json.loads((project_copy / "build/calibrate/calibration.json").read_text()) == before


def test_esp32_board_with_the_c_backend_writes_an_esp_idf_project(project_copy):
    """`doit codegen` on esp32cam with firmware.backend c: tinyedge's ESP-IDF shell with the camera driver only,
    src/ with the generated model C and its adapter (te_model_c.c, per-operator timing on); the component manager
    and PlatformIO read the project back. tests/test_esp_idf_shell.py compiles and runs the shell itself."""
    from idf_component_tools.manager import ManifestManager
    from platformio.project.config import ProjectConfig

    from tinyedge_tasks.toolchains import esp_idf

    write_manifest(project_copy, {"firmware": {"backend": "c", "led_class": "7"}})
    doit(project_copy, "codegen")
    index = json.loads((project_copy / "build/codegen/project.json").read_text())
    assert index["toolchain"] == "platformio" and index["board"] == "esp32cam"
    firmware = project_copy / "build/codegen/firmware"
    kernels = {name for name in index["files"] if name.startswith("src/te_") and name[4:] not in SHELL}
    assert {"src/te_conv2d.h", "src/te_kernels.h", "src/te_fully_connected.h"} <= kernels
    assert set(index["files"]) == {"platformio.ini", "CMakeLists.txt", "sdkconfig.defaults", "partitions.csv",
                                   "src/idf_component.yml", "src/CMakeLists.txt", "src/model.c", "src/model.h",
                                   "src/preprocess.c", "src/preprocess.h"} | {f"src/{n}" for n in SHELL} | kernels

    cmake = (firmware / "src/CMakeLists.txt").read_text()
    listed = set(cmake.split("SRCS ")[1].split("\n")[0].replace('"', "").split())
    assert listed == {name[4:] for name in index["files"] if name.endswith(".c")}
    assert "PRIV_REQUIRES driver" in cmake and "PRIVATE TINYEDGE_LAYER_HOOK" in cmake
    app = (firmware / "src/te_app.h").read_text()
    assert "#define TE_CAM_SDA 26" in app and "#define TE_CAM_GRAB_MODE CAMERA_GRAB_LATEST" in app
    assert "#define TE_CAM_FB_COUNT 2" in app and "#define TE_CAM_FB_LOCATION CAMERA_FB_IN_PSRAM" in app
    assert "#define TE_LED_PIN GPIO_NUM_33" in app and "#define TE_LED_CLASS 7" in app
    assert (firmware / "src/te_protocol.c").read_text() == (REPO_PACKAGE / "firmware/te_protocol.c").read_text()

    manager = ManifestManager(firmware / "src", "src").validate()
    assert manager._validation_errors == []
    pins = {req.name: str(req.version_spec) for req in manager.manifest.requirements if not req.meta}
    assert pins == {"espressif/esp32-camera": "==2.1.5", "espressif/esp_jpeg": "==1.3.1"}
    assert pins == {name: f"=={c['version']}" for name, c in esp_idf.CAMERA_COMPONENTS.items()}
    config = ProjectConfig(str(firmware / "platformio.ini"))
    assert config.envs() == ["esp32cam"] and config.get("env:esp32cam", "framework") == ["espidf"]
    budget = json.loads((project_copy / "build/codegen/budget.json").read_text())
    plan = json.loads((project_copy / "build/codegen/memory_plan.json").read_text())
    # the budget rounds the exact plan up to the boards' 16-byte arena alignment
    assert plan["arena_bytes"] <= budget["arena"]["bytes"] < plan["arena_bytes"] + 16
    assert budget["arena"]["placement"] == "internal"
    assert f"#define TINYEDGE_ARENA_SIZE {plan['arena_bytes']}" in (firmware / "src/model.h").read_text()
    # issue 24: the C backend's own runtime in flash, and a calibrate log that says what was measured
    board = yaml.safe_load((project_copy / "boards/esp32cam.yaml").read_text())
    assert budget["flash"]["runtime_bytes"] == board["flash"]["runtime"]["c"]["bytes"]
    assert budget["flash"]["runtime_bytes"] != board["flash"]["runtime"]["tflm"]["bytes"]
    logged = next(line for line in doit(project_copy, "calibrate").stdout.splitlines() if "differing from TFLM" in line)
    assert "host build 0 (the board's build is not run here) of" in logged and "None" not in logged, logged
