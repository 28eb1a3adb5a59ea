"""codegen: the int8 model lowered to C (generate.py) with the preprocessing C, as a project for the board's
toolchain (build/codegen/firmware/), its index, the budget and the memory plan.

On the qemu board the project holds a few test samples that `doit flash` runs. On an ESP32 board it is an ESP-IDF
project: the shared skeleton (toolchains.esp_idf) with the camera driver, and an application component src/ where
main.c feeds camera frames through the preprocessing to the generated model instead of TFLM.

Imported to make tasks (sources()): NumPy and the lowering are imported inside run()."""
from __future__ import annotations

import json
from pathlib import Path

from ...artifacts import Budget, DatasetSummary
from ...config import boards
from ...native.csource import environment
from ...errors import TinyedgeError
from ...toolchains import esp_idf, qemu, write_project
from .. import board_section, camera_board, status_led
from . import BACKEND

SAMPLES = 10   # test samples the firmware runs under `doit flash`
TEMPLATES = Path(__file__).resolve().parent / "templates"

# The ESP-IDF project's managed components, pinned exactly (the same pins as the TFLM backend's). esp_jpeg is
# esp32-camera 2.1.5's own dependency (^1.3.1), pinned to that floor so the lock cannot drift.
COMPONENTS = {
    "espressif/esp32-camera": {"version": "2.1.5", "why": "OV2640 driver: camera_config_t with fb_location, grab_mode"},
    "espressif/esp_jpeg": {"version": "1.3.1", "why": "esp32-camera 2.1.5 requires ^1.3.1: pinned to that release"},
}
IDF_VERSION = ">=5.1"  # esp32-camera 2.1.5 needs ESP-IDF 5.1
SETTINGS = [
    esp_idf.Setting("CONFIG_COMPILER_OPTIMIZATION_PERF", True,
                    "-O2: the C kernels are compute-bound; the default -Og debug level is several times slower"),
    esp_idf.Setting("CONFIG_ESP_MAIN_TASK_STACK_SIZE", 8192,
                    "app_main runs the camera set-up, the model and printf of floats on the main task: the 3.5 KB "
                    "default leaves no room for newlib's printf"),
]


def _toolchain(board, board_name: str) -> str:
    """The board's toolchain section, checked to be one this backend writes a project for."""
    section = board_section(BACKEND, board, board_name)
    if section == "esp_idf":
        return camera_board(BACKEND, board, board_name)
    if qemu.TARGETS.get(board.qemu.machine) != board.qemu.cpu:
        known = ", ".join(f"machine {m}, cpu {c}" for m, c in qemu.TARGETS.items())
        raise TinyedgeError(f"boards/{board_name}.yaml: qemu: machine {board.qemu.machine}, cpu {board.qemu.cpu}; "
                            f"the qemu toolchain's start-up code and linker script are for {known}: set one of those")
    return section


def _esp_idf_files(ctx, board, board_name: str, budget: Budget, sources: list[str]) -> dict[str, str]:
    """The skeleton with the camera driver, and src/'s CMakeLists.txt (compiling the model's C `sources`, the
    preprocessing and main.c) and main.c, the super-loop."""
    if budget.arena["placement"] != "internal":
        raise TinyedgeError(f"board {board_name}: the planned arena ({budget.arena['bytes']} B) does not fit in "
                            f"internal RAM ({budget.arena['internal_available_bytes']} B available); the C "
                            "backend's arena is a static array in internal RAM: shrink the model (input size, "
                            "train.width_multiplier) or use firmware.backend tflm, which can place it in PSRAM")
    labels = ctx.read(DatasetSummary).classes
    led = status_led(ctx.config, board, board_name, labels)
    project = ctx.config["project.name"]
    values = {"board": board, "board_name": board_name, "project": project, "labels": labels,
              "pins": board.camera.pins, "arena_bytes": budget.arena["bytes"], **led, "sources": sources}
    env = environment(TEMPLATES)
    files = esp_idf.skeleton(board, board_name, project, COMPONENTS, IDF_VERSION, SETTINGS)
    files.update({name: env.get_template(f"{name}.j2").render(values)
                  for name in ("src/CMakeLists.txt", "src/main.c")})
    return files


