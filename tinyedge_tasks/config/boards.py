"""Boards as data: `boards/<name>.yaml` of the project, validated, and the memory budget of a model on one.

Adding a board is adding a YAML file; no code here names a board. The schema lives in board_schema.py.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TinyedgeError

if TYPE_CHECKING:
    from .board_schema import Board

BOARDS_DIR = "boards"
ARENA_ALIGN = 16  # TFLM aligns arena allocations to 16 bytes


def known(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / BOARDS_DIR).glob("*.yaml"))


def path_of(manifest) -> Path:
    """The board file the manifest names; an unknown board is a manifest error listing the known ones."""
    name = manifest.get("board")
    path = manifest.root / BOARDS_DIR / f"{name}.yaml"
    if not path.is_file():
        boards = known(manifest.root)
        listing = ", ".join(boards) if boards else f"none: {manifest.root / BOARDS_DIR} holds no .yaml files"
        raise manifest.error("board", f"no board file {BOARDS_DIR}/{name}.yaml; known boards: {listing} "
                             f"(add {BOARDS_DIR}/{name}.yaml to describe a new board)")
    return path


def load(path: Path) -> "Board":
    import yaml
    from pydantic import ValidationError

    from .board_schema import Board
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Board.model_validate(data)
    except yaml.YAMLError as exc:
        raise TinyedgeError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "\n".join(f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise TinyedgeError(f"{problems}\ncompare with boards/esp32cam.yaml") from None


def budget(board: "Board", board_name: str, model_bytes: int, arena_min: int, margin: float,
           knobs: dict | None = None) -> dict:
    """Flash and RAM the model needs on `board`; the arena goes to internal RAM when it fits, else PSRAM.

    Raises with needed vs available numbers and the knobs that would make it fit, computed from the miss.
    `knobs` (optional) holds the manifest's current values: width_multiplier, input (width, height), scheme."""
    knobs = knobs or {}
    arena = math.ceil(arena_min * (1 + margin) / ARENA_ALIGN) * ARENA_ALIGN
    flash_needed = model_bytes + board.flash.runtime_bytes
    psram_free = (board.psram.bytes - board.psram.reserved_bytes - board.frame_bytes) if board.psram else 0
    if flash_needed > board.flash.app_partition_bytes:
        room = board.flash.app_partition_bytes - board.flash.runtime_bytes
        raise TinyedgeError(
            f"board {board_name}: the model does not fit in flash: it needs {flash_needed} B (model {model_bytes} B "
            f"+ about {board.flash.runtime_bytes} B of runtime), the app partition ({board.flash.partitions}) holds "
            f"{board.flash.app_partition_bytes} B: {flash_needed - board.flash.app_partition_bytes} B too many; "
            f"{_flash_advice(model_bytes, room, knobs)}, or a board with a larger app partition")
    if arena <= board.sram.arena_max_bytes:
        placement = "internal"
    elif arena <= psram_free:
        placement = "psram"
    else:
        largest = max(board.sram.arena_max_bytes, psram_free)
        where = (f"internal RAM leaves {board.sram.arena_max_bytes} B and PSRAM {max(psram_free, 0)} B" if board.psram
                 else f"internal RAM leaves {board.sram.arena_max_bytes} B and the board has no PSRAM")
        raise TinyedgeError(
            f"board {board_name}: the tensor arena does not fit in RAM: it needs {arena} B (measured minimum "
            f"{arena_min} B + {margin:.0%} firmware.arena_margin), {where}: {arena - largest} B too many; "
            f"{_arena_advice(arena_min, arena, margin, largest, board.psram is not None, knobs)}")
    return {
        "board": board_name,
        "chip": board.chip,
        "cpu_mhz": board.cpu_mhz,
        "model_bytes": model_bytes,
        "flash": {"needed_bytes": flash_needed, "available_bytes": board.flash.app_partition_bytes,
                  "runtime_estimate_bytes": board.flash.runtime_bytes, "partitions": board.flash.partitions},
        "arena": {"measured_min_bytes": arena_min, "margin": margin, "bytes": arena, "placement": placement,
                  "internal_available_bytes": board.sram.arena_max_bytes, "psram_available_bytes": psram_free},
    }


def _flash_advice(model_bytes: int, room: int, knobs: dict) -> str:
    """Weights scale with the square of the width multiplier and with the filters kept by structured pruning;
    magnitude pruning leaves zeros that still take bytes, the input size changes no weight of a conv network."""
    if room <= 0:
        return "the runtime alone fills the app partition"
    factor = room / model_bytes
    width = knobs.get("width_multiplier")
    now = f" (now {width:g}: {width * math.sqrt(factor):.2f} or less)" if width else ""
    return (f"the weights must shrink to {factor:.0%} of {model_bytes} B: train.width_multiplier times "
            f"{math.sqrt(factor):.2f} or less{now}, or structured pruning (compression.prune.kind: structured) with "
            f"sparsity {1 - factor:.2f} or more (unstructured pruning leaves the zeros in the file)")


def _arena_advice(arena_min: int, arena: int, margin: float, largest: int, has_psram: bool, knobs: dict) -> str:
    """Activations scale with the input area and linearly with the width multiplier; int16x8 doubles them."""
    factor = largest / arena
    tips = []
    size = knobs.get("input")
    side = (f"dataset.input {int(size[0] * math.sqrt(factor))}x{int(size[1] * math.sqrt(factor))} or smaller "
            f"(now {size[0]}x{size[1]})" if size else f"dataset.input {math.sqrt(factor):.2f} times as wide and high")
    tips.append(side)
    width = knobs.get("width_multiplier")
    tips.append(f"train.width_multiplier {width * factor:.2f} or less (now {width:g})" if width
                else f"train.width_multiplier times {factor:.2f} or less")
    if knobs.get("scheme") == "int16x8" and arena / 2 <= largest:
        tips.append("compression.quantize.scheme int8 (its activations take half the bytes of int16x8)")
    if arena_min <= largest < arena:
        tips.append(f"firmware.arena_margin {max(largest / arena_min - 1, 0):.2f} or less (now {margin:g})")
    if not has_psram:
        tips.append(f"a board with PSRAM ({arena} B free or more)")
    return "; or ".join(tips)
