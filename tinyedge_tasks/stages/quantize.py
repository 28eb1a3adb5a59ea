"""quantize: float Keras model -> full-integer TFLite FlatBuffer, calibrated on a representative sample.

Optionally quantization-aware fine-tuning first (its TFLM accuracy is recorded beside plain post-training
quantization's, on the same test split). The model must run in TFLM, not only convert; layer_error.json says
which layer loses most to quantization.
"""
from __future__ import annotations

import csv
import io
import json

import numpy as np

from ..errors import TinyedgeError

DEBUG_SAMPLES = 50  # samples the per-layer error table is measured on (each runs float + quantized models)
SCHEMES = {  # scheme -> (supported ops set, model input/output type)
    "int8": ("TFLITE_BUILTINS_INT8", "int8"),
    "int8_per_tensor": ("TFLITE_BUILTINS_INT8", "int8"),
    "int16x8": ("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8", "int16"),
}


def representative_indices(labels: np.ndarray, samples: int, stratified: bool, seed: int) -> np.ndarray:
    """Which training samples calibrate the ranges; stratified takes classes in turn so each is present."""
    rng = np.random.default_rng(seed)
    if not stratified:
        return np.sort(rng.permutation(len(labels))[:samples])
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chosen, depth = [], 0
    while len(chosen) < samples and depth < max(len(p) for p in per_class):
        chosen += [int(p[depth]) for p in per_class if depth < len(p)][:samples - len(chosen)]
        depth += 1
    return np.sort(np.array(chosen))


def _converter(model, representative: np.ndarray, scheme: str):
    from ..keras_util import tf
    ops, io_type = SCHEMES[scheme]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in representative)
    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, ops)]
    converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
    converter._experimental_disable_per_channel = scheme == "int8_per_tensor"
    return converter


def convert(model, representative: np.ndarray, scheme: str) -> bytes:
    from ..tflm import captured_stderr
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
    from .. import tflm
    with tflm.captured_stderr() as said:
        try:
            engine = tflm.interpreter(tflite)
            engine.set_input(tflm.quantize_images(engine, image), 0)
            engine.invoke()
            problem = None
        except RuntimeError as exc:
            problem = str(exc)
    if problem:
        ops = sorted({op["op"] for op in tflm.operators(tflite)})
        raise TinyedgeError(f"compression.quantize.scheme: the {scheme} model converts but does not run in TFLM "
                            f"({problem}: {'; '.join(said[-3:])}); its operators: {', '.join(ops)}. Choose another "
                            "scheme or replace the layer TFLM names with one it runs in that type")


def layer_error(model, representative: np.ndarray, scheme: str) -> dict:
    """TFLite's QuantizationDebugger: each quantized layer's output against the float model's, in units of
    that layer's quantization step (rmse/scale above ~0.3 marks a layer that loses accuracy)."""
    from ..keras_util import tf
    if scheme == "int16x8":
        return {"scheme": scheme, "layers": [],
                "note": "TFLite's QuantizationDebugger measures int8 models only; no table for int16x8"}
    debug_samples = representative[:DEBUG_SAMPLES]
    from ..tflm import captured_stderr
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


def _aware(model, data: dict, ctx):
    """Quantization-aware fine-tuning: fake-quantized weights and activations in training."""
    import tensorflow_model_optimization as tfmot

    from ..keras_util import as_float, compile_model
    aware = tfmot.quantization.keras.quantize_model(model)
    compile_model(aware, ctx.config["train.learning_rate"])
    epochs = ctx.config["compression.quantize.aware_epochs"]
    ctx.log(f"quantization-aware fine-tuning, {epochs} epochs")
    aware.fit(as_float(data["x_train"]), data["y_train"], epochs=epochs, batch_size=ctx.config["train.batch_size"],
              shuffle=True, verbose=2, validation_data=(as_float(data["x_val"]), data["y_val"]))
    return aware


def _tflm_accuracy(tflite: bytes, data: dict) -> float:
    from .. import tflm
    scores = tflm.predict(tflm.interpreter(tflite), data["x_test"])
    return float(np.mean(np.argmax(scores, axis=1) == data["y_test"]))


def run(ctx) -> None:
    from ..keras_util import as_float, deterministic, load_data, load_model

    seed = ctx.config["project.seed"]
    deterministic(seed)
    data = load_data(ctx.inputs["dataset/data.npz"])
    float_model = load_model(ctx.inputs["prune/model.h5"], "the float model")
    calibrate, scheme = ctx.config["compression.calibrate"], ctx.config["compression.quantize.scheme"]
    chosen = representative_indices(data["y_train"], calibrate["samples"], calibrate["stratified"], seed)
    ctx.log(f"calibrating {scheme} ranges on {len(chosen)} training samples")
    representative = as_float(data["x_train"][chosen])
    tflite = convert(float_model, representative, scheme)
    check_runs(tflite, scheme, data["x_test"][:1])
    counts = np.bincount(data["y_train"][chosen], minlength=int(data["y_train"].max()) + 1)
    summary = {"scheme": scheme, "aware": ctx.config["compression.quantize.aware"],
               "representative_samples": len(chosen), "per_class": counts.tolist()}
    errors = layer_error(float_model, representative, scheme)  # before QAT, which may rewrap the layers
    if summary["aware"]:
        errors["note"] = ("measured on post-training quantization of the float model: the QuantizationDebugger "
                          "cannot measure a quantization-aware model")
        summary["ptq_test_accuracy"] = _tflm_accuracy(tflite, data)
        tflite = convert(_aware(float_model, data, ctx), representative, scheme)
        check_runs(tflite, scheme, data["x_test"][:1])
        summary["qat_test_accuracy"] = _tflm_accuracy(tflite, data)
        ctx.log(f"TFLM test accuracy: post-training {summary['ptq_test_accuracy']:.4f}, "
                f"quantization-aware {summary['qat_test_accuracy']:.4f}")
    worst = max(errors["layers"], key=lambda row: row["rmse/scale"], default=None)
    summary.update(bytes=len(tflite), worst_layer=worst and worst["layer"])
    (ctx.out / "model.tflite").write_bytes(tflite)
    (ctx.out / "layer_error.json").write_text(json.dumps(errors, indent=1))
    (ctx.out / "quantize.json").write_text(json.dumps(summary, indent=1))
    ctx.log(f"{scheme} model: {len(tflite)} bytes"
            + (f"; largest per-layer error {worst['rmse/scale']} steps at {worst['layer']} ({worst['op']})"
               if worst else ""))
