"""Multiply-accumulates (MACs) of one inference, counted one way for every caller: the report's per-layer table
(ml.layers, from the Keras model) and the C and MicroPython stages (lowering, from the .tflite).

A MAC is one weight multiplied into an accumulator: convolutions, depthwise convolutions, dense layers and the
gates of recurrent layers have them; pooling, mean, add, softmax and reshapes have none (their adds or compares
are not weight products), so an average pool counts 0 whichever side counts it."""
from __future__ import annotations

UNWEIGHTED = 0
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}   # weight matrices a recurrent cell multiplies per step


def weighted(outputs: int, taps: int) -> int:
    """A layer whose every output value is a sum of `taps` weight products (a kernel window times its input
    depth for a convolution, the window alone for a depthwise one, the input width for a dense layer)."""
    return outputs * taps


def recurrent(kind: str, steps: int, features: int, units: int) -> int:
    """A recurrent layer: per step, each gate multiplies the input (features) and the state (units) into units."""
    return steps * GATES[kind] * units * (features + units)
