"""tf_keras model -> ONNX, the graph esp-ppq quantizes, checked against Keras with onnxruntime.

The batch dimension stays dynamic: esp-ppq calibrates and the simulator evaluates in batches, and a batch-1
signature would block both. Opset 18 is the one ESP-DL recommends (operator_support_state.md of esp-dl 3.3.9).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...errors import TinyedgeError
from ...ml.keras_util import as_float

OPSET = 18
INPUT_NAME = "input"   # a Keras input named `in` breaks tf2onnx's SavedModel step: never use the Keras name
RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
BATCH = 64


def refuse_unexportable(model, where: str) -> None:
    """Layers tf2onnx cannot turn into something esp-ppq and ESP-DL run: stop before a crash or a float graph."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in RECURRENT:
            raise TinyedgeError(
                f"{where}: layer '{layer.name}' is a {kind}; tf2onnx exports Keras recurrent layers as a Loop/Scan "
                "graph that esp-ppq cannot quantize and ESP-DL cannot run (ESP-DL's LSTM/GRU modules take the ONNX "
                "LSTM/GRU operator, which tf2onnx does not emit for tf_keras). Replace it with Conv1D / Dense layers "
                "over a fixed window, or use firmware.backend: tflm")
        if "argmax" in kind.lower() or "argmax" in str(layer.get_config().get("function", "")).lower():
            raise TinyedgeError(f"{where}: layer '{layer.name}' computes ArgMax, which crashes the ONNX exporter; "
                                "end the model with Dense(+softmax) and let the firmware take the top class")


def export(model, path: Path, where: str, opset: int = OPSET) -> tuple[dict, float]:
    """Write `path` (.onnx) with a dynamic batch; returns {opset, input, output, input_shape} and the seconds."""
    import tensorflow as tf
    import tf2onnx

    refuse_unexportable(model, where)
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise TinyedgeError(f"{where}: input shape {shape} has an unknown dimension; ESP-DL needs a fixed height, "
                            "width and channels: give the Input layer a full shape")
    signature = [tf.TensorSpec((None, *shape), tf.float32, name=INPUT_NAME)]
    start = time.perf_counter()
    # tf2onnx numbers the nodes it inserts from a process-wide counter (tf2onnx.utils.make_name), which one of its
    # modules also draws from when the first conversion imports it: imported, then restarted, the names, hence the
    # .espdl bytes, do not depend on what the process exported before (check's preflight does)
    import tf2onnx.rewriter.loop_rewriter_base  # noqa: F401
    tf2onnx.utils.INTERNAL_NAME = 1
    try:
        onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    except Exception as exc:  # tf2onnx raises bare Exception/ValueError/KeyError from deep inside TensorFlow
        raise TinyedgeError(f"{where}: tf2onnx could not export the model to ONNX opset {opset} "
                            f"({type(exc).__name__}: {exc}); simplify the model's custom layers") from None
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_model.SerializeToString())
    return {"opset": opset, "input": INPUT_NAME, "output": onnx_model.graph.output[0].name,
            "input_shape": [None, *shape]}, seconds


def compare_with_keras(model, onnx_path: Path, images: np.ndarray, transform: tuple[float, float]) -> dict:
    """The ONNX graph against Keras on uint8 images: {max_abs_diff, argmax_agreement, samples}."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = as_float(images, transform)
    keras_out = model.predict(x, batch_size=256, verbose=0)
    onnx_out = np.concatenate([session.run(None, {name: x[i:i + BATCH]})[0] for i in range(0, len(x), BATCH)])
    return {"max_abs_diff": float(np.max(np.abs(keras_out - onnx_out))),
            "argmax_agreement": float(np.mean(keras_out.argmax(1) == onnx_out.argmax(1))),
            "samples": int(len(x))}
