"""The TFLM backend's preflight: the operators its firmware registers, and the model bytes and arena on the board.

`check_operators` is what calibrate asks before TFLM runs; `measure` and `budget` are what `doit check` asks of
the backend (Backend.preflight) for an untrained model of the manifest.
"""
from __future__ import annotations

from ...config import boards
from ...errors import TinyedgeError
from ...tflite import model_file, runtime, worker
from .resolver import builtin_methods, resolver_data


def check_operators(model_bytes: bytes, where: str) -> None:
    """Refuse an operator the ESP32 firmware's MicroMutableOpResolver cannot register, naming its Keras layer."""
    methods = builtin_methods()
    unknown = sorted({f"{op['op']} (layer '{_layer(op['layer'])}')" for op in model_file.operators(model_bytes)
                      if op["op"] not in methods})
    if unknown:
        data = resolver_data()
        raise TinyedgeError(
            f"{where}: the model uses operators {data['component']} {data['version']} cannot run: "
            f"{', '.join(unknown)}; replace those layers in train.model with ones made of operators it runs (or "
            f"choose another firmware.backend); it runs: {', '.join(sorted(methods))}")


def _layer(tensor: str) -> str:
    parts = tensor.split(";")[0].split("/")
    return parts[1] if len(parts) > 2 else parts[0]


def measure(ctx, model, tflite: bytes, data, where: str) -> tuple[bytes, int]:
    """The firmware's operators checked, and the model with its smallest TFLM arena (scales made sane first: the
    arena does not depend on them)."""
    check_operators(tflite, where)
    sample = runtime.model_input(tflite, data["x_test"][:1])
    return tflite, worker.smallest_arena(worker.measurable(tflite), sample, f"{where} (arena search)")[0]


def arena_extra(board, model_bytes: bytes) -> dict | None:
    """ESP-NN's scratch bytes on the board's chip for boards.budget, None for a chip whose sizes are unknown."""
    from . import scratch
    if board.chip not in scratch.CHIPS:
        return None
    return {"bytes": scratch.arena_extra_bytes(model_bytes, board.chip), "why": f"ESP-NN scratch on the {board.chip}"}


def budget(board, model_bytes: bytes, arena: int, margin: float, knobs: dict | None = None,
           on_table=None) -> dict:
    """The budget as codegen checks it (and so the preflight): ESP-NN's scratch on top of the measured arena."""
    return boards.budget(board, "tflm", len(model_bytes), arena, margin, knobs,
                         arena_extra(board, model_bytes), on_table)
