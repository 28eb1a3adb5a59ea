"""codegen: the int8 model lowered to C (generate.py) with the preprocessing C, as a project for the board's
toolchain (build/codegen/firmware/), its index, the budget and the memory plan.

On the qemu board the project holds a few test samples that `doit flash` runs. On an ESP32 board it is an ESP-IDF
project: tinyedge's shell (toolchains.esp_idf: app_main, camera, LED, console, timing, the validation protocol)
around this backend's model adapter src/te_model_c.c, which runs the generated model and times each operator.

Imported to make tasks (sources()): NumPy and the lowering are imported inside run()."""
from __future__ import annotations

import json
from pathlib import Path

import xxhash

from ...artifacts import DATA, INT8_TFLITE, Budget, DatasetSummary, MemoryPlan
from ...config import boards
from ...native.csource import environment
from ...errors import TinyedgeError
from ...toolchains import esp_idf, info_header, qemu, write_project
from .. import board_section, budget_knobs, camera_board, input_record, status_led
from . import BACKEND

SAMPLES = 10   # test samples the firmware runs under `doit flash`
TEMPLATES = Path(__file__).resolve().parent / "templates"

# The ESP-IDF project: tinyedge's shell (toolchains.esp_idf) around this backend's adapter (te_model_c.c).
SETTINGS = (esp_idf.Setting("CONFIG_ESP_MAIN_TASK_STACK_SIZE", 8192,
                            "app_main runs the camera set-up, the model and printf of floats on the main task: the "
                            "3.5 KB default leaves no room for newlib's printf"),)
ADAPTER = "te_model_c.c"
LAYER_HOOK = "target_compile_definitions(${COMPONENT_LIB} PRIVATE TINYEDGE_LAYER_HOOK)  # per-operator cycles"


def _toolchain(board) -> str:
    """The board's toolchain section, checked to be one this backend writes a project for."""
    section = board_section(BACKEND, board)
    if section == "esp_idf":
        return camera_board(BACKEND, board)
    if qemu.TARGETS.get(board.qemu.machine) != board.qemu.cpu:
        known = ", ".join(f"machine {m}, cpu {c}" for m, c in qemu.TARGETS.items())
        raise TinyedgeError(f"boards/{board.id}.yaml: qemu: machine {board.qemu.machine}, cpu {board.qemu.cpu}; "
                            f"the qemu toolchain's start-up code and linker script are for {known}: set one of those")
    return section


def _tensor(tensor, dtype: str = "int8") -> dict:
    return {"dtype": dtype, "shape": list(tensor.shape), "scale": tensor.scale, "zero_point": tensor.zero_point}


def _esp_idf_files(ctx, board, budget: Budget, model, model_files: dict[str, str], tflite: bytes) -> dict[str, str]:
    """The shell (toolchains.esp_idf) around this backend's adapter: te_model_c.c over the generated model C."""
    if budget.arena["placement"] != "internal":
        raise TinyedgeError(f"board {board.id}: the planned arena ({budget.arena['bytes']} B) does not fit in "
                            f"internal RAM ({budget.arena['internal_available_bytes']} B available); the C "
                            "backend's arena is a static array in internal RAM: shrink the model (input size, "
                            "train.width_multiplier) or use firmware.backend tflm, which can place it in PSRAM")
    labels = ctx.read(DatasetSummary).classes
    project = ctx.config["project.name"]
    adapter_c = environment(TEMPLATES).get_template("src/te_model_c.c.j2").render(
        project=project, arena_bytes=budget.arena["bytes"], layers=[op.op for op in model.ops])
    files = {f"src/{name}": text for name, text in model_files.items()}
    files[f"src/{ADAPTER}"] = adapter_c
    adapter = esp_idf.Adapter(
        backend=BACKEND.name, files=files, sources=(ADAPTER,) + tuple(sorted(n for n in model_files
                                                                                     if n.endswith(".c"))),
        input=_tensor(model.input), output=_tensor(model.output), model=tflite, arena_bytes=budget.arena["bytes"],
        settings=SETTINGS, cmake=LAYER_HOOK)
    return esp_idf.application(board, project, adapter, budget, labels, status_led(ctx.config, board, labels))


