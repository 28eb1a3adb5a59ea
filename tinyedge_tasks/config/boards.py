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


def sources(manifest) -> list[Path]:
    """The board file, as the project files of a stage that reads it."""
    return [path_of(manifest)]


def load(path: Path) -> "Board":
    import yaml
    from pydantic import ValidationError

    from .board_schema import Board
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Board.model_validate(data).named(path.stem)
    except yaml.YAMLError as exc:
        raise TinyedgeError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "\n".join(f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise TinyedgeError(f"{problems}\ncompare with boards/esp32cam.yaml") from None


PLACES = {"internal": "internal RAM", "psram": "PSRAM", "heap": "the MicroPython heap"}  # arena placements, in words
KNOWN_EXTRA_MARGIN = 0.02  # the most margin kept when the runtime's extra arena on the chip is computed


def runtime(board: "Board", backend: str):
    """The backend's application without the model on this board (flash.runtime.<backend>)."""
    found = board.flash.runtime.get(backend)
    if found is None:
        raise TinyedgeError(f"boards/{board.id}.yaml: flash.runtime has no entry for firmware.backend {backend} "
                            f"(it has {', '.join(sorted(board.flash.runtime)) or 'none'}); add {backend}: {{bytes: N, "
                            "source: estimate of what}} (the application's flash without the model)")
    return found


def budget(board: "Board", backend: str, model_bytes: int, arena_min: int, margin: float,
           knobs: dict | None = None, extra: dict | None = None, on_table=None) -> dict:
    """Flash and RAM the model needs on `board`; the arena goes to internal RAM when it fits, else PSRAM.

    Flash is the model plus the backend's runtime on this board (flash.runtime.<backend> of the board file).
    The arena is the host's measured minimum plus a margin. `extra` ({bytes, why}), when the backend can compute
    it, is what the runtime on the board's chip allocates beyond the host measurement (ESP-NN's scratch buffers):
    it is added in bytes and the margin for the rest is min(margin, KNOWN_EXTRA_MARGIN), because the rest is
    small (the 32-bit chip's TFLM uses less than the 64-bit host's). Without it, firmware.arena_margin is the
    whole margin (a flat fraction). The camera frames count as the firmware allocates them: board.frame_buffers
    frames, in PSRAM when the board has some, else in internal RAM.
    Raises with needed vs available numbers and the knobs that would make it fit, computed from the miss.
    `knobs` (optional) holds the manifest's current values: width_multiplier (only for a zoo model: a loaded file
    or a user function has no such knob), input (width, height) or features (the shape of an .npz of features),
    scheme.
    `on_table` (optional) gets the rows (memory, needed B, available B or None, verdict) before the verdict, fit
    or not."""
    knobs = knobs or {}
    used = runtime(board, backend)
    fraction = margin if extra is None else min(margin, KNOWN_EXTRA_MARGIN)
    extra_bytes = extra["bytes"] if extra else 0
    arena = math.ceil((arena_min * (1 + fraction) + extra_bytes) / ARENA_ALIGN) * ARENA_ALIGN
    margin_text = (f"{fraction:.0%} margin" if extra is None
                   else f"{extra_bytes} B {extra['why']} + {fraction:.0%} margin")
    frames = board.frame_buffers * board.frame_bytes
    flash_needed = model_bytes + used.bytes
    psram_free = (board.psram.bytes - board.psram.reserved_bytes - frames) if board.psram else 0
    internal_free = board.sram.arena_max_bytes - (0 if board.psram else frames)
    placement = ("internal" if arena <= internal_free else "psram" if board.psram and arena <= psram_free
                 else None)
    if on_table:
        on_table(_rows(board, model_bytes, used, flash_needed, arena, margin_text, internal_free, psram_free,
                       placement))
    _check_flash(board, model_bytes, used, knobs)
    if placement is None:
        largest = max(internal_free, psram_free)
        where = (f"internal RAM leaves {internal_free} B and PSRAM {max(psram_free, 0)} B" if board.psram
                 else f"internal RAM leaves {internal_free} B (after {frames} B of camera frames) and the board has "
                      "no PSRAM")
        raise TinyedgeError(
            f"board {board.id}: the tensor arena does not fit in RAM: it needs {arena} B (measured minimum "
            f"{arena_min} B + {margin_text}, firmware.arena_margin {margin:g}), {where}: {arena - largest} B too many; "
            f"{_arena_advice(arena_min, arena, margin, largest, board.psram is not None, knobs, extra_bytes)}")
    return {
        "board": board.id, "chip": board.chip, "cpu_mhz": board.cpu_mhz, "model_bytes": model_bytes,
        "flash": {"needed_bytes": flash_needed, "available_bytes": board.flash.app_partition_bytes,
                  "runtime_bytes": used.bytes, "runtime_source": f"boards/{board.id}.yaml flash.runtime."
                  f"{backend}: {used.source}", "partitions": board.flash.partitions},
        "arena": {"measured_min_bytes": arena_min, "margin": fraction, "extra_bytes": extra_bytes,
                  "extra_why": extra["why"] if extra else None, "margin_bytes": arena - arena_min,
                  "bytes": arena, "placement": placement, "internal_available_bytes": internal_free,
                  "psram_available_bytes": psram_free,
                  "frames": {"count": board.frame_buffers, "bytes": frames,
                             "place": ("psram" if board.psram else "internal") if frames else None}},
    }


def _rows(board: "Board", model_bytes: int, used, flash_needed: int, arena: int, margin_text: str,
          internal_free: int, psram_free: int, placement: str | None) -> list[tuple]:
    """The budget table: what is charged to flash, line by line, then the arena where it may go."""
    def verdict(needed: int, available: int) -> str:
        return "fits" if needed <= available else "too big"
    internal = "→ PSRAM" if placement == "psram" else verdict(arena, internal_free)
    if board.psram is None:
        psram = ("arena, PSRAM", arena, None, "no PSRAM")
    else:
        psram = ("arena, PSRAM", arena, max(psram_free, 0), verdict(arena, psram_free))
    return [("flash: model", model_bytes, None, ""),
            (f"flash: runtime ({used.source})", used.bytes, None, ""),
            ("flash, app partition", flash_needed, board.flash.app_partition_bytes,
             verdict(flash_needed, board.flash.app_partition_bytes)),
            (f"arena ({margin_text}), internal RAM", arena, internal_free, internal), psram]


def _check_flash(board: "Board", model_bytes: int, used, knobs: dict) -> None:
    """The model and the runtime in the app partition, or an error with the numbers and what to change."""
    flash_needed = model_bytes + used.bytes
    if flash_needed <= board.flash.app_partition_bytes:
        return
    room = board.flash.app_partition_bytes - used.bytes
    raise TinyedgeError(
        f"board {board.id}: the model does not fit in flash: it needs {flash_needed} B (model {model_bytes} B "
        f"+ {used.bytes} B of runtime, {used.source}), the app partition ({board.flash.partitions}) holds "
        f"{board.flash.app_partition_bytes} B: {flash_needed - board.flash.app_partition_bytes} B too many; "
        f"{flash_advice(model_bytes, room, knobs)}, or a board with a larger app partition")


def flash_advice(model_bytes: int, room: int, knobs: dict) -> str:
    """Weights scale with the square of the width multiplier and with the filters kept by structured pruning;
    magnitude pruning leaves zeros that still take bytes, the input size changes no weight of a conv network."""
    if room <= 0:
        return "the runtime alone fills the app partition"
    factor = room / model_bytes
    width = knobs.get("width_multiplier")
    pruning = (f"structured pruning (compression.prune.kind: structured) with sparsity {1 - factor:.2f} or more "
               "(unstructured pruning leaves the zeros in the file)")
    if "width_multiplier" in knobs and width is None:  # a model file or function: no width knob to turn
        return f"the weights must shrink to {factor:.0%} of {model_bytes} B: {pruning}, or a model with fewer filters"
    now = f" (now {width:g}: {width * math.sqrt(factor):.2f} or less)" if width else ""
    return (f"the weights must shrink to {factor:.0%} of {model_bytes} B: train.width_multiplier times "
            f"{math.sqrt(factor):.2f} or less{now}, or {pruning}")


def _arena_advice(arena_min: int, arena: int, margin: float, largest: int, has_psram: bool, knobs: dict,
                  extra_bytes: int = 0) -> str:
    """Activations scale with the input area and linearly with the width multiplier; int16x8 doubles them."""
    factor = largest / arena
    tips = []
    size, features = knobs.get("input"), knobs.get("features")
    if features:   # an .npz of float features: their shape is the data set's own, not dataset.input
        tips.append(f"smaller samples in the data set's x (now {tuple(features)}: {factor:.2f} times the values "
                    "or fewer)")
    else:
        tips.append(f"dataset.input {int(size[0] * math.sqrt(factor))}x{int(size[1] * math.sqrt(factor))} or "
                    f"smaller (now {size[0]}x{size[1]})" if size
                    else f"dataset.input {math.sqrt(factor):.2f} times as wide and high")
    width = knobs.get("width_multiplier")
    if "width_multiplier" in knobs and width is None:  # a model file or function: no width knob to turn
        tips.append(f"structured pruning (compression.prune.kind: structured) with sparsity {1 - factor:.2f} or "
                    "more, which removes whole filters and their activations")
    else:
        tips.append(f"train.width_multiplier {width * factor:.2f} or less (now {width:g})" if width
                    else f"train.width_multiplier times {factor:.2f} or less")
    if knobs.get("scheme") == "int16x8" and arena / 2 <= largest:
        tips.append("compression.quantize.scheme int8 (its activations take half the bytes of int16x8)")
    if arena_min + extra_bytes <= largest < arena:
        tips.append(f"firmware.arena_margin {max((largest - extra_bytes) / arena_min - 1, 0):.2f} or less "
                    f"(now {margin:g})")
    if not has_psram:
        tips.append(f"a board with PSRAM ({arena} B free or more)")
    return "; or ".join(tips)
