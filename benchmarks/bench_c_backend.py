"""The C backend against TFLM and against its own old generic kernels, every figure measured in the same run, on
the zoo models of tests/fixtures/zoo (tiny_cnn, mobilenet; int8 per-channel and per-tensor; unpruned and
structured-pruned) and three models with MLPerf Tiny's layer shapes, built here with tf_keras and random weights
and quantized with the project's converter (tinyedge_tasks.tflite.convert): MobileNetV1 alpha 0.25 at 96x96x3 with
2 classes (VWW), ResNet-8 at 32x32x3 with 10 classes (IC), DS-CNN with 64 filters at 49x10x1 with 12 classes (KWS).

- instructions per MAC (QEMU mps2-an386 Cortex-M4, -icount): whole inference, and per layer kind from the
  harness's per-operator SysTick counts (conv kxk, conv 1x1, depthwise, fully connected, other: operators
  without MACs count in "whole" only);
- the old kernels: the generator and kernels of commit OLD (the generic run-time-shape loops), taken from git
  history into a temporary folder and run in a child Python, beside the new ones;
- arena (activations + scratch) against TFLM's smallest (the bisection calibrate uses, real TFLM allocator);
- flash: code and constants on the Cortex-M4 (each generated .c compiled alone, arm-none-eabi-size; constant
  arrays summed with arm-none-eabi-nm), against the TFLM model bytes + 20 KB;
- host time per inference: the generated C built by gcc -O2 (the plain C kernels), on this machine;
- differing: samples whose output differs from the TFLM runtime's (host, QEMU), must be 0.

    python benchmarks/bench_c_backend.py [--samples 2] [--models tiny_cnn_int8_none,vww]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

from tinyedge_tasks.backends.c.generate import generate, lower_model
from tinyedge_tasks.lowering.lower import lower
from tinyedge_tasks.preprocess import UNIT, input_table
from tinyedge_tasks.tflite import model_file, worker
from tinyedge_tasks.toolchains import qemu
from tinyedge_tasks.toolchains.host import compile_host, run_host

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "zoo"
ZOO = [f"{model}_{scheme}_{prune}" for model in ("tiny_cnn", "mobilenet") for scheme in ("int8", "int8_per_tensor")
       for prune in ("none", "structured")]
MLPERF = ("vww", "ic", "kws")
OLD = "a1a0b70"   # the last commit with the generic kernels
CONSTANTS = r"op\d+_(weights|bias|multipliers|shifts|channels)"
OLD_GENERATE = """import sys
from pathlib import Path
from tinyedge_tasks.backends.c.generate import generate
from tinyedge_tasks.lowering.lower import lower
src = Path(sys.argv[2])
src.mkdir(parents=True)
for name, text in generate(lower(Path(sys.argv[1]).read_bytes())).items():
    (src / name).write_text(text)
"""


def _kind(op) -> str | None:
    if op.kernel == "conv2d":
        return "conv 1x1" if op.params["k_h"] * op.params["k_w"] == 1 else "conv kxk"
    return {"depthwise_conv2d": "depthwise", "fully_connected": "fc"}.get(op.kernel)


def _mlperf(name: str, work: Path) -> bytes:
    """_build in a child Python: TensorFlow and the TFLM runtime abort when loaded in one process."""
    path = work / f"{name}.tflite"
    subprocess.run([sys.executable, __file__, "--build", name, str(path)], check=True)
    return path.read_bytes()


def _build(name: str) -> bytes:
    """A model with MLPerf Tiny's layer shapes, random weights, quantized int8 per channel by the project."""
    from tinyedge_tasks.ml.keras_util import keras
    from tinyedge_tasks.tflite.convert import convert
    keras.utils.set_random_seed(0)
    layers = keras.layers
    if name == "vww":
        # Keras' own top reshapes with a SHAPE operator: the classifier is written here, without the softmax, whose
        # 2-class int8 form from these random weights TFLM refuses to prepare (SIGABRT; 2 of 7.5M MACs)
        shape = (96, 96, 3)
        base = keras.applications.MobileNet(input_shape=shape, alpha=0.25, weights=None, include_top=False)
        x = layers.GlobalAveragePooling2D()(base.output)
        model = keras.Model(base.input, layers.Dense(2)(x))
    elif name == "ic":
        shape = (32, 32, 3)
        inputs = x = layers.Input(shape)
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same")(x)))
        for filters, stride in ((16, 1), (32, 2), (64, 2)):
            y = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(filters, 3, stride, padding="same")(x)))
            y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(y))
            if stride > 1:
                x = layers.Conv2D(filters, 1, stride)(x)
            x = layers.ReLU()(layers.Add()([x, y]))
        x = layers.AveragePooling2D(8)(x)
        model = keras.Model(inputs, layers.Dense(10, activation="softmax")(layers.Flatten()(x)))
    else:
        shape = (49, 10, 1)
        inputs = x = layers.Input(shape)
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(64, (10, 4), 2, padding="same")(x)))
        for _ in range(4):
            x = layers.ReLU()(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(x)))
            x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(64, 1)(x)))
        x = layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, layers.Dense(12, activation="softmax")(x))
    representative = np.random.default_rng(0).uniform(0, 1, (32, *shape)).astype(np.float32)
    return convert(model, representative, "int8")


