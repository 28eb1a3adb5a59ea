"""The real TFLite Micro runtime (PyPI tflite-micro): run int8 models, find the smallest tensor arena.

Shared by quantize (does it run), calibrate (accuracy, arena) and codegen (operator list for the resolver).
TFLM aborts or segfaults on some models, and a crash cannot be caught in-process: every TFLM run happens in a
child process (tflite/worker.py), and what callers hold here is a handle (model bytes and arena), never a live
interpreter. Model details (operators, input/output quantization) are read from the FlatBuffer directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..preprocess import UNIT, input_table

ARENA_FLOOR = 1024  # TFLM crashes (not raises) on arenas below a few hundred bytes; never try smaller
ARENA_STEP = 16     # TFLM aligns arena allocations to 16 bytes
PROBE_ARENA = 8 * 1024 * 1024  # ample for any model an MCU runs: the probe ceiling of the arena search
TYPES = {0: "float32", 2: "int32", 3: "uint8", 7: "int16", 9: "int8"}  # TFLite TensorType -> NumPy dtype name


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    return schema_py_generated


def _graph(model_bytes: bytes):
    return _schema().Model.GetRootAsModel(model_bytes, 0).Subgraphs(0)


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


@dataclass(frozen=True)
class Engine:
    """What TFLM is given in each child run: the model and the arena size."""
    model_bytes: bytes
    arena_size: int


def interpreter(model_bytes: bytes, arena_size: int = PROBE_ARENA) -> Engine:
    return Engine(model_bytes, arena_size)


def tflm(model_bytes: bytes, arena_size: int):
    """The live TFLM interpreter: only ever made in a child process (tflite/worker.py)."""
    from tflite_micro.python.tflite_micro import runtime
    return runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)


def _details(model_bytes: bytes, tensor_index: int) -> dict:
    tensor = _graph(model_bytes).Tensors(tensor_index)
    quant = tensor.Quantization()
    scaled = quant is not None and quant.ScaleLength() > 0
    return {"dtype": TYPES.get(tensor.Type(), f"type {tensor.Type()}"),
            "shape": [int(v) for v in tensor.ShapeAsNumpy()],
            "scale": float(quant.Scale(0)) if scaled else 0.0,
            "zero_point": int(quant.ZeroPoint(0)) if scaled else 0}


def io_details(engine: Engine) -> tuple[dict, dict]:
    """(input, output) as {dtype, shape, scale, zero_point}, as TFLM reports them."""
    graph = _graph(engine.model_bytes)
    return _details(engine.model_bytes, graph.Inputs(0)), _details(engine.model_bytes, graph.Outputs(0))


def quantize_images(engine: Engine, images: np.ndarray, transform: tuple[float, float]) -> np.ndarray:
    """uint8 pixels -> the model's quantized input, through the table the firmware embeds."""
    details, _ = io_details(engine)
    return input_table(details["scale"], details["zero_point"], details["dtype"], transform)[images]


def model_input(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """uint8 images -> a quantized input tensor of this model, to size its arena or probe that it runs: values do
    not change either, so any input transform does."""
    return quantize_images(interpreter(model_bytes), images, UNIT)


def smallest_arena(model_bytes: bytes, sample: np.ndarray, what: str = "TFLM arena search") -> int:
    """Bisection on the arena size with the real TFLM allocator: the least size (16-byte steps) that runs
    the quantized `sample`."""
    from . import worker
    return worker.smallest_arena(model_bytes, sample, what)[0]


def predict(engine: Engine, images: np.ndarray, transform: tuple[float, float], progress=None,
            what: str = "TFLM inference") -> np.ndarray:
    """Class scores (dequantized) for uint8 images, one TFLM invoke per image, in a child process."""
    from . import worker
    return worker.predict(engine.model_bytes, engine.arena_size, quantize_images(engine, images, transform), what,
                          progress=progress or (lambda line: None))


def invoke_all(live, inputs: np.ndarray, out: dict, progress) -> np.ndarray:
    """Child side of predict: quantized inputs through a live interpreter, dequantized scores out."""
    scores = []
    for index, sample in enumerate(inputs):
        live.set_input(sample[None], 0)
        live.invoke()
        raw = live.get_output(0)[0].astype(np.float32)
        scores.append((raw - out["zero_point"]) * out["scale"])
        if (index + 1) % max(1, len(inputs) // 5) == 0:
            progress(f"TFLM inference {index + 1}/{len(inputs)}")
    return np.stack(scores)
