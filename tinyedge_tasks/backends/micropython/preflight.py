"""The MicroPython backend's preflight and budget: the lowered model's operators have kernels (the C backend's
set), the package fits the board's MicroPython filesystem and its arena and weights fit the heap.

The MicroPython firmware itself lives in its own partition: what the filesystem holds is the package."""
from __future__ import annotations

from ...config import boards
from ...errors import TinyedgeError
from ...lowering.preflight import measure  # noqa: F401  the preflight protocol's first step, shared with C
from .. import board_section
from . import BACKEND
from .generate import BOARD, BOARD_FILES, weight_bytes

CODE_SOURCE = ("source bytes of the kernel and protocol modules (their .mpy is smaller; `doit build` records the .mpy "
               "bytes)")


def budget(board, lowered, arena: int, margin: float, knobs: dict | None = None, on_table=None) -> dict:
    """Weights and kernels against the filesystem; arena + weights against the heap (a MicroPython `bytes` held
    in RAM once imported). The plan is exact: no margin. The camera driver's frames are outside the heap."""
    board_section(BACKEND, board)
    section = board.micropython
    weights = weight_bytes(lowered)
    code = sum((BOARD / name).stat().st_size for name in BOARD_FILES)
    files, ram = weights + code, lowered.arena_size + weights
    if on_table:
        on_table([("flash: model (weights)", weights, None, ""),
                  (f"flash: runtime ({CODE_SOURCE})", code, None, ""),
                  ("flash, MicroPython filesystem", files, section.filesystem_bytes,
                   "fits" if files <= section.filesystem_bytes else "too big"),
                  ("arena + weights, MicroPython heap", ram, section.heap_bytes,
                   "fits" if ram <= section.heap_bytes else "too big")])
    if files > section.filesystem_bytes:
        raise TinyedgeError(f"board {board.id}: the MicroPython package does not fit: weights {weights} B + "
                            f"kernels {code} B = {files} B, micropython.filesystem_bytes {section.filesystem_bytes} "
                            f"B: {files - section.filesystem_bytes} B too many; "
                            f"{boards.flash_advice(weights, section.filesystem_bytes - code, knobs or {})}")
    if ram > section.heap_bytes:
        raise TinyedgeError(f"board {board.id}: the model does not fit the MicroPython heap: arena "
                            f"{lowered.arena_size} B + weights {weights} B = {ram} B, micropython.heap_bytes "
                            f"{section.heap_bytes} B: {ram - section.heap_bytes} B too many; "
                            f"{boards.flash_advice(weights, section.heap_bytes - lowered.arena_size, knobs or {})}")
    return {
        "board": board.id, "chip": board.chip, "cpu_mhz": board.cpu_mhz, "model_bytes": weights,
        "flash": {"needed_bytes": files, "available_bytes": section.filesystem_bytes, "runtime_bytes": code,
                  "runtime_source": CODE_SOURCE, "partitions": "MicroPython filesystem"},
        "arena": {"measured_min_bytes": lowered.arena_size, "margin": 0.0, "extra_bytes": weights,
                  "extra_why": "weights, held in the heap", "margin_bytes": weights, "bytes": ram,
                  "placement": "heap", "heap_available_bytes": section.heap_bytes,
                  "frames": {"count": 0, "bytes": 0, "place": None}},
    }
