"""The real TFLite Micro runtime (PyPI tflite-micro): run int8 models, find the smallest tensor arena.

Shared by calibrate (accuracy, arena) and codegen (operator list for the MicroMutableOpResolver).
"""
from __future__ import annotations

import numpy as np

from ..native import captured_stderr
from ..preprocess import input_table

ARENA_FLOOR = 1024  # TFLM crashes (not raises) on arenas below a few hundred bytes; never try smaller
ARENA_STEP = 16     # TFLM aligns arena allocations to 16 bytes
PROBE_ARENA = 8 * 1024 * 1024  # ample for any model an MCU runs: for runs where the arena size does not matter


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    return schema_py_generated


def operators(model_bytes: bytes) -> list[dict]:
    """Each operator of the main graph: its builtin name and the name of the tensor it writes (its layer)."""
    schema = _schema()
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    found = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        output = graph.Tensors(op.Outputs(0)).Name().decode() if op.OutputsLength() else ""
        found.append({"op": names.get(builtin, f"BUILTIN_{builtin}"), "layer": output})
    return found


def interpreter(model_bytes: bytes, arena_size: int = PROBE_ARENA):
    from tflite_micro.python.tflite_micro import runtime
    return runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)


def _runs(model_bytes: bytes, arena_size: int, sample: np.ndarray) -> bool:
    try:
        engine = interpreter(model_bytes, arena_size)
        engine.set_input(sample, 0)
        engine.invoke()
        return True
    except RuntimeError:
        return False


def smallest_arena(model_bytes: bytes, sample: np.ndarray) -> int:
    """Bisection on the arena size with the real TFLM allocator: the least size (16-byte steps) that runs."""
    with captured_stderr():
        if _runs(model_bytes, ARENA_FLOOR, sample):
            return ARENA_FLOOR
        low, high = ARENA_FLOOR, max(4 * len(model_bytes), 64 * 1024)
        while not _runs(model_bytes, high, sample):
            low, high = high, high * 2
            if high > 1 << 30:
                raise RuntimeError("TFLM could not allocate this model in 1 GiB of arena")
        while high - low > ARENA_STEP:
            middle = (low + high) // 2 // ARENA_STEP * ARENA_STEP
            if middle <= low:
                break
            low, high = (low, middle) if _runs(model_bytes, middle, sample) else (middle, high)
    return high


def io_details(engine) -> tuple[dict, dict]:
    """(input, output) as {dtype, shape, scale, zero_point}."""
    def plain(details):
        quant = details["quantization_parameters"]
        return {"dtype": np.dtype(details["dtype"]).name, "shape": [int(v) for v in details["shape"]],
                "scale": float(quant["scales"][0]), "zero_point": int(quant["zero_points"][0])}
    return plain(engine.get_input_details(0)), plain(engine.get_output_details(0))


def quantize_images(engine, images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the model's quantized input, through the table the firmware embeds."""
    details, _ = io_details(engine)
    return input_table(details["scale"], details["zero_point"], details["dtype"])[images]


def model_input(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """uint8 images -> the quantized input tensor of this model (its scale and zero point)."""
    return quantize_images(interpreter(model_bytes), images)


def predict(engine, images: np.ndarray, progress=None) -> np.ndarray:
    """Class scores (dequantized) for uint8 images, one TFLM invoke per image."""
    inputs = quantize_images(engine, images)
    _, out = io_details(engine)
    scores = []
    for index, sample in enumerate(inputs):
        engine.set_input(sample[None], 0)
        engine.invoke()
        raw = engine.get_output(0)[0].astype(np.float32)
        scores.append((raw - out["zero_point"]) * out["scale"])
        if progress and (index + 1) % max(1, len(inputs) // 5) == 0:
            progress(f"TFLM inference {index + 1}/{len(inputs)}")
    return np.stack(scores)
