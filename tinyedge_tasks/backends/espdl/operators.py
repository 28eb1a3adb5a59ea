"""The ONNX operators ESP-DL can run, and the check that stops a model the chip would reject.

esp-ppq quantizes what it knows and exports everything else as float without a word (Abs, Erf, Cos, ...);
ESP-DL then fails at load time on the chip, because its module creator has no entry for the operator.
So the check runs twice: on the ONNX graph before quantization (naming the Keras layer) and on the
quantized graph that goes into the .espdl.
"""
from __future__ import annotations

from ...errors import TinyedgeError

ESPDL_VERSION = "3.3.9"
# The keys of ModuleCreator::register_dl_modules(), esp-dl 3.3.9 (commit 12c0616d),
# esp-dl/dl/module/include/dl_module_creator.hpp:134-204. "Gelu" is run by the LUT module.
ESPDL_OPERATORS = frozenset({
    "Add", "AveragePool", "Clip", "Concat", "Conv", "DepthToSpace", "DequantizeLinear", "Div", "Elu", "Equal",
    "Exp", "Flatten", "GRU", "Gather", "Gelu", "Gemm", "GlobalAveragePool", "Greater", "GreaterOrEqual",
    "HardSigmoid", "HardSwish", "Identity", "InsertZeros", "LSTM", "LUT", "LayerNormalization", "LeakyRelu",
    "Less", "LessOrEqual", "Log", "LogSoftmax", "LpNormalization", "MatMul", "MaxPool", "Mod", "Mul", "Neg",
    "PRelu", "Pad", "Pow", "QuantizeLinear", "RMSNormalization", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
    "Relu", "RequantizeLinear", "Reshape", "Resize", "ReverseSequence", "ScatterND", "Sigmoid", "Slice",
    "Softmax", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "StreamingCache", "Sub", "Swish", "Tanh", "Transpose",
    "Unsqueeze",
})
# ONNX operators esp-ppq removes before export: folded into a neighbour, or rewritten into ESP-DL modules
# (ConvTranspose -> InsertZeros + Conv, esp-ppq 1.3.12 "ConvTranspose Decomposition Pass").
REWRITTEN_BY_ESPPPQ = frozenset({"Constant", "BatchNormalization", "ConvTranspose", "Dropout"})

# What to do instead, for the operators Keras models produce most often.
ADVICE = {
    "Abs": "use ReLU-family activations, or compute |x| as Relu(x) + Relu(-x) (Neg and Relu run on ESP-DL)",
    "Erf": "use gelu(approximate=True) or swish instead of the exact gelu",
    "Cos": "precompute the trigonometric features outside the model",
    "Sin": "precompute the trigonometric features outside the model",
    "ArgMax": "end the model with Dense(+softmax) and take the top class in firmware",
    "Loop": "replace the recurrent layer with Conv1D / Dense layers over a fixed window",
    "Scan": "replace the recurrent layer with Conv1D / Dense layers over a fixed window",
    "Cast": "remove the dtype change from the model (cast outside it)",
}


def keras_layer(node_name: str, layer_names: list[str]) -> str | None:
    """The Keras layer an ONNX node came from: tf2onnx names nodes '<model>/<layer>/<tf op>'."""
    parts = node_name.split("/")
    for name in sorted(layer_names, key=len, reverse=True):
        if name in parts:
            return name
    return None


def unsupported(nodes: list[tuple[str, str]], allowed: frozenset = ESPDL_OPERATORS) -> list[tuple[str, str]]:
    """(op_type, node_name) pairs ESP-DL cannot run."""
    return [(op, name) for op, name in nodes if op not in allowed]


def _refuse(bad: list[tuple[str, str]], layer_names: list[str], where: str) -> None:
    lines = []
    for op, name in bad:
        layer = keras_layer(name, layer_names)
        origin = f"Keras layer '{layer}'" if layer else f"ONNX node '{name}'"
        advice = ADVICE.get(op, "replace the layer with one built from supported operators")
        lines.append(f"{op} (from {origin}): {advice}")
    raise TinyedgeError(
        f"{where}: ESP-DL {ESPDL_VERSION} has no module for " + "; ".join(lines) +
        ". esp-ppq would export it as float and the model would fail to load on the chip. Operators ESP-DL runs: "
        + ", ".join(sorted(ESPDL_OPERATORS)) + "; or use the tflm backend")


def check_onnx(model, layer_names: list[str], where: str) -> list[str]:
    """Refuse an ONNX model (onnx.ModelProto) with an operator ESP-DL lacks; returns its operator types."""
    nodes = [(node.op_type, node.name) for node in model.graph.node]
    bad = unsupported(nodes, ESPDL_OPERATORS | REWRITTEN_BY_ESPPPQ)
    if bad:
        _refuse(bad, layer_names, where)
    return sorted({op for op, _ in nodes})


def check_graph(graph, layer_names: list[str], where: str) -> list[str]:
    """The same check on esp-ppq's quantized graph (what the .espdl holds); returns its operator types."""
    nodes = [(op.type, op.name) for op in graph.operations.values()]
    bad = unsupported(nodes)
    if bad:
        _refuse(bad, layer_names, where)
    return sorted({op for op, _ in nodes})
