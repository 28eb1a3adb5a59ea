"""`doit sweep` on the example: a 3x2 grid (prune sparsity x quantization scheme), one variant at a time against
several at a time, then the same sweep again in fresh variant folders, restored from the cache.

    python benchmarks/bench_sweep.py [--workers 2] [--keep DIR]

Serial and parallel each start from an empty cache in their own copy of the example (its own training
settings), so both compute everything once; the third row reruns the parallel project's sweep after deleting
build/sweep/. Prints wall time, trainings run and stages computed/restored per row, then the last sweep's table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GRID = ["-S", "compression.prune.sparsity=0.25,0.5,0.75", "-S", "compression.quantize.scheme=int8,int16x8"]


def example(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tinyedge.yaml", "dodo.py"):
        shutil.copy(REPO / name, folder / name)
    shutil.copytree(REPO / "boards", folder / "boards", dirs_exist_ok=True)
    return folder


def sweep(project: Path, workers: int) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if k != "TINYEDGE_CACHE"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "doit", "sweep", *GRID, "--workers", str(workers)], cwd=project,
                            env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"doit sweep failed in {project}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return seconds, json.loads((project / "build" / "sweep" / "summary.json").read_text())


def row(name: str, seconds: float, summary: dict) -> tuple:
    stages = [how for trial in summary["trials"] for how in trial["stages"].values()]
    return (name, seconds, summary["trainings"], stages.count("computed"), stages.count("restored"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    rows = []
    seconds, summary = sweep(example(base / "serial"), 1)
    rows.append(row("serial (1 worker)", seconds, summary))
    print(f"serial: {seconds:.1f} s", flush=True)
    parallel = example(base / "parallel")
    seconds, summary = sweep(parallel, args.workers)
    rows.append(row(f"parallel ({args.workers} workers)", seconds, summary))
    print(f"parallel: {seconds:.1f} s", flush=True)
    shutil.rmtree(parallel / "build" / "sweep")
    seconds, summary = sweep(parallel, args.workers)
    rows.append(row("again, fresh folders", seconds, summary))
    print(f"\n3x2 sweep of the example ({len(summary['trials'])} variants), load average "
          f"{os.getloadavg()[0]:.1f}:")
    print(f"{'run':24} {'wall s':>8} {'trainings':>10} {'computed':>9} {'restored':>9}")
    for name, wall, trainings, computed, restored in rows:
        print(f"{name:24} {wall:8.1f} {trainings:10} {computed:9} {restored:9}")
    print(f"\nparallel vs serial: {rows[0][1] / rows[1][1]:.2f}x; restored vs computed: {rows[1][1] / rows[2][1]:.0f}x")
    print("\n" + (parallel / "build" / "sweep" / "summary.md").read_text())
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
