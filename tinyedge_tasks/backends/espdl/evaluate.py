"""calibrate (espdl): the quantized graph on the whole test split in esp-ppq's simulator (TorchExecutor, CPU),
fed the integers the firmware's input table gives, written as the Calibration record every backend writes; ESP-DL's
memory estimate is its arena_bytes.

outputs.npy holds what the board's outputs must be, for `doit validate`: the simulator's last integer tensor, and
where a float Softmax ends the graph, ESP-DL's own Softmax arithmetic over it (board_outputs). The simulator is
esp-ppq's arithmetic on the graph the .espdl carries, not ESP-DL's C kernels: `doit validate` on the board is the
proof.
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


def board_outputs(integers: np.ndarray, tensor: dict) -> np.ndarray:
    """What ESP-DL 3.3.9 writes to the output from the last integer tensor (N, values): the integers themselves, or
    its Softmax (dl_module_softmax.hpp, the last axis), in float32 as the chip computes it. int8 looks each value up
    in a table of expf(2^e * q) with no maximum subtracted, so logits above 88.7 (e >= 0) overflow to inf and the
    outputs are NaN; int16 dequantizes and subtracts the row's maximum. Then the sum in class order, and each value
    divided by it. expf is taken correctly rounded (float64, rounded once), as newlib's is to within an ulp."""
    if tensor["softmax"] is None:
        return integers
    scale = 2.0 ** tensor["exponent"]
    with np.errstate(over="ignore", invalid="ignore"):
        if tensor["dtype"] == "int8":
            table = np.exp(scale * (np.arange(256) - 128)).astype(np.float32)
            exp = table[integers.astype(np.int64) + 128]
        else:
            x = integers.astype(np.float32) * np.float32(scale)
            exp = np.exp((x - x.max(axis=1, keepdims=True)).astype(np.float64)).astype(np.float32)
        total = np.zeros(len(exp), np.float32)
        for column in exp.T:
            total += column
        return exp / total[:, None]


def overflow_warning(outputs: np.ndarray, tensor: dict | None) -> str | None:
    """The board's int8 Softmax overflows on some samples (see board_outputs): say how many, and the fix."""
    broken = int(np.sum(~np.isfinite(outputs).all(axis=1))) if outputs.dtype.kind == "f" else 0
    if not broken:
        return None
    return (f"ESP-DL's int8 Softmax overflows on {broken} of {len(outputs)} test samples: its logits are quantized "
            f"at 2^{tensor['exponent']} and it takes expf of them without subtracting the maximum, so exp > 3.4e38 "
            "gives NaN outputs on the board (esp-ppq's simulator subtracts it and does not show this); put the last "
            "layer at 16 bits (compression.espdl.sixteen_bit_layers), whose Softmax subtracts the maximum")


def run(ctx) -> None:
    record = ctx.read(PpqRecord).data
    job = {"task": "simulate", "native": str(ctx.inputs[ESPDL_NATIVE]), "input": record["input"],
           "data": str(ctx.inputs[DATA]), "out": str(ctx.out),
           "transform": list(transform_of(ctx.config["dataset.input"]))}
    run_child(job, ctx.state / "espdl" / "simulate.json", "calibrate: esp-ppq simulating build/quantize/model.native")
    scores = np.load(ctx.out / "scores.npy")
    simulated = json.loads((ctx.out / "simulate.json").read_text())
    tensor = simulated["integer_tensor"]
    outputs = board_outputs(np.load(ctx.out / "integers.npy"), tensor) if tensor else scores
    for name in ("scores.npy", "simulate.json", "integers.npy"):
        (ctx.out / name).unlink(missing_ok=True)
    np.save(ctx.out / "outputs.npy", outputs)   # what `doit validate` expects of the board
    with np.load(ctx.inputs[DATA]) as data:
        labels = data["y_test"]
    float_accuracy = ctx.read(Metrics).test_accuracy
    io = {side: {k: v for k, v in record[side].items() if k not in ("name", "rounding")}
          for side in ("input", "output")}
    result = Calibration.measured(np.argmax(outputs, axis=1), labels, outputs.shape[1], float_accuracy,
                                  model_bytes=ctx.inputs[ESPDL_MODEL].stat().st_size,
                                  arena_bytes=simulated["activation_bytes"], input=io["input"], output=io["output"],
                                  operators=record["operators"], runtime=f"esp-ppq TorchExecutor ({record['target']})")
    ctx.write(result)
    ctx.log(f"ESP-DL {record['quant_type']} ({record['method']}, {record['target']}) simulated accuracy "
            f"{result.quantized_test_accuracy:.4f} (float {float_accuracy:.4f}, drop {result.accuracy_drop_points:.2f} "
            f"points), model.espdl {result.model_bytes} B, activations about {result.arena_bytes} B")
    warnings = [said for said in (warning(record, ctx.read(PpqErrors).data, result, outputs.shape[1]),
                                  overflow_warning(outputs, tensor)) if said]
    for said in warnings:
        ctx.log(f"WARNING: {said}")
    compared = (f"{tensor['name']} ({tensor['dtype']}, 2^{tensor['exponent']})" +
                (", through ESP-DL's Softmax" if tensor["softmax"] else "")) if tensor else "the simulator's outputs"
    ctx.write(EspdlMemory({"target": record["target"], "quant_type": record["quant_type"], "method": record["method"],
                           "board_outputs": compared, "warnings": warnings}))
