"""The C backend (firmware.backend: c): generated C against the real TFLM runtime byte for byte, the same outputs on
the emulated Cortex-M4 (QEMU mps2-an386), the memory plan, refusals, and the whole doit flow on the qemu board.

Fixtures (tests/fixtures/c/): the int8 models of the zoo (tiny_cnn, mobilenet; per-channel and per-tensor; unpruned
and structured-pruned), each `doit quantize` of the example with those manifest values and 4 epochs; data.npz is
the example's test split; unsupported_logistic has a LOGISTIC layer named `squash`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import doit, ran, write_manifest

from tinyedge_tasks.backends.c.codegen import memory_plan
from tinyedge_tasks.backends.c.generate import generate
from tinyedge_tasks.errors import TinyedgeError
from tinyedge_tasks.lowering.lower import lower
from tinyedge_tasks.preprocess import input_table
from tinyedge_tasks.tflite import runtime
from tinyedge_tasks.toolchains import qemu
from tinyedge_tasks.toolchains.host import compile_host, run_host

FIXTURES = Path(__file__).parent / "fixtures" / "c"
ZOO = [f"{model}_{scheme}_{prune}" for model in ("tiny_cnn", "mobilenet") for scheme in ("int8", "int8_per_tensor")
       for prune in ("none", "structured")]
QEMU_SAMPLES = 8
ON_QEMU = {"tiny_cnn_int8_per_tensor_none", "mobilenet_int8_structured"}
STUB_HEADER = ("#include <stdint.h>\n#define TINYEDGE_INPUT_SIZE 1\n#define TINYEDGE_OUTPUT_SIZE 1\n"
               "int tinyedge_invoke(const int8_t *in, int8_t *out);\n")


def _inputs(model) -> tuple[np.ndarray, np.ndarray]:
    """(the test split quantized with the model's input parameters, labels)."""
    with np.load(FIXTURES / "data.npz") as data:
        x, y = data["x_test"], data["y_test"]
    return input_table(model.input.scale, model.input.zero_point, "int8")[x], y


def _tflm_outputs(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    engine = runtime.tflm(tflite, runtime.PROBE_ARENA)
    outputs = []
    for sample in inputs:
        engine.set_input(sample[None], 0)
        engine.invoke()
        outputs.append(engine.get_output(0).copy().ravel())
    return np.stack(outputs)


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


@pytest.mark.parametrize("name", ZOO)
def test_c_matches_tflm_on_every_test_sample(name, tmp_path):
    """Host gcc build on all 254 test samples: 0 differing bytes; on two models the QEMU build prints the same
    outputs as the host build (a subset of samples). The plan is overlap-free and smaller than TFLM's arena."""
    tflite = (FIXTURES / f"{name}.tflite").read_bytes()
    model = lower(tflite)
    inputs, labels = _inputs(model)
    src = _write(generate(model), tmp_path / "src")
    got, seconds = run_host(compile_host(src, tmp_path / "host"), inputs)
    expected = _tflm_outputs(tflite, inputs)
    assert got.shape == expected.shape == (254, 10) and seconds > 0
    assert int((got != expected).sum()) == 0
    assert np.mean(np.argmax(got, axis=1) == labels) > 0.5
    assert _no_overlap(memory_plan(model)) > 0
    if name in ON_QEMU:
        result = qemu.run(qemu.compile_firmware(src, tmp_path / "m4"), inputs[:QEMU_SAMPLES])
        assert np.array_equal(result.outputs, got[:QEMU_SAMPLES])
        assert 1 < result.instructions_per_inference / model.macs < 100


def test_unsupported_operator_is_refused_naming_its_layer():
    with pytest.raises(TinyedgeError) as error:
        lower((FIXTURES / "unsupported_logistic.tflite").read_bytes())
    assert "squash" in str(error.value) and "LOGISTIC" in str(error.value) and "tflm" in str(error.value)


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


def test_doit_on_the_qemu_board_and_switching_backends(project_copy):
    """The built example (tflm, esp32cam) switched to board qemu-cortex-m4 with firmware.backend c reruns codegen,
    build, calibrate and report only; calibrate runs the QEMU build on the whole test split with 0 samples
    differing from TFLM; `doit flash` runs it in QEMU; switching back restores every stage from the cache."""
    before = json.loads((project_copy / "build/calibrate/calibration.json").read_text())
    write_manifest(project_copy, {"board": "qemu-cortex-m4", "firmware": {"backend": "c"}})
    result = doit(project_copy)
    assert ran(result) == {"codegen", "build", "calibrate", "report"}, result.stdout
    calibration = json.loads((project_copy / "build/calibrate/calibration.json").read_text())
    assert calibration["runtime"] == "c (qemu mps2-an386 cortex-m4)"
    assert calibration["differing_samples"] == 0 and calibration["test_samples"] == 254
    assert calibration["quantized_test_accuracy"] == before["quantized_test_accuracy"]
    figures = json.loads((project_copy / "build/calibrate/c_runtime.json").read_text())
    assert abs(calibration["instructions_per_inference"] / figures["macs"] - figures["instructions_per_mac"]) < 0.01
    assert figures["arena_bytes"] <= 0.75 * figures["tflm_arena_bytes"]
    assert _no_overlap(json.loads((project_copy / "build/codegen/memory_plan.json").read_text())) > 0
    build = json.loads((project_copy / "build/build/build.json").read_text())
    assert build["env"] == "mps2-an386 cortex-m4" and 0 < build["flash_used_bytes"] < build["flash_available_bytes"]
    flashed = doit(project_copy, "flash")
    assert "sample 9: top output" in flashed.stdout and "instructions per inference" in flashed.stdout
    monitored = doit(project_copy, "monitor", check=False)
    assert monitored.returncode != 0 and "no serial port" in monitored.stdout + monitored.stderr

    write_manifest(project_copy, {})
    back = doit(project_copy)
    assert ran(back) == {"codegen", "calibrate", "report"}, back.stdout
    restored = [block.split("\n")[0] for block in back.stdout.split(".  ") if "restored from cache" in block]
    # The report is redrawn, not restored: the qemu build's build/build/build.json is still in build/ and the
    # tflm table's build is not a default stage, so the report now reads it (see README, "The C backend").
    assert {"codegen", "calibrate"} <= set(restored), back.stdout
    assert json.loads((project_copy / "build/calibrate/calibration.json").read_text()) == before


def test_esp32_board_with_the_c_backend_stops_at_codegen(project_copy):
    write_manifest(project_copy, {"firmware": {"backend": "c"}})
    result = doit(project_copy, check=False)
    assert result.returncode != 0
    assert "boards/esp32cam.yaml" in result.stdout + result.stderr and "ESP-IDF project" in result.stdout + \
        result.stderr
