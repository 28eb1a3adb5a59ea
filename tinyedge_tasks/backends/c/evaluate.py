"""calibrate: the compiled C model on the whole test split, against the real TFLM runtime: the host gcc build always,
and on an emulated board the QEMU Cortex-M4 or M7 build (the qemu toolchain's own build of the same folder):
accuracy and confusion of what runs, samples whose output differs from TFLM's (must be 0; outputs.npy keeps the
raw int8 outputs of what runs, which `doit validate` compares the board's with), instructions per
inference counted under QEMU -icount (in all and per operator); TFLM's smallest arena measured next to the planned
one. On an ESP32 board the chip's build needs PlatformIO: the host build (the same C, the same integer arithmetic)
is what is measured, and said so."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ...artifacts import DATA, INT8_TFLITE, Calibration, CRuntime, MemoryPlan, Metrics, ProjectIndex
from ...errors import TinyedgeError
from ...preprocess import quantize, transform_of
from ...tflite import model_file
from ...tflite import runtime as tflm
from ...tflite import worker
from ...toolchains import esp_idf, host, qemu
from .codegen import ADAPTER

APPLICATION = esp_idf.SHELL_SOURCES + (ADAPTER,)   # an ESP32 project's app around the model: not for the host


def _scores(raw: np.ndarray, output: dict) -> np.ndarray:
    """int8 outputs dequantized exactly as the TFLM worker does, so equal bytes give equal scores."""
    return (raw.astype(np.float32) - output["zero_point"]) * output["scale"]


def _differing(scores: np.ndarray, reference: np.ndarray) -> int:
    return int(np.any(scores != reference, axis=1).sum())


def _figures(plan: dict, emulated, tflm_arena: int, host_seconds: float, host_differing: int,
             qemu_differing: int | None) -> dict:
    """calibrate/c_runtime.json: the planned arena against TFLM's, instructions in all and per operator."""
    instructions = emulated.instructions_per_inference if emulated else None
    return {"macs": plan["macs"],
            "instructions_per_mac": round(instructions / plan["macs"], 3) if instructions else None,
            "arena_bytes": plan["arena_bytes"], "tflm_arena_bytes": tflm_arena,
            "arena_vs_tflm": round(plan["arena_bytes"] / tflm_arena, 3),
            "host_seconds_per_inference": host_seconds, "host_differing_samples": host_differing,
            "qemu_differing_samples": qemu_differing,
            "layers": [{"op": op["op"], "layer": op["layer"], "kernel": op["kernel"], "macs": op["macs"],
                        "instructions": round(count), "instructions_per_mac":
                        round(count / op["macs"], 3) if op["macs"] else None}
                       for op, count in zip(plan["operators"], emulated.layer_instructions, strict=True)]
            if emulated else []}


def _builds(ctx, src: Path, on_qemu: bool, inputs: np.ndarray):
    """(host build's int8 outputs, its seconds per inference, the QEMU run or None) of the project's C in src."""
    with tempfile.TemporaryDirectory(prefix="tinyedge-calibrate-") as folder:
        work = Path(folder)
        host_raw, host_seconds = host.run_host(host.compile_host(src, work / "host", skip=APPLICATION), inputs)
        ctx.log(f"host build: {len(inputs)} samples, {host_seconds * 1e6:.0f} us per inference")
        if not on_qemu:
            return host_raw, host_seconds, None
        elf = work / "firmware.elf"
        qemu.build(src.parent, work, elf)
        machine, cpu = qemu.target(src.parent)
        emulated = qemu.run(elf, inputs, machine=machine, cpu=cpu)
        ctx.log(f"QEMU build: {emulated.instructions_per_inference:.0f} instructions per inference")
        return host_raw, host_seconds, emulated


def run(ctx) -> None:
    with np.load(ctx.inputs[DATA]) as data:
        x_test, y_test = data["x_test"], data["y_test"]
    model_bytes = ctx.inputs[INT8_TFLITE].read_bytes()
    float_accuracy = ctx.read(Metrics).test_accuracy
    plan = ctx.read(MemoryPlan).data
    index = ctx.read(ProjectIndex)
    src = ctx.inputs[ProjectIndex.ARTIFACT].parent / index.folder / "src"
    engine = model_file.interpreter(model_bytes)
    input_details, output_details = model_file.io_details(engine)
    transform = transform_of(ctx.config["dataset.input"])
    inputs = quantize(x_test, {**input_details, "dtype": "int8"}, transform)

    what = f"calibrate: build/{INT8_TFLITE}"
    reference = tflm.predict(engine, x_test, transform, progress=ctx.log,
                             what=f"{what} (TFLM reference on the test split)")
    host_raw, host_seconds, emulated = _builds(ctx, src, index.toolchain == "qemu", inputs)
    machine, cpu = qemu.target(src.parent)
    np.save(ctx.out / "outputs.npy", emulated.outputs if emulated else host_raw)   # what `doit validate` expects
    host_scores = _scores(host_raw, output_details)
    scores = _scores(emulated.outputs, output_details) if emulated else host_scores
    host_differing = _differing(host_scores, reference)
    qemu_differing = _differing(scores, reference) if emulated else None
    if scores.shape != reference.shape:
        raise TinyedgeError(f"{what}: the C model writes {scores.shape[1]} outputs, TFLM {reference.shape[1]}: "
                            "a bug in the C backend")
    tflm_arena, _ = worker.smallest_arena(model_bytes, inputs[:1], f"{what} (TFLM arena search)")
    instructions = emulated.instructions_per_inference if emulated else None
    figures = _figures(plan, emulated, tflm_arena, host_seconds, host_differing, qemu_differing)
    ctx.write(CRuntime(figures))
    runtime = f"c (qemu {machine} {cpu})" if emulated else "c (host gcc build; the ESP32 build needs PlatformIO)"
    result = Calibration.measured(np.argmax(scores, axis=1), y_test, scores.shape[1], float_accuracy,
                                  model_bytes=len(model_bytes), arena_bytes=plan["arena_bytes"], input=input_details,
                                  output=output_details,
                                  operators=sorted({op["op"] for op in model_file.operators(model_bytes)}),
                                  runtime=runtime, differing_samples=max(host_differing, qemu_differing or 0),
                                  instructions_per_inference=round(instructions) if instructions else None)
    ctx.write(result)
    measured = (f"host build {host_differing}, QEMU build {qemu_differing}" if emulated
                else f"host build {host_differing} (the board's build is not run here)")
    ctx.log(f"C accuracy {result.quantized_test_accuracy:.4f} (float {float_accuracy:.4f}), differing from TFLM: "
            f"{measured} of {len(y_test)} samples; arena {plan['arena_bytes']} B "
            f"(TFLM {tflm_arena} B)" + (f", {figures['instructions_per_mac']} instructions per MAC" if instructions
                                        else ""))
