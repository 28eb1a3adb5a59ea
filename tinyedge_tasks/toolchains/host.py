"""The generated C model compiled with the host's gcc and run on every sample: a fast bit-exactness check."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .process import run_tool

if TYPE_CHECKING:   # imported where used: toolchains/__init__ is imported by a no-op `doit`
    import numpy as np

HARNESS = Path(__file__).parent / "qemu" / "harness.c"   # the same runner as on the Cortex-M, plain stdio here
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


def compile_host(src_dir: Path, out_dir: Path, skip: tuple[str, ...] = (), timeout: float = 120) -> Path:
    """Every .c file of src_dir but those named in `skip` (the board's application: the ESP-IDF shell needs the
    board's camera and UART) and the harness -> out_dir/model_host (an executable)."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / "model_host"
    sources = sorted(str(p) for p in src_dir.glob("*.c") if p.name not in skip)
    run_tool(["gcc", *CFLAGS, "-I", str(src_dir), *sources, str(HARNESS), "-o", str(exe)],
             f"compiling {src_dir} for the host", timeout)
    return exe


def run_host(exe: Path, inputs: np.ndarray, timeout: float = 120) -> tuple[np.ndarray, float]:
    """(outputs as int8 (N, output bytes), seconds per inference measured by the harness) for int8 inputs (N, ...)."""
    import numpy as np
    inputs = np.ascontiguousarray(inputs, dtype=np.int8).reshape(len(inputs), -1)
    with tempfile.TemporaryDirectory(prefix="tinyedge-host-") as work:
        given, got = Path(work) / "in.bin", Path(work) / "out.bin"
        given.write_bytes(inputs.tobytes())
        line = run_tool([str(exe), str(given), str(got), str(len(inputs))], f"running {exe}", timeout)
        outputs = np.frombuffer(got.read_bytes(), dtype=np.int8).reshape(len(inputs), -1)
    seconds = float(line.split(",")[1].split()[0])
    return outputs, seconds / len(inputs)
