"""The C backend against TFLM on the zoo models of tests/fixtures/c (tiny_cnn, mobilenet; int8 per-channel and
per-tensor; unpruned and structured-pruned), every TFLM figure measured in the same run:

- arena: the C backend's planned arena against TFLM's smallest (the bisection calibrate uses, real TFLM allocator);
- code and weight bytes on the Cortex-M4: each generated .c compiled alone (arm-none-eabi-size), the constant
  arrays (weights, biases, requantization tables) summed with arm-none-eabi-nm, code = text - constants;
- instructions per inference (QEMU mps2-an386, -icount) and per multiply-accumulate;
- host time per inference: the generated C built by gcc -O2 against the TFLM runtime (PyPI tflite-micro), both on
  the whole test split on this machine (the TFLM figure includes one Python call per invoke).

    python benchmarks/bench_c_backend.py [--samples 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from tinyedge_tasks.backends.c.generate import generate
from tinyedge_tasks.lowering.lower import lower
from tinyedge_tasks.preprocess import UNIT, input_table
from tinyedge_tasks.tflite import runtime, worker
from tinyedge_tasks.toolchains import qemu
from tinyedge_tasks.toolchains.host import compile_host, run_host

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "c"
ZOO = [f"{model}_{scheme}_{prune}" for model in ("tiny_cnn", "mobilenet") for scheme in ("int8", "int8_per_tensor")
       for prune in ("none", "structured")]
CONSTANTS = r"op\d+_(weights|bias|multipliers|shifts)"


def tflm_seconds(tflite: bytes, inputs: np.ndarray) -> float:
    engine = runtime.tflm(tflite, runtime.PROBE_ARENA)
    start = time.perf_counter()
    for sample in inputs:
        engine.set_input(sample[None], 0)
        engine.invoke()
    return (time.perf_counter() - start) / len(inputs)


def measure(name: str, samples: int, work: Path) -> dict:
    tflite = (FIXTURES / f"{name}.tflite").read_bytes()
    model = lower(tflite)
    with np.load(FIXTURES / "data.npz") as data:
        inputs = input_table(model.input.scale, model.input.zero_point, "int8", UNIT)[data["x_test"]]
    src = work / name / "src"
    src.mkdir(parents=True)
    for file, text in generate(model).items():
        (src / file).write_text(text)
    objects = qemu.object_sizes(src, work / name / "obj")
    constants = qemu.symbol_bytes(work / name / "obj" / "model.o", CONSTANTS)
    run = qemu.run(qemu.compile_firmware(src, work / name / "m4"), inputs[:samples])
    _, host = run_host(compile_host(src, work / name / "host"), inputs)
    tflm_arena, _ = worker.smallest_arena(tflite, inputs[:1], f"{name} (TFLM arena search)")
    return {"model": name, "arena": model.arena_size, "tflm_arena": tflm_arena, "code": sum(
        o["text"] for o in objects.values()) - constants, "weights": constants, "insn": run.instructions_per_inference,
        "macs": model.macs, "host_us": host * 1e6, "tflm_us": tflm_seconds(tflite, inputs) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8, help="test samples run in QEMU per model")
    args = parser.parse_args()
    columns = ("model", "arena B", "TFLM arena B", "ratio", "code B", "weights B", "insn/inference", "MACs",
               "insn/MAC", "host us", "TFLM us")
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    with tempfile.TemporaryDirectory(prefix="tinyedge-bench-c-") as work:
        for name in ZOO:
            r = measure(name, args.samples, Path(work))
            print(f"| {r['model']} | {r['arena']} | {r['tflm_arena']} | {r['arena'] / r['tflm_arena']:.3f} | "
                  f"{r['code']} | {r['weights']} | {r['insn']:.0f} | {r['macs']} | {r['insn'] / r['macs']:.2f} | "
                  f"{r['host_us']:.0f} | {r['tflm_us']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
