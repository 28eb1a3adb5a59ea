"""Engine benchmarks, each against a baseline measured in the same run; prints a table.

    python benchmarks/bench_engine.py [--hash-mb 512] [--repeat 7]

1. no-op `doit` on the built example vs a plain doit project (md5 checker, same number of tasks and files)
2. XXH3-128 (tinyedge) vs MD5 (doit's default checker) throughput on one large file
3. a stage restored from the cache vs computed (change train.epochs, then change it back)
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xxhash
import yaml

REPO = Path(__file__).resolve().parent.parent

PLAIN_DODO = '''
STAGES = ["dataset", "train", "quantize", "calibrate", "codegen", "report"]

def _make(target):
    open(target, "w").write("x")

def _creator(index, name):
    def create():
        deps = [f"out/{STAGES[index - 1]}.txt"] if index else []
        return {"basename": name, "actions": [(_make, [f"out/{name}.txt"])],
                "file_dep": deps, "targets": [f"out/{name}.txt"]}
    return create

for _i, _name in enumerate(STAGES):
    globals()[f"task_{_name}"] = _creator(_i, _name)
'''


def timed(command: list[str], cwd: Path, repeat: int) -> float:
    """Median wall time of `command` in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def example_project(folder: Path, changes: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dodo.py", folder)
    shutil.copytree(REPO / "boards", folder / "boards", dirs_exist_ok=True)
    write(folder, changes or {})
    return folder


def write(folder: Path, train_changes: dict) -> None:
    data = yaml.safe_load((REPO / "tinyedge.yaml").read_text())
    data["train"].update(train_changes)
    (folder / "tinyedge.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def doit(folder: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=folder, check=True,
                            capture_output=True, text=True)
    return time.perf_counter() - started, result.stdout


def throughput(path: Path, make_hasher) -> float:
    """MB/s of one pass over the file (best of three, after a warm-up read fills the page cache)."""
    size = path.stat().st_size
    best = float("inf")
    for _ in range(3):
        hasher = make_hasher()
        started = time.perf_counter()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        hasher.hexdigest()
        best = min(best, time.perf_counter() - started)
    return size / best / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hash-mb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. no-op
        project = example_project(tmp / "tinyedge")
        build_seconds, _ = doit(project)
        plain = tmp / "plain"
        (plain / "out").mkdir(parents=True)
        (plain / "dodo.py").write_text(PLAIN_DODO)
        subprocess.run([sys.executable, "-m", "doit"], cwd=plain, check=True, capture_output=True)
        noop = timed([sys.executable, "-m", "doit"], project, args.repeat)
        plain_noop = timed([sys.executable, "-m", "doit"], plain, args.repeat)
        python_start = timed([sys.executable, "-c", "pass"], tmp, args.repeat)
        stages = len(re.findall(r"^-- ", doit(project)[1], re.M))
        rows += [(f"no-op doit, tinyedge example ({stages} stages)", f"{noop * 1000:.0f} ms", "median"),
                 ("no-op doit, plain doit project (6 tasks, md5)", f"{plain_noop * 1000:.0f} ms", "baseline"),
                 ("python start-up alone", f"{python_start * 1000:.0f} ms", "floor"),
                 ("first build of the example (clean)", f"{build_seconds:.1f} s", "")]

        # 2. hashing
        big = tmp / "big.bin"
        with open(big, "wb") as handle:
            for _ in range(args.hash_mb):
                handle.write(os.urandom(1 << 20))
        throughput(big, xxhash.xxh3_128)
        xxh = throughput(big, xxhash.xxh3_128)
        md5 = throughput(big, hashlib.md5)
        rows += [(f"XXH3-128 on a {args.hash_mb} MB file", f"{xxh:.0f} MB/s", f"{xxh / md5:.1f}x md5"),
                 (f"MD5 on the same file (doit's checker)", f"{md5:.0f} MB/s", "baseline")]

        # 3. restore vs recompute
        write(project, {"epochs": 20})
        compute_seconds, out = doit(project)
        write(project, {})
        restore_seconds, out = doit(project)
        restored = [float(s) for s in re.findall(r"restored from cache in ([0-9.]+) s", out)]
        computed = [float(s) for s in re.findall(r"\(computed in ([0-9.]+) s", out)]
        stage_ratio = sum(computed) / max(sum(restored), 1e-3)
        rows += [(f"change train.epochs: doit ({len(computed)} stages recomputed)", f"{compute_seconds:.2f} s",
                  "recompute"),
                 ("change it back: doit, every stage restored from cache", f"{restore_seconds:.2f} s",
                  f"{compute_seconds / restore_seconds:.0f}x faster"),
                 ("  those stages' own time: computed / restored",
                  f"{sum(computed):.2f} s / {sum(restored):.3f} s", f"{stage_ratio:.0f}x")]
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>18}  note")
    print("-" * (width + 34))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>18}  {note}")


if __name__ == "__main__":
    main()
