"""calibrate (espdl): the quantized graph on the whole test split in esp-ppq's simulator (TorchExecutor, CPU),
written as the Calibration record every backend writes; ESP-DL's memory estimate is its arena_bytes.

The simulator is esp-ppq's arithmetic on the graph the .espdl carries, not ESP-DL's C kernels: a check on the
chip (`model->test()` with esp-ppq's test values) remains the proof.
"""
from __future__ import annotations

import json

import numpy as np

from ...artifacts import (DATA, ESPDL_MODEL, ESPDL_NATIVE, Calibration, EspdlMemory, Metrics, PpqErrors,
                         PpqRecord)
from ...preprocess import transform_of
from .child import run_child

DROP_WARNING = 2.0   # accuracy points lost to quantization worth a warning
WORST = 3
CHANCE = 1.5         # a float accuracy below this many times 1/classes is guessing: no quantization setting helps


def worst_layers(errors: dict, count: int = WORST) -> list[dict]:
    """Ranked by graph-wise error: a clipped activation range shows up downstream, not in its own layer-wise
    error (kl on the example: layer-wise < 1e-5 everywhere, graph-wise 0.87 at conv2, 98.8 % -> 34.6 %)."""
    return sorted(errors["ops"], key=lambda row: row["graphwise"], reverse=True)[:count]


def warning(record: dict, errors: dict, result: Calibration, classes: int) -> str | None:
    """None when the drop from the float model's own accuracy is small. A float model at chance is said to be so
    (its loss is noise: no quantization setting helps). Else names the worst layers and what fixed such losses
    here: minmax instead of kl/mse/percentile (kl took the example from 98.8 % to 34.6 %, minmax kept 98.8 %),
    or those layers at 16 bits."""
    drop = result.accuracy_drop_points
    if drop <= DROP_WARNING:
        return None
    if result.float_test_accuracy < CHANCE / classes:
        return (f"the float model itself is at chance ({result.float_test_accuracy:.1%} on {classes} classes, "
                f"chance {1 / classes:.1%}): the {drop:.1f}-point difference after quantization is noise, not "
                "quantization error; train the model (train.epochs) or check that the data set is what it expects")
    worst = worst_layers(errors)
    named = ", ".join(f"{row['layer'] or row['op']} (graph-wise error {row['graphwise']:.3g})" for row in worst)
    layers = sorted({row["layer"] for row in worst if row["layer"]})
    fixes = [] if record["method"] == "minmax" else ["compression.espdl.method: minmax"]
    if record["quant_type"] != "w16a16" and layers:
        fixes.append(f"compression.espdl.sixteen_bit_layers: [{', '.join(layers)}]")
    if record["quant_type"] == "w8a8":
        fixes.append("compression.espdl.bits: 16 (twice the bytes)")
    return (f"ESP-DL {record['quant_type']} ({record['method']}) loses {drop:.1f} accuracy points; the largest "
            f"errors are at {named}. Try " + ", or ".join(fixes))


def run(ctx) -> None:
    record = ctx.read(PpqRecord).data
    job = {"task": "simulate", "native": str(ctx.inputs[ESPDL_NATIVE]),
           "data": str(ctx.inputs[DATA]), "out": str(ctx.out),
           "transform": list(transform_of(ctx.config["dataset.input"]))}
    run_child(job, ctx.state / "espdl" / "simulate.json", "calibrate: esp-ppq simulating build/quantize/model.native")
    scores = np.load(ctx.out / "scores.npy")
    (ctx.out / "scores.npy").unlink()
    memory = json.loads((ctx.out / "memory.json").read_text())
    (ctx.out / "memory.json").unlink()
    with np.load(ctx.inputs[DATA]) as data:
        labels = data["y_test"]
    float_accuracy = ctx.read(Metrics).test_accuracy
    io = {side: {k: v for k, v in record[side].items() if k not in ("name", "rounding")}
          for side in ("input", "output")}
    result = Calibration.measured(np.argmax(scores, axis=1), labels, scores.shape[1], float_accuracy,
                                  model_bytes=ctx.inputs[ESPDL_MODEL].stat().st_size,
                                  arena_bytes=memory["activation_bytes"], input=io["input"], output=io["output"],
                                  operators=record["operators"], runtime=f"esp-ppq TorchExecutor ({record['target']})")
    ctx.write(result)
    ctx.log(f"ESP-DL {record['quant_type']} ({record['method']}, {record['target']}) simulated accuracy "
            f"{result.quantized_test_accuracy:.4f} (float {float_accuracy:.4f}, drop {result.accuracy_drop_points:.2f} "
            f"points), model.espdl {result.model_bytes} B, activations about {result.arena_bytes} B")
    warnings = []
    said = warning(record, ctx.read(PpqErrors).data, result, scores.shape[1])
    if said:
        warnings.append(said)
        ctx.log(f"WARNING: {said}")
    ctx.write(EspdlMemory({"target": record["target"], "quant_type": record["quant_type"], "method": record["method"],
                           "warnings": warnings}))