def memory_plan(model) -> dict:
    """The arena plan as the report and the tests read it: every tensor's bytes, lifetime (operator steps, -1 the
    model input) and offset, the tensors sharing another's bytes, what each buffer holds (an activation, or a
    convolution's scratch), and each operator's offsets. shares_from: where a tensor sharing another's bytes starts
    relative to it (a depthwise output a little before its input)."""
    plan = model.plan

    def holds(tensor: int) -> str:
        if tensor in model.scratch:
            return f"the im2col scratch of operator {model.scratch[tensor]} (two int8 windows, two int16 columns)"
        return "an activation tensor"

    return {
        "method": plan.method, "arena_bytes": plan.arena_size, "macs": model.macs,
        "tensors": [{"tensor": b.tensor, "bytes": b.size, "first": b.first, "last": b.last,
                     "offset": plan.offsets[b.tensor], "shares": plan.aliases.get(b.tensor),
                     "shares_from": plan.deltas.get(b.tensor, 0),
                     "holds": holds(b.tensor)}
                    for b in sorted(plan.buffers, key=lambda b: (b.first, b.tensor))],
        "operators": [{"op": op.op, "layer": op.layer, "kernel": op.kernel, "inputs": op.inputs,
                       "output": op.output, "scratch": op.scratch, "macs": op.macs} for op in model.ops],
    }


def run(ctx) -> None:
    import numpy as np

    from ...preprocess import c as preprocess_c
    from ...preprocess import input_table, transform_of
    from .generate import constant_bytes, generate, lower_model

    board_name = ctx.config["board"]
    board = boards.load(ctx.sources[0])
    toolchain = _toolchain(board, board_name)
    model_bytes = ctx.inputs["quantize/model.tflite"].read_bytes()
    model = lower_model(model_bytes)   # an unsupported operator stops here
    weights = constant_bytes(model)
    from . import check
    budget = Budget(**check.budget(board, board_name, model_bytes, model.arena_size, 0.0))   # the plan is exact
    ctx.write(budget)
    plan = memory_plan(model)
    (ctx.out / "memory_plan.json").write_text(json.dumps(plan, indent=1))
    ctx.log(f"{board_name}: {len(model.ops)} operators, {model.macs} MACs, constants {weights} B, arena "
            f"{plan['arena_bytes']} B (planned: {len(plan['tensors'])} buffers)")

    quant = {"dtype": "int8", "scale": model.input.scale, "zero_point": model.input.zero_point}
    shape = ctx.config.section("dataset.input")
    model_files = generate(model)
    files = {f"src/{name}": text for name, text in model_files.items()}
    transform = transform_of(ctx.config["dataset.input"])
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels, quant, transform))
    if toolchain == "esp_idf":
        files.update(_esp_idf_files(ctx, board, board_name, budget, sorted(n for n in model_files if n.endswith(".c"))))
        ctx.write(write_project(ctx.out, "firmware", files, esp_idf.TOOLCHAIN, board_name, board.serial_speed))
        return
    labels = ctx.read(DatasetSummary).classes
    with np.load(ctx.inputs["dataset/data.npz"]) as data:
        images, truth = data["x_test"][:SAMPLES], data["y_test"][:SAMPLES]
    files[qemu.SAMPLES] = input_table(quant["scale"], quant["zero_point"], "int8", transform)[images].tobytes()
    files[qemu.LABELS] = "\n".join(f"{int(y)} ({labels[int(y)]})" for y in truth)
    files[qemu.TARGET_FILE] = json.dumps({"machine": board.qemu.machine, "cpu": board.qemu.cpu})
    ctx.write(write_project(ctx.out, "firmware", files, toolchain, board_name, board.serial_speed))
