"""Per-layer size and cost of a Keras model: parameters and multiply-accumulates (MACs) per inference.

MACs, not parameters, decide the time on a microcontroller: a 3x3 convolution on a 32x32 map costs
~1000 times its weight count. Shared by prune (before/after) and the reports; the counting rules are
lowering.macs', which the C and MicroPython stages count the .tflite with.
"""
from __future__ import annotations

import math

from ..lowering.macs import GATES, UNWEIGHTED, recurrent, weighted


def _macs(layer) -> int:
    """Multiply-accumulates of one inference (batch 1): every kind with weight products, by lowering.macs' rules."""
    kind = type(layer).__name__
    if kind == "Bidirectional":
        return _macs(layer.forward_layer) + _macs(layer.backward_layer)
    if kind in GATES:
        steps, features = layer.input_shape[1:3]
        return recurrent(kind, steps, features, layer.units)
    outputs = math.prod(layer.output_shape[1:])
    if kind in ("DepthwiseConv2D", "DepthwiseConv1D"):
        return weighted(outputs, math.prod(layer.depthwise_kernel.shape[:-2]))
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        window = math.prod(layer.depthwise_kernel.shape[:-2])
        depthwise = math.prod(layer.depthwise_kernel.shape[-2:])   # input channels x depth multiplier
        return weighted(outputs // layer.filters * depthwise, window) + weighted(outputs, depthwise)
    if kind in ("Conv1D", "Conv2D", "Conv3D", "Dense"):   # kernel (window..., input depth per group, outputs)
        return weighted(outputs, math.prod(layer.kernel.shape[:-1]))
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):   # each input scatters (window..., outputs)
        return weighted(math.prod(layer.input_shape[1:]), math.prod(layer.kernel.shape[:-1]))
    return UNWEIGHTED


def layer_table(model) -> list[dict]:
    """One row per layer: name, type, output shape, parameters and MACs."""
    return [{"name": layer.name, "type": type(layer).__name__,
             "output_shape": [int(v) for v in layer.output_shape[1:]],
             "params": int(layer.count_params()), "macs": int(_macs(layer))}
            for layer in model.layers if type(layer).__name__ != "InputLayer"]


def weight_rows(model) -> list[dict]:
    """layer_table plus what the report shows per layer: kernel sparsity, int8 weight bytes (int32 biases, as
    TFLM stores them) and int8 output activation bytes."""
    import numpy as np
    rows = []
    for row, layer in zip(layer_table(model), (l for l in model.layers if type(l).__name__ != "InputLayer")):
        weights = layer.get_weights()
        kernel = weights[0] if weights else None
        rows.append({**row, "sparsity": None if kernel is None or kernel.ndim < 2 else float(np.mean(kernel == 0)),
                     "weight_bytes": int(sum(w.size * (4 if w.ndim == 1 else 1) for w in weights)),
                     "activation_bytes": int(np.prod(row["output_shape"]))})
    return rows
