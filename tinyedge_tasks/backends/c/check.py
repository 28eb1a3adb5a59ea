"""Preflight of the C backend: the untrained model's operators lowered, its arena planned (seconds, no compiler)."""
from __future__ import annotations

from ...config import boards
from ...errors import TinyedgeError
from ...lowering.lower import lower


def check_operators(model_bytes: bytes, where: str) -> None:
    """Every operator has a C kernel; else stop, naming the operator and its layer."""
    try:
        lower(model_bytes)
    except TinyedgeError as error:
        raise TinyedgeError(f"{where}: {error}") from None


def measure(model_bytes: bytes, x_test, where: str) -> int:
    """The arena the C backend plans for the model: exact, the same for every input."""
    return lower(model_bytes).arena_size


def budget(board, board_name: str, model_bytes: bytes, arena: int, margin: float, knobs: dict | None = None,
           on_table=None) -> dict:
    """The budget as codegen checks it: the constants' bytes and the planned arena, exact (no margin)."""
    from .generate import constant_bytes
    lowered = lower(model_bytes)
    return boards.budget(board, board_name, "c", constant_bytes(lowered), lowered.arena_size, 0.0, knobs, None,
                         on_table)
