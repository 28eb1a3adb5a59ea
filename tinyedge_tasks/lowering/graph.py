"""A .tflite flatbuffer read into plain dataclasses: tensors, operators and their options, Keras layer names."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..artifacts import INT8_TFLITE
from ..errors import TinyedgeError

DTYPES = {"FLOAT32": np.float32, "INT32": np.int32, "INT8": np.int8, "INT16": np.int16, "INT64": np.int64,
          "UINT8": np.uint8, "BOOL": np.bool_}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                      # the schema's TensorType name: INT8, INT32, FLOAT32, ...
    scales: list[float]             # float32 values as stored, widened to Python floats
    zero_points: list[int]
    quantized_dimension: int
    data: np.ndarray | None         # constant tensors only

    @property
    def scale(self) -> float:
        return self.scales[0] if self.scales else 0.0

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(DTYPES.get(self.dtype, np.int8)).itemsize


@dataclass
class Operator:
    index: int
    name: str                       # builtin name: CONV_2D, ...
    inputs: list[int]               # tensor indices, -1 for an omitted optional input
    outputs: list[int]
    options: dict = field(default_factory=dict)   # option names in snake_case, enums as their names
    layer: str = ""                 # Keras layer name: the first output's name before ';'


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    return schema_py_generated


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _options(obj, schema) -> dict:
    """Builtin options object -> dict; enum fields become their names so that renderers need no schema."""
    if obj is None:
        return {}
    activations = _enum_names(schema.ActivationFunctionType)
    paddings = _enum_names(schema.Padding)
    found = {}
    for key, value in vars(obj).items():
        key = _snake(key)
        if key == "fused_activation_function":
            value = activations.get(value, str(value))
        elif key == "padding":
            value = paddings.get(value, str(value))
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        found[key] = value
    return found


def read_graph(tflite: bytes) -> Graph:
    """The main subgraph of a .tflite model, with constant data as NumPy arrays."""
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    except Exception as error:  # a truncated or foreign file fails deep in flatbuffers
        raise TinyedgeError(f"model: expected a .tflite flatbuffer, could not read it ({error}); "
                            f"pass the bytes of build/{INT8_TFLITE}") from error
    if not model.subgraphs:
        raise TinyedgeError("model: the .tflite file has no subgraph; re-run the quantize stage")
    graph = model.subgraphs[0]
    types = _enum_names(schema.TensorType)
    builtins = _enum_names(schema.BuiltinOperator)
    tensors = []
    for index, t in enumerate(graph.tensors):
        dtype = types.get(t.type, str(t.type))
        buffer = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        data = None
        shape = tuple(int(v) for v in (t.shape if t.shape is not None else []))
        if buffer is not None and len(buffer) and dtype in DTYPES:
            data = np.frombuffer(bytes(np.asarray(buffer, dtype=np.uint8)), dtype=DTYPES[dtype]).reshape(shape)
        q = t.quantization
        scales = [float(s) for s in q.scale] if q is not None and q.scale is not None else []
        zero_points = [int(z) for z in q.zeroPoint] if q is not None and q.zeroPoint is not None else []
        tensors.append(Tensor(index, (t.name or b"").decode(), shape, dtype, scales, zero_points,
                              int(q.quantizedDimension) if q is not None else 0, data))
    operators = []
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = builtins.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"BUILTIN_{code.builtinCode}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.customCode or b'').decode()}"
        outputs = [int(i) for i in op.outputs]
        layer = tensors[outputs[0]].name.split(";")[0] if outputs else ""
        operators.append(Operator(index, name, [int(i) for i in op.inputs], outputs,
                                  _options(op.builtinOptions, schema), layer))
    return Graph(tensors, operators, [int(i) for i in graph.inputs], [int(i) for i in graph.outputs])
