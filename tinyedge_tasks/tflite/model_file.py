"""A .tflite model as both sides of a TFLM run see it: the FlatBuffer read directly (operators, input and output
quantization) and the handle (model bytes and arena) a parent holds; the live interpreter is made only in a
child (tflite/worker.py). runtime.py (the parent's API) and worker.py (the child's) both build on this module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARENA_FLOOR = 1024  # TFLM crashes (not raises) on arenas below a few hundred bytes; never try smaller
ARENA_STEP = 16     # TFLM aligns arena allocations to 16 bytes
PROBE_ARENA = 8 * 1024 * 1024  # ample for any model an MCU runs: the probe ceiling of the arena search
TYPES = {0: "float32", 2: "int32", 3: "uint8", 7: "int16", 9: "int8"}  # TFLite TensorType -> NumPy dtype name


def flatbuffer_schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    return schema_py_generated


def main_graph(model_bytes: bytes):
    return flatbuffer_schema().Model.GetRootAsModel(model_bytes, 0).Subgraphs(0)


def operators(model_bytes: bytes) -> list[dict]:
    """Each operator of the main graph: its builtin name and the name of the tensor it writes (its layer)."""
    schema = flatbuffer_schema()
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
    tensor = main_graph(model_bytes).Tensors(tensor_index)
    quant = tensor.Quantization()
    scaled = quant is not None and quant.ScaleLength() > 0
    return {"dtype": TYPES.get(tensor.Type(), f"type {tensor.Type()}"),
            "shape": [int(v) for v in tensor.ShapeAsNumpy()],
            "scale": float(quant.Scale(0)) if scaled else 0.0,
            "zero_point": int(quant.ZeroPoint(0)) if scaled else 0}


def io_details(engine: Engine) -> tuple[dict, dict]:
    """(input, output) as {dtype, shape, scale, zero_point}, as TFLM reports them."""
    graph = main_graph(engine.model_bytes)
    return _details(engine.model_bytes, graph.Inputs(0)), _details(engine.model_bytes, graph.Outputs(0))



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
