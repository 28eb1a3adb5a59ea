"""No-op `doit` on image-folder data sets of 1k, 10k and 100k images, beside the example's (sklearn digits).

    python benchmarks/bench_dataset_scan.py [--sizes 1000,10000,100000] [--repeat 7] [--keep DIR]

The data folder is one doit dependency with a tree state (a stat-only scan), so the no-op time should grow by
the scan alone: the target is within 20 ms of the example at 10k images and under 0.5 s at 100k. Each project is
built once first (tiny 8x8 PNGs, one epoch) and then timed; the example is timed in the same run, as baseline.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CLASSES = 10
FAST = {"train": {"epochs": 1}, "compression": {"calibrate": {"samples": 50}}}


def project(folder: Path, changes: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dodo.py", folder)
    shutil.copytree(REPO / "boards", folder / "boards", dirs_exist_ok=True)
    data = yaml.safe_load((REPO / "tinyedge.yaml").read_text())
    for section, values in {**FAST, **changes}.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    (folder / "tinyedge.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def images(folder: Path, count: int) -> None:
    """`count` tiny PNGs in CLASSES class folders: one encoded image per class, written many times (fast)."""
    import numpy as np
    from PIL import Image
    for label in range(CLASSES):
        buffer = io.BytesIO()
        pixels = np.full((8, 8), label * 25, np.uint8)
        pixels[label % 8, :] = 255  # a class-specific stripe, so training has something to learn
        Image.fromarray(pixels).save(buffer, "PNG")
        encoded = buffer.getvalue()
        (folder / f"c{label}").mkdir(parents=True, exist_ok=True)
        for index in range(label, count, CLASSES):
            (folder / f"c{label}" / f"{index:07d}.png").write_bytes(encoded)


def doit(folder: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TINYEDGE_CACHE"}
    return subprocess.run([sys.executable, "-m", "doit"], cwd=folder, env=env, check=True, capture_output=True,
                          text=True)


def noop(folder: Path, repeat: int) -> tuple[float, str]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = doit(folder)
        times.append(time.perf_counter() - started)
    ran = [line for line in result.stdout.splitlines() if line.startswith(".  ")]
    if ran:
        raise SystemExit(f"{folder}: a no-op run executed {ran}")
    return statistics.median(times), f"{min(times):.3f}-{max(times):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them (reused when present)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-scan-"))
    rows = []
    example = project(base / "example", {})
    started = time.perf_counter()
    doit(example)
    print(f"example built in {time.perf_counter() - started:.0f} s", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    folders = {}
    for size in sizes:
        folder = project(base / f"images-{size}", {"dataset": {"source": "data", "input": {"width": 8, "height": 8,
                                                                                          "channels": 1}}})
        if not (folder / "data").is_dir():
            started = time.perf_counter()
            images(folder / "data", size)
            print(f"{size} images written in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        doit(folder)
        print(f"{size} images: built in {time.perf_counter() - started:.0f} s", flush=True)
        folders[size] = folder
    reference, spread = noop(example, args.repeat)  # timed after the builds, beside the others
    rows.append(("example (sklearn digits)", reference, spread, ""))
    for size, folder in folders.items():
        median, spread = noop(folder, args.repeat)
        rows.append((f"{size} images", median, spread, f"{(median - reference) * 1000:+.0f} ms"))
    print(f"\nno-op `doit`, median of {args.repeat} (min-max), load average {os.getloadavg()[0]:.1f}:")
    print(f"{'project':26} {'median s':>9} {'min-max s':>13} {'vs example':>11}")
    for name, median, spread, delta in rows:
        print(f"{name:26} {median:9.3f} {spread:>13} {delta:>11}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
