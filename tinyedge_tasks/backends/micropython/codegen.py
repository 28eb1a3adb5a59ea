"""codegen: the calibrated int8 model -> a MicroPython package (build/codegen/micropython/) and its project index.

Imported to make tasks (sources()): NumPy and the lowering are imported inside run()."""
from __future__ import annotations

import json

from ...artifacts import INT8_TFLITE, Budget, DatasetSummary
from ...config import boards
from ...toolchains import write_project
from .. import budget_knobs, camera_board, input_record, status_led
from . import BACKEND


def info(model, model_bytes: bytes, board) -> dict:
    """The validation protocol's INFO as far as codegen knows it (te_serve.py adds the port, the kernels and the
    clock that run): the model's digest, its tensors, the arena, one timed layer per operator. MicroPython's
    counter is time.ticks_us(): cycles are microseconds."""
    import xxhash

    def tensor(t) -> dict:
        return {"shape": list(t.shape), "dtype": "int8", "scale": t.scale, "zero_point": t.zero_point,
                "bytes": t.size}
    return {"protocol": 1, "model_xxh3": xxhash.xxh3_64_hexdigest(model_bytes), "backend": "micropython",
            "board": board.id, "clock_hz": board.cpu_mhz * 1_000_000, "cycle_counter": "ticks_us",
            "cycles_per_second": 1_000_000, "input": tensor(model.input), "output": tensor(model.output),
            "arena_bytes": model.arena_size, "arena_used": model.arena_size, "layers": [op.op for op in model.ops]}


def run(ctx) -> None:
    from ...preprocess import transform_of
    from ...tflite import model_file
    from . import generate, preflight
    board = boards.load(ctx.sources[0])
    toolchain = camera_board(BACKEND, board)
    dataset = ctx.read(DatasetSummary)
    labels = dataset.classes
    model_bytes = ctx.inputs[INT8_TFLITE].read_bytes()
    files, model = generate.model_files(model_bytes)
    budget = Budget(**preflight.budget(board, model, model.arena_size, 0.0, budget_knobs(ctx.config)))
    ctx.write(budget)
    quant, _ = model_file.io_details(model_file.interpreter(model_bytes))
    shape, transform = ctx.config.section("dataset.input"), transform_of(ctx.config["dataset.input"])
    files["te_preprocess.py"] = generate.preprocess_source(shape.width, shape.height, shape.channels, quant, transform)
    status = status_led(ctx.config, board, labels)
    led = (status["led"].pin, status["led"].active_low, status["led_index"]) if status["led"] else None
    files["main.py"] = generate.main_source(labels, board.camera, led)
    described = info(model, model_bytes, board)
    files["te_info.py"] = generate.info_source(described)
    section = board.micropython
    files["mpremote.json"] = json.dumps({
        "march": section.march, "firmware": section.firmware, "filesystem_bytes": section.filesystem_bytes,
        "heap_bytes": section.heap_bytes, "ram_bytes": budget.arena["bytes"],
        "modules": list(generate.MODULES)}, indent=1)
    ctx.write(write_project(ctx.out, "micropython", files, toolchain, board, described["model_xxh3"],
                            input_record(quant, dataset.input, transform)))
    ctx.log(f"MicroPython package: {len(model.ops)} operators, {model.macs} MACs, arena {model.arena_size} B, "
            f"weights {generate.weight_bytes(model)} B (runs on {section.firmware})")