def memory_plan(model) -> dict:
    """The arena plan as the report and the tests read it: every tensor's bytes, lifetime (operator steps, -1 the
    model input) and offset, the tensors sharing another's bytes, what each buffer holds (an activation, or a
    convolution's scratch), and each operator's offsets. shares_from: where a tensor sharing another's bytes starts
    relative to it (a depthwise output a little before its input)."""
    plan = model.plan

    def holds(tensor: int) -> str:
        if tensor in model.scratch:
            return f"the im2col scratch of operator {model.scratch[tensor]} (widened int16 columns)"
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


def info(model, model_bytes: bytes, board) -> dict:
    """The validation protocol's INFO for the emulated board's serial shell (toolchains/qemu/serve.c): every value
    known here. Cycles are instructions: SysTick under QEMU -icount shift=0 (one instruction per cycle at the
    board's clock is what turns them into milliseconds)."""
    def tensor(t) -> dict:
        return {"shape": list(t.shape), "dtype": "int8", "scale": t.scale, "zero_point": t.zero_point,
                "bytes": t.size}
    hz = board.cpu_mhz * 1_000_000
    return {"protocol": 1, "model_xxh3": xxhash.xxh3_64_hexdigest(model_bytes), "backend": "c", "board": board.id,
            "clock_hz": hz, "cycle_counter": "systick-icount", "cycles_per_second": hz,
            "input": tensor(model.input), "output": tensor(model.output), "arena_bytes": model.arena_size,
            "arena_used": model.arena_size, "layers": [op.op for op in model.ops]}


def run(ctx) -> None:
    import numpy as np

    from ...preprocess import c as preprocess_c
    from ...preprocess import quantize, transform_of
    from .generate import constant_bytes, generate, lower_model
    board = boards.load(ctx.sources[0])
    toolchain = _toolchain(board)
    model_bytes = ctx.inputs[INT8_TFLITE].read_bytes()
    model = lower_model(model_bytes)   # an unsupported operator stops here
    weights = constant_bytes(model)
    from . import preflight
    budget = Budget(**preflight.budget(board, model, model.arena_size, 0.0, budget_knobs(ctx.config)))   # exact plan
    ctx.write(budget)
    plan = memory_plan(model)
    ctx.write(MemoryPlan(plan))
    ctx.log(f"{board.id}: {len(model.ops)} operators, {model.macs} MACs, constants {weights} B, arena "
            f"{plan['arena_bytes']} B (planned: {len(plan['tensors'])} buffers)")

    quant = {"dtype": "int8", "scale": model.input.scale, "zero_point": model.input.zero_point}
    shape = ctx.config.section("dataset.input")
    model_files = generate(model)
    files = {f"src/{name}": text for name, text in model_files.items()}
    transform = transform_of(ctx.config["dataset.input"])
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels, quant, transform))
    dataset = ctx.read(DatasetSummary)
    record = input_record(quant, dataset.input, transform)
    if toolchain == "esp_idf":
        files.update(_esp_idf_files(ctx, board, budget, model, model_files, model_bytes))
        ctx.write(write_project(ctx.out, "firmware", files, esp_idf.TOOLCHAIN, board,
                                xxhash.xxh3_64_hexdigest(model_bytes), record))
        return
    labels = dataset.classes
    with np.load(ctx.inputs[DATA]) as data:
        images, truth = data["x_test"][:SAMPLES], data["y_test"][:SAMPLES]
    files[qemu.SAMPLES] = quantize(images, quant, transform).tobytes()
    files[qemu.LABELS] = "\n".join(f"{int(y)} ({labels[int(y)]})" for y in truth)
    files[qemu.TARGET_FILE] = json.dumps({"machine": board.qemu.machine, "cpu": board.qemu.cpu})
    files[f"src/{qemu.INFO_HEADER}"] = info_header(info(model, model_bytes, board))
    ctx.write(write_project(ctx.out, "firmware", files, toolchain, board, xxhash.xxh3_64_hexdigest(model_bytes),
                            record))
