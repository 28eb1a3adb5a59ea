"""Per-layer size and cost of a Keras model: parameters and multiply-accumulates (MACs) per inference.

MACs, not parameters, decide the time on a microcontroller: a 3x3 convolution on a 32x32 map costs
~1000 times its weight count. Shared by prune (before/after) and the reports.
"""
from __future__ import annotations

import math


def _macs(layer) -> int:
    """Multiply-accumulates of one inference (batch 1) of the layers that compute them."""
    kind = type(layer).__name__
    out = layer.output_shape[1:]
    if kind == "Conv2D":
        kernel = layer.kernel.shape
        return math.prod(out) * kernel[0] * kernel[1] * kernel[2] // layer.groups
    if kind == "DepthwiseConv2D":
        kernel = layer.depthwise_kernel.shape
        return math.prod(out) * kernel[0] * kernel[1]
    if kind == "Dense":
        return math.prod(out) * layer.kernel.shape[0]
    return 0


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
