"""The TFLite converter: a float Keras model -> a full-integer flatbuffer that must also run in TFLM.

Shared by the backends that start from the `.tflite` (TFLM, and code generators that read it).
"""
from __future__ import annotations

import csv
import io
import re

import numpy as np

from ..artifacts import INT8_TFLITE
from ..errors import TinyedgeError
from ..native.stderr import captured_stderr
from . import model_file, runtime

DEBUG_SAMPLES = 50  # samples the per-layer error table is measured on (each runs float + quantized models)
SCHEMES = {  # scheme -> (supported ops set, model input/output type)
    "int8": ("TFLITE_BUILTINS_INT8", "int8"),
    "int8_per_tensor": ("TFLITE_BUILTINS_INT8", "int8"),
    "int16x8": ("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8", "int16"),
}


def _converter(model, representative: np.ndarray, scheme: str):
    from ..native.tensorflow import tf
    ops, io_type = SCHEMES[scheme]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in representative)
    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, ops)]
    converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
    converter._experimental_disable_per_channel = scheme == "int8_per_tensor"
    return converter


def convert(model, representative: np.ndarray, scheme: str) -> bytes:
    converter = _converter(model, representative, scheme)
    try:
        with captured_stderr():  # the MLIR converter's progress lines; its errors come in the exception
            return converter.convert()
    except Exception as exc:  # the converter raises ConverterError, RuntimeError or ValueError
        raise TinyedgeError(_converter_error(str(exc), scheme)) from None


def _article(scheme: str) -> str:
    return "an" if scheme[0] in "aeiou" else "a"


def _converter_error(text: str, scheme: str) -> str:
    """The converter's own words without its desktop-only advice (SELECT_TF_OPS, Flex delegates cannot run on
    a microcontroller): the TensorFlow operations it could not lower and the Keras layers they come from."""
    text = text.replace("\\n", "\n")
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op", text)) | set(re.findall(r"\b(tf\.\w+)\(", text)))
    layers = sorted({_keras_layer(name) for name in re.findall(r'loc\(\w*\(?"([^"]+)"', text)} - {""})
    head = f"compression.quantize.scheme: the TFLite converter cannot make {_article(scheme)} {scheme} model of this network"
    if ops:
        where = f" in layer {', '.join(layers)}" if layers else ""
        return (f"{head}: TensorFlow operations {', '.join(ops)}{where} have no TFLite builtin operator, so no "
                "microcontroller runtime can run them (the converter's SELECT_TF_OPS would need full TensorFlow on "
                "the device). Replace that layer with one made of builtin operators (an LSTM needs a fixed batch "
                "size: keras.Input(..., batch_size=1), or use Conv1D/Dense layers) or choose another backend")
    lines = [line.strip() for line in text.splitlines() if line.strip() and "SELECT_TF_OPS" not in line
             and "tf.lite.OpsSet" not in line and "https://" not in line]
    return f"{head}: {lines[-1] if lines else text.strip()}"


def _keras_layer(tensor: str) -> str:
    """The Keras layer of a converter tensor or location name ("model/layer/op..." -> "layer")."""
    parts = tensor.split(";")[0].split("/")
    return parts[1] if len(parts) > 2 else parts[0]


def check_runs(tflite: bytes, scheme: str, image: np.ndarray) -> None:
    """Convertible is not runnable: the output range must not be degenerate (an untrained model: TFLM's SOFTMAX
    aborts on it), and TFLM, the reference every TFLite backend is measured against, must set it up and run it (it
    lacks some kernels: int8 EXP, LOG, ...). All in a child process: a TFLM crash is a message. Whether the
    firmware has the operators is the backend's check, in its first stage: quantize serves every backend alike."""
    from . import worker
    where = f"quantize: build/{INT8_TFLITE}"
    worker.check_output_range(tflite, where)
    problem = worker.probe(tflite, runtime.model_input(tflite, image), f"{where} (TFLM run of one test image)")
    if problem and worker.arena_refused(problem):
        raise worker.over_ceiling(where, problem)
    if problem:
        ops = sorted({op["op"] for op in model_file.operators(tflite)})
        raise TinyedgeError(f"compression.quantize.scheme: the {scheme} model converts but does not run in TFLM "
                            f"({problem}); its operators: {', '.join(ops)}. Choose another scheme or replace the "
                            "layer TFLM names with one it runs in that type")


def layer_error(model, representative: np.ndarray, scheme: str) -> dict:
    """TFLite's QuantizationDebugger: each quantized layer's output against the float model's, in units of
    that layer's quantization step (rmse/scale above ~0.3 marks a layer that loses accuracy)."""
    from ..native.tensorflow import tf
    if scheme == "int16x8":
        return {"scheme": scheme, "layers": [],
                "note": "TFLite's QuantizationDebugger measures int8 models only; no table for int16x8"}
    debug_samples = representative[:DEBUG_SAMPLES]
    with captured_stderr():  # the debugger converts twice and prints each conversion's progress
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=_converter(model, representative, scheme),
            debug_dataset=lambda: ([sample[None]] for sample in debug_samples))
        debugger.run()
    layers = [layer.name for layer in model.layers]
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    rows = []
    for row in csv.DictReader(dump):
        rmse = float(row["mean_squared_error"]) ** 0.5
        scale = float(row["scale"])
        tensor = row["tensor_name"].split(";")[0]
        rows.append({"layer": _layer_name(row["tensor_name"], layers), "tensor": tensor, "op": row["op_name"],
                     "elements": int(float(row["num_elements"])), "scale": _round(scale),
                     "mean_error": _round(float(row["mean_error"])),
                     "max_abs_error": _round(float(row["max_abs_error"])),
                     "rmse": _round(rmse), "rmse/scale": _round(rmse / scale if scale else 0.0)})
    return {"scheme": scheme, "debug_samples": len(debug_samples), "layers": rows}


def _layer_name(tensor_name: str, layers: list[str]) -> str:
    """The Keras layer a converter tensor comes from: "model/layer/op" -> "layer"; an output tensor named only
    "StatefulPartitionedCall:0" (the softmax) is the model's last layer."""
    for name in tensor_name.split(";"):
        parts = name.split("/")
        if len(parts) > 2:
            return parts[1]
    return layers[-1] if layers and tensor_name.startswith("StatefulPartitionedCall") else tensor_name.split(";")[0]


def _round(value: float) -> float:
    """Six significant digits: the table stays byte-stable across runs of the float reference."""
    return float(f"{value:.6g}")


def float_footprint(model, sample: np.ndarray) -> dict:
    """Bytes and smallest TFLM arena of the float32 TFLite model, to set the int8 one against."""
    from ..native.tensorflow import tf
    with captured_stderr():
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return {"float_tflite_bytes": len(flatbuffer), "float_arena_bytes": runtime.smallest_arena(flatbuffer, sample)}
