"""Preflight of the C backend: the untrained model's operators lowered, its arena planned with the im2col scratch
(seconds, no compiler)."""
from __future__ import annotations

from ...config import boards
from ...lowering.preflight import measure_with
from .generate import constant_bytes, lower_model

measure = measure_with(lower_model)  # the preflight protocol's first step, shared with MicroPython


def budget(board, lowered, arena: int, margin: float, knobs: dict | None = None, on_table=None) -> dict:
    """The budget as codegen checks it: the lowered model's constant bytes and planned arena, exact (no margin)."""
    return boards.budget(board, "c", constant_bytes(lowered), lowered.arena_size, 0.0, knobs, None, on_table)
