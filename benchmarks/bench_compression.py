"""Compression recipes on the example project (digits, tiny_cnn, the example's own training settings);
prints one table row per recipe, each measured in the real TFLM runtime on the same test split.

    python benchmarks/bench_compression.py

All recipes share one project folder and cache, so the data set and the float model are built once; the
last rows show a recipe set back being restored from the cache instead of recomputed.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent

RECIPES = [
    ("int8 (PTQ, per-channel)", {}),
    ("int8 per-tensor", {"quantize": {"scheme": "int8_per_tensor"}}),
    ("int16x8", {"quantize": {"scheme": "int16x8"}}),
    ("int8 QAT (2 epochs)", {"quantize": {"aware": True}}),
    ("unstructured 0.5 + int8", {"prune": {"kind": "unstructured", "sparsity": 0.5}}),
    ("structured 0.5 + int8", {"prune": {"kind": "structured", "sparsity": 0.5}}),
    ("int8, set back (cache)", {}),
    ("structured 0.5, set back (cache)", {"prune": {"kind": "structured", "sparsity": 0.5}}),
]


def doit(project: Path, *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=project, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"doit {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    base = yaml.safe_load((REPO / "tinyedge.yaml").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copy(REPO / "dodo.py", project)
        shutil.copytree(REPO / "boards", project / "boards")
        for name, compression in RECIPES:
            manifest = json.loads(json.dumps(base))
            manifest["compression"] = {**base.get("compression", {}), **compression}
            (project / "tinyedge.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
            seconds = doit(project, "calibrate")
            calibration = json.loads((project / "build/calibrate/calibration.json").read_text())
            quantize = json.loads((project / "build/quantize/quantize.json").read_text())
            prune_file = project / "build/prune/prune.json"
            prune = json.loads(prune_file.read_text()) if "prune" in compression else None
            extra = ""
            if prune and prune["kind"] == "unstructured":
                extra = (f"sparsity {', '.join(f'{k} {v:.3f}' for k, v in prune['sparsity'].items())}; "
                         f"zlib int8 {prune['before']['int8_zlib_bytes']} -> {prune['after']['int8_zlib_bytes']} B "
                         f"(x{prune['ratios']['int8_zlib_bytes']}); float drop {prune['accuracy_drop_points']} pts")
            elif prune:
                filters = ", ".join(f"{k} {v['before']}->{v['after']}" for k, v in prune["filters"].items())
                extra = (f"filters {filters}; "
                         f"MACs {prune['before']['macs']} -> {prune['after']['macs']}; "
                         f"float drop {prune['accuracy_drop_points']} pts")
            elif "qat_test_accuracy" in quantize:
                extra = f"PTQ {quantize['ptq_test_accuracy']:.4f} vs QAT {quantize['qat_test_accuracy']:.4f}"
            rows.append((name, calibration["float_test_accuracy"], calibration["quantized_test_accuracy"],
                         calibration["model_bytes"], calibration["arena_bytes"], seconds, extra))
    print("| recipe | float acc | TFLM acc | .tflite B | arena B | doit s | notes |")
    print("|---|---|---|---|---|---|---|")
    for name, float_acc, acc, size, arena, seconds, extra in rows:
        print(f"| {name} | {float_acc:.4f} | {acc:.4f} | {size} | {arena} | {seconds:.1f} | {extra} |")


if __name__ == "__main__":
    main()
