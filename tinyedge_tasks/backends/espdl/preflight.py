"""The ESP-DL backend's preflight: the untrained model exported to ONNX and checked against the operators ESP-DL
has modules for, then quantized by esp-ppq as quantize does (a few training samples: ranges change neither the
bytes nor the activations), and its .espdl bytes and activation memory checked on the board as codegen does.

Slower than the TFLM preflight (esp-ppq starts PyTorch in a child), still before any training."""
from __future__ import annotations

from ...config import boards
from .. import board_section
from . import BACKEND
from .ppq import CALIB_BATCH

SAMPLES = 2 * CALIB_BATCH   # esp-ppq refuses fewer than two calibration batches


def measure(ctx, model, tflite: bytes, data, where: str) -> tuple[int, int]:
    """.espdl bytes and ESP-DL's activation estimate of the untrained model (the .tflite is not ESP-DL's input)."""
    import onnx

    from .onnx_export import export
    from .operators import check_onnx
    from .quantize import esp_ppq, require_extra

    require_extra()
    board = boards.load(ctx.root / boards.BOARDS_DIR / f"{ctx.config['board']}.yaml")
    board_section(BACKEND, board)
    layer_names = [layer.name for layer in model.layers]
    work = ctx.state / "espdl" / "check"
    export(model, work / "model.onnx", where)
    check_onnx(onnx.load(str(work / "model.onnx")), layer_names, where)
    record = esp_ppq(ctx, work / "model.onnx", work, list(range(SAMPLES)), board.esp_idf.target, layer_names, where,
                     f"{where}: esp-ppq")
    return record["espdl_bytes"], record["activation_bytes"]


def budget(board, model_bytes: int, arena: int, margin: float, knobs: dict | None = None,
           on_table=None) -> dict:
    """The budget as codegen checks it: the .espdl and ESP-DL's runtime in flash, the activations in RAM."""
    return boards.budget(board, "espdl", model_bytes, arena, margin, knobs, None, on_table)
