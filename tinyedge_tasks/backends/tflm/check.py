"""The TFLM backend's preflight: the operators its firmware registers, and the model bytes and arena on the board.

`check_operators` is what the shared quantize stage asks of the project's backend right after conversion
(through Backend.preflight); `measure` is what `doit check` asks of it for an untrained model of the manifest.
"""
from __future__ import annotations

import numpy as np

from ...config import boards
from ...errors import TinyedgeError
from ...tflite import runtime, worker
from .resolver import builtin_methods, resolver_data


def check_operators(model_bytes: bytes, where: str) -> None:
    """Refuse an operator the ESP32 firmware's MicroMutableOpResolver cannot register, naming its Keras layer."""
    methods = builtin_methods()
    unknown = sorted({f"{op['op']} (layer '{_layer(op['layer'])}')" for op in runtime.operators(model_bytes)
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


def measure(model_bytes: bytes, images: np.ndarray, where: str) -> int:
    """The smallest TFLM arena of the model (scales made sane first: the arena does not depend on them)."""
    sample = runtime.model_input(model_bytes, images[:1])
    return worker.smallest_arena(worker.measurable(model_bytes), sample, f"{where} (arena search)")[0]


def arena_extra(board, model_bytes: bytes) -> dict | None:
    """ESP-NN's scratch bytes on the board's chip for boards.budget, None for a chip whose sizes are unknown."""
    from . import scratch
    if board.chip not in scratch.CHIPS:
        return None
    return {"bytes": scratch.arena_extra_bytes(model_bytes, board.chip), "why": f"ESP-NN scratch on the {board.chip}"}


def budget(board, board_name: str, model_bytes: bytes, arena: int, margin: float, knobs: dict | None = None,
           on_table=None) -> dict:
    """The budget as codegen checks it (and so the preflight): ESP-NN's scratch on top of the measured arena."""
    return boards.budget(board, board_name, "tflm", len(model_bytes), arena, margin, knobs,
                         arena_extra(board, model_bytes), on_table)
