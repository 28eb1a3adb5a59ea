"""calibrate: run the quantized model in the real TFLM runtime on the test split; measure what the board needs.
The backend's first stage after the shared quantize: it first refuses an operator the firmware cannot register.
outputs.npy keeps TFLM's raw outputs, which `doit validate` compares the board's with (the ESP-IDF shell's TFLM
adapter runs the same esp-tflite-micro kernels).

TFLM runs in child processes (tflite/worker.py): a crash is a message naming the stage, the model and the signal."""
from __future__ import annotations

import numpy as np

from ...artifacts import DATA, INT8_TFLITE, Calibration, Metrics
from ...preprocess import transform_of
from ...tflite import model_file
from ...tflite import runtime as tflm
from ...tflite import worker
from .preflight import check_operators


def run(ctx) -> None:
    with np.load(ctx.inputs[DATA]) as data:
        x_test, y_test = data["x_test"], data["y_test"]
    model_bytes = ctx.inputs[INT8_TFLITE].read_bytes()
    float_accuracy = ctx.read(Metrics).test_accuracy

    what = f"calibrate: build/{INT8_TFLITE}"
    check_operators(model_bytes, what)  # first: an operator the firmware lacks stops before anything runs
    arena, notes = worker.smallest_arena(model_bytes, tflm.model_input(model_bytes, x_test[:1]),
                                         f"{what} (arena search)")
    for note in notes:
        ctx.log(note)
    ctx.log(f"smallest TFLM arena: {arena} bytes")

    engine = model_file.interpreter(model_bytes, arena)
    scores = tflm.predict(engine, x_test, transform_of(ctx.config["dataset.input"]), progress=ctx.log,
                          what=f"{what} (inference on the test split)")
    input_details, output_details = model_file.io_details(engine)
    result = Calibration.measured(np.argmax(scores, axis=1), y_test, scores.shape[1], float_accuracy,
                                  model_bytes=len(model_bytes), arena_bytes=arena, input=input_details,
                                  output=output_details,
                                  operators=sorted({op["op"] for op in model_file.operators(model_bytes)}))
    ctx.write(result)
    np.save(ctx.out / "outputs.npy", tflm.raw_outputs(scores, output_details))   # what `doit validate` expects
    ctx.log(f"TFLM accuracy {result.quantized_test_accuracy:.4f} (float {float_accuracy:.4f}, "
            f"drop {result.accuracy_drop_points:.2f} points), model {len(model_bytes)} B, arena {arena} B")
