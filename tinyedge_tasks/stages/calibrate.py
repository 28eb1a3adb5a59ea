"""calibrate: run the quantized model in the real TFLM runtime on the test split; measure what the board needs."""
from __future__ import annotations

import json

import numpy as np

from .. import tflm


def run(ctx) -> None:
    with np.load(ctx.inputs["dataset/data.npz"]) as data:
        x_test, y_test = data["x_test"], data["y_test"]
    model_bytes = ctx.inputs["quantize/model.tflite"].read_bytes()
    float_metrics = json.loads(ctx.inputs["train/metrics.json"].read_text())

    arena = tflm.smallest_arena(model_bytes, tflm.model_input(model_bytes, x_test[:1]))
    ctx.log(f"smallest TFLM arena: {arena} bytes")

    engine = tflm.interpreter(model_bytes, arena)
    scores = tflm.predict(engine, x_test, progress=ctx.log)
    predicted = np.argmax(scores, axis=1)
    accuracy = float(np.mean(predicted == y_test))
    input_details, output_details = tflm.io_details(engine)
    result = {
        "quantized_test_accuracy": accuracy,
        "float_test_accuracy": float_metrics["test_accuracy"],
        "accuracy_drop_points": round(100 * (float_metrics["test_accuracy"] - accuracy), 3),
        "test_samples": int(len(y_test)),
        "model_bytes": len(model_bytes),
        "arena_bytes": arena,
        "input": input_details,
        "output": output_details,
        "operators": sorted({op["op"] for op in tflm.operators(model_bytes)}),
        "confusion": np.bincount(y_test * scores.shape[1] + predicted,
                                 minlength=scores.shape[1] ** 2).reshape(scores.shape[1], -1).tolist(),
    }
    (ctx.out / "calibration.json").write_text(json.dumps(result, indent=1))
    ctx.log(f"TFLM accuracy {accuracy:.4f} (float {float_metrics['test_accuracy']:.4f}, "
            f"drop {result['accuracy_drop_points']:.2f} points), model {len(model_bytes)} B, arena {arena} B")