def _old_source(tflite: Path, src: Path, old_tree: Path) -> None:
    subprocess.run([sys.executable, "-c", OLD_GENERATE, str(tflite), str(src)], check=True, cwd=old_tree,
                   env={"PYTHONPATH": str(old_tree), "PATH": "/usr/bin:/bin"}, capture_output=True)


def _tflm_outputs(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """TFLM's int8 outputs: the worker's dequantized scores (its child process) quantized back, exact for int8."""
    _, out = model_file.io_details(model_file.interpreter(tflite))
    scores = worker.predict(tflite, model_file.PROBE_ARENA, inputs, "bench: TFLM reference", progress=lambda line: None)
    return np.round(scores / out["scale"] + out["zero_point"]).astype(np.int8)


def _flash(src: Path, work: Path) -> tuple[int, int]:
    """(code bytes, constant bytes) of the generated C on the Cortex-M4."""
    objects = qemu.object_sizes(src, work)
    constants = qemu.symbol_bytes(work / "model.o", CONSTANTS)
    return sum(o["text"] + o["data"] for o in objects.values()) - constants, constants


def measure(name: str, tflite: bytes, samples: int, work: Path, old_tree: Path) -> dict:
    model = lower_model(tflite)
    if name in MLPERF:
        inputs = np.random.default_rng(1).integers(-128, 128, (16, *model.input.shape[1:]), dtype=np.int8)
    else:
        with np.load(FIXTURES / "data.npz") as data:
            inputs = input_table(model.input.scale, model.input.zero_point, "int8", UNIT)[data["x_test"]]
    expected = _tflm_outputs(tflite, inputs)
    (work / "model.tflite").write_bytes(tflite)
    src = work / "new"
    src.mkdir()
    for file, text in generate(model).items():
        (src / file).write_text(text)
    _old_source(work / "model.tflite", work / "old", old_tree)
    result = {"model": name, "macs": model.macs, "tflite": len(tflite),
              "tflm_arena": worker.smallest_arena(tflite, inputs[:1], f"{name} (TFLM arena search)")[0]}
    for flavour in ("old", "new"):
        folder = work / flavour
        run = qemu.run(qemu.compile_firmware(folder, work / f"{flavour}-m4"), inputs[:samples], timeout=1800)
        host, seconds = run_host(compile_host(folder, work / f"{flavour}-host"), inputs)
        code, constants = _flash(folder, work / f"{flavour}-obj")
        arena = int((folder / "model.h").read_text().split("#define TINYEDGE_ARENA_SIZE ")[1].split()[0])
        kinds: dict[str, list[float]] = {}
        for op, count in zip(model.ops, run.layer_instructions):   # empty for the old harness-less model
            if _kind(op):
                kinds.setdefault(_kind(op), [0, 0])
                kinds[_kind(op)][0] += count
                kinds[_kind(op)][1] += op.macs
        result[flavour] = {
            "insn_per_mac": run.instructions_per_inference / model.macs, "arena": arena, "code": code,
            "constants": constants, "host_us": seconds * 1e6,
            "kinds": {kind: insn / macs for kind, (insn, macs) in kinds.items()},
            "differing": int(np.any(host != expected, axis=1).sum() + np.any(run.outputs != expected[:samples],
                                                                              axis=1).sum())}
    return result


def _row(r: dict, flavour: str) -> str:
    f = r[flavour]
    kinds = ", ".join(f"{kind} {value:.2f}" for kind, value in sorted(f["kinds"].items())) or "-"
    flash = f["code"] + f["constants"]
    return (f"| {r['model']} | {flavour} | {f['insn_per_mac']:.2f} | {kinds} | {f['arena']} / {r['tflm_arena']} = "
            f"{f['arena'] / r['tflm_arena']:.2f} | {f['code']} + {f['constants']} = {flash} "
            f"({flash - r['tflite']:+d} vs model) | {f['host_us']:.0f} | {f['differing']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2, help="inputs run in QEMU per model")
    parser.add_argument("--models", default=",".join(ZOO + list(MLPERF)), help="comma-separated names")
    parser.add_argument("--build", nargs=2, metavar=("MODEL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        Path(args.build[1]).write_bytes(_build(args.build[0]))
        return
    print(f"{'MACs':>10}  model; old = the generic kernels of commit {OLD}", flush=True)
    print("| model | kernels | insn/MAC | insn/MAC per layer kind | arena / TFLM's smallest (B) | "
          "flash: code + constants (B) | host us | differing |\n|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="tinyedge-bench-c-") as folder:
        work = Path(folder)
        archive = subprocess.run(["git", "archive", OLD, "tinyedge_tasks"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(work / "old-tree", filter="data")
        for name in args.models.split(","):
            start = time.perf_counter()
            tflite = _mlperf(name, work) if name in MLPERF else (FIXTURES / f"{name}.tflite").read_bytes()
            (work / name).mkdir()
            r = measure(name, tflite, args.samples, work / name, work / "old-tree")
            print(_row(r, "old") + "\n" + _row(r, "new"), flush=True)
            print(f"<!-- {name}: {r['macs']} MACs, model {r['tflite']} B, {time.perf_counter() - start:.0f} s; "
                  f"{json.dumps(r)} -->", flush=True)


if __name__ == "__main__":
    main()
