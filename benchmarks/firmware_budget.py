"""The example's memory budget on every board of a project: model bytes, arena, flash and RAM left.

Usage: python benchmarks/firmware_budget.py [PROJECT]   (after `doit calibrate` there; default: this repo)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tinyedge_tasks.config import boards
from tinyedge_tasks.config.manifest_loader import MANIFEST_NAME, load
from tinyedge_tasks.errors import TinyedgeError


def main(project: Path) -> None:
    loaded = load(project / MANIFEST_NAME)
    build = project / loaded.get("project.build_dir")
    calibration = json.loads((build / "calibrate/calibration.json").read_text())
    margin = loaded.get("firmware.arena_margin")
    print(f"model {calibration['model_bytes']} B, measured arena {calibration['arena_bytes']} B, margin {margin:.0%}, "
          f"TFLM accuracy {calibration['quantized_test_accuracy']:.4f}")
    print(f"{'board':<20} {'flash needed':>12} {'app part.':>10} {'arena':>7} {'placed':>9} {'internal':>9} {'PSRAM':>9}")
    for name in boards.known(project):
        board = boards.load(project / boards.BOARDS_DIR / f"{name}.yaml")
        try:
            b = boards.budget(board, loaded.get("firmware.backend"), calibration["model_bytes"],
                              calibration["arena_bytes"], margin)
        except TinyedgeError as exc:
            print(f"{name:<20} does not fit: {exc}")
            continue
        print(f"{name:<20} {b['flash']['needed_bytes']:>12} {b['flash']['available_bytes']:>10} "
              f"{b['arena']['bytes']:>7} {b['arena']['placement']:>9} {b['arena']['internal_available_bytes']:>9} "
              f"{b['arena']['psram_available_bytes']:>9}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve())
