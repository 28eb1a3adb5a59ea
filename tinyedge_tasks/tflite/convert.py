"""The TFLite converter: a float Keras model -> a full-integer flatbuffer that must also run in TFLM.

Shared by the backends that start from the `.tflite` (TFLM, and code generators that read it).
"""
from __future__ import annotations

import csv
import io

import numpy as np

from ..errors import TinyedgeError
from ..native import captured_stderr
from . import runtime

DEBUG_SAMPLES = 50  # samples the per-layer error table is measured on (each runs float + quantized models)
SCHEMES = {  # scheme -> (supported ops set, model input/output type)
    "int8": ("TFLITE_BUILTINS_INT8", "int8"),
    "int8_per_tensor": ("TFLITE_BUILTINS_INT8", "int8"),
    "int16x8": ("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8", "int16"),
}


def _converter(model, representative: np.ndarray, scheme: str):
    from ..ml.keras_util import tf
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
        raise TinyedgeError(f"compression.quantize.scheme: the TFLite converter cannot make a {scheme} model "
                            f"of this network: {str(exc).strip().splitlines()[-1]}") from None


def check_runs(tflite: bytes, scheme: str, image: np.ndarray) -> None:
    """Convertible is not runnable: TFLM lacks some kernels (int8 EXP, LOG, ...). Fail here, quoting TFLM's
    own words (it prints the operator and the type it refused to stderr), not at calibrate or on the board."""
    with captured_stderr() as said:
        try:
            engine = runtime.interpreter(tflite)
            engine.set_input(runtime.quantize_images(engine, image), 0)
            engine.invoke()
            problem = None
        except RuntimeError as exc:
            problem = str(exc)
    if problem:
        ops = sorted({op["op"] for op in runtime.operators(tflite)})
        raise TinyedgeError(f"compression.quantize.scheme: the {scheme} model converts but does not run in TFLM "
                            f"({problem}: {'; '.join(said[-3:])}); its operators: {', '.join(ops)}. Choose another "
                            "scheme or replace the layer TFLM names with one it runs in that type")


def layer_error(model, representative: np.ndarray, scheme: str) -> dict:
    """TFLite's QuantizationDebugger: each quantized layer's output against the float model's, in units of
    that layer's quantization step (rmse/scale above ~0.3 marks a layer that loses accuracy)."""
    from ..ml.keras_util import tf
    if scheme == "int16x8":
        return {"scheme": scheme, "layers": [],
                "note": "TFLite's QuantizationDebugger measures int8 models only; no table for int16x8"}
    debug_samples = representative[:DEBUG_SAMPLES]
    with captured_stderr():  # the debugger converts twice and prints each conversion's progress
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=_converter(model, representative, scheme),
            debug_dataset=lambda: ([sample[None]] for sample in debug_samples))
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    rows = []
    for row in csv.DictReader(dump):
        rmse = float(row["mean_squared_error"]) ** 0.5
        scale = float(row["scale"])
        tensor = row["tensor_name"].split(";")[0]
        parts = tensor.split("/")  # "model/layer/op": the Keras layer is the middle part
        rows.append({"layer": parts[1] if len(parts) > 2 else tensor, "tensor": tensor, "op": row["op_name"],
                     "elements": int(float(row["num_elements"])), "scale": _round(scale),
                     "mean_error": _round(float(row["mean_error"])),
                     "max_abs_error": _round(float(row["max_abs_error"])),
                     "rmse": _round(rmse), "rmse/scale": _round(rmse / scale if scale else 0.0)})
    return {"scheme": scheme, "debug_samples": len(debug_samples), "layers": rows}


def _round(value: float) -> float:
    """Six significant digits: the table stays byte-stable across runs of the float reference."""
    return float(f"{value:.6g}")
