"""codegen: the int8 model lowered to C (generate.py) with the preprocessing C and a few test samples, as a
project for the board's toolchain (build/codegen/firmware/), its index, the budget and the memory plan.

Imported to make tasks (sources()): NumPy and the lowering are imported inside run()."""
from __future__ import annotations

import json

from ...artifacts import Budget, DatasetSummary
from ...config import boards
from ...errors import TinyedgeError
from ...toolchains import qemu, write_project
from .. import board_section
from . import BACKEND

SAMPLES = 10   # test samples the firmware runs under `doit flash`


def _toolchain(board, board_name: str) -> str:
    """The board's toolchain section, checked to be one this backend writes a project for."""
    section = board_section(BACKEND, board, board_name)
    if section == "esp_idf":
        raise TinyedgeError(f"boards/{board_name}.yaml: firmware.backend c builds for a board with a 'qemu:' "
                            "section; the ESP-IDF project that compiles the generated C on an ESP32 is not written "
                            "yet (its 'esp_idf:' section is not enough): use firmware.backend tflm on this board, "
                            "or board qemu-cortex-m4")
    if (board.qemu.machine, board.qemu.cpu) != (qemu.MACHINE, qemu.CPU):
        raise TinyedgeError(f"boards/{board_name}.yaml: qemu: machine {board.qemu.machine}, cpu {board.qemu.cpu}; "
                            f"the qemu toolchain's start-up code and linker script are for machine {qemu.MACHINE}, "
                            f"cpu {qemu.CPU}: set those")
    return section


def memory_plan(model) -> dict:
    """The arena plan as the report and the tests read it: every tensor's bytes, lifetime (operator steps, -1 the
    model input) and offset, the tensors sharing another's bytes, and each operator's offsets."""
    plan = model.plan
    return {
        "method": plan.method, "arena_bytes": plan.arena_size, "macs": model.macs,
        "tensors": [{"tensor": b.tensor, "bytes": b.size, "first": b.first, "last": b.last,
                     "offset": plan.offsets[b.tensor], "shares": plan.aliases.get(b.tensor)}
                    for b in sorted(plan.buffers, key=lambda b: (b.first, b.tensor))],
        "operators": [{"op": op.op, "layer": op.layer, "kernel": op.kernel, "inputs": op.inputs,
                       "output": op.output} for op in model.ops],
    }


def run(ctx) -> None:
    import numpy as np

    from ...lowering.lower import lower
    from ...preprocess import c as preprocess_c
    from ...preprocess import input_table
    from .generate import constant_bytes, generate

    board_name = ctx.config["board"]
    board = boards.load(ctx.sources[0])
    toolchain = _toolchain(board, board_name)
    model_bytes = ctx.inputs["quantize/model.tflite"].read_bytes()
    model = lower(model_bytes)   # an unsupported operator stops here
    weights = constant_bytes(model)
    from . import check
    budget = Budget(**check.budget(board, board_name, model_bytes, model.arena_size, 0.0))   # the plan is exact
    ctx.write(budget)
    plan = memory_plan(model)
    (ctx.out / "memory_plan.json").write_text(json.dumps(plan, indent=1))
    ctx.log(f"{board_name}: {len(model.ops)} operators, {model.macs} MACs, constants {weights} B, arena "
            f"{model.arena_size} B (planned: {len(plan['tensors'])} tensors)")

    quant = {"dtype": "int8", "scale": model.input.scale, "zero_point": model.input.zero_point}
    shape = ctx.config.section("dataset.input")
    files = {f"src/{name}": text for name, text in generate(model).items()}
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels, quant))
    labels = ctx.read(DatasetSummary).classes
    with np.load(ctx.inputs["dataset/data.npz"]) as data:
        images, truth = data["x_test"][:SAMPLES], data["y_test"][:SAMPLES]
    files[qemu.SAMPLES] = input_table(quant["scale"], quant["zero_point"], "int8")[images].tobytes()
    files[qemu.LABELS] = "\n".join(f"{int(y)} ({labels[int(y)]})" for y in truth)
    ctx.write(write_project(ctx.out, "firmware", files, toolchain, board_name, board.serial_speed))
