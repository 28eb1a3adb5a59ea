"""quantize: float Keras model -> full-integer TFLite FlatBuffer, calibrated on a representative sample.

Optionally quantization-aware fine-tuning first (its TFLM accuracy is recorded beside plain post-training
quantization's, on the same test split). The model must run in TFLM, not only convert; layer_error.json says
which layer loses most to quantization.
"""
from __future__ import annotations

import numpy as np

from ..artifacts import DATA, FLOAT_MODEL, LayerError, QuantizeSummary
from ..ml.sampling import representative_indices
from ..tflite import model_file, runtime
from ..tflite.convert import check_runs, convert, layer_error


def aware_model(model):
    """tfmot's quantization-aware copy of `model`, with what was frozen still frozen. tfmot's QuantizeWrapperV2
    tracks the wrapped layer's kernel among its own trainable weights whatever the layer's trainable flag, so a
    frozen backbone would be trained (and a MobileNetV2 from a weights file collapsed to uniform outputs, val_loss
    ln 3 on 3 classes): those weights move to the non-trainable ones."""
    import tensorflow_model_optimization as tfmot

    aware = tfmot.quantization.keras.quantize_model(model)
    for layer in aware.layers:
        if not layer.trainable and layer._trainable_weights:
            layer._non_trainable_weights.extend(layer._trainable_weights)
            layer._trainable_weights.clear()
    return aware


def _aware(model, data: dict, transform, ctx):
    """Quantization-aware fine-tuning: fake-quantized weights and activations in training, at the learning rate of
    the last training phase (train.fine_tune's when there was one): it goes on from where training ended."""
    from ..ml.keras_util import as_float, compile_model
    aware = aware_model(model)
    fine_tune = ctx.config["train.fine_tune"]
    learning_rate = fine_tune["learning_rate"] if fine_tune else ctx.config["train.learning_rate"]
    compile_model(aware, learning_rate)
    epochs = ctx.config["compression.quantize.aware_epochs"]
    ctx.log(f"quantization-aware fine-tuning, {epochs} epochs at learning rate {learning_rate:g}")
    aware.fit(as_float(data["x_train"], transform), data["y_train"], epochs=epochs,
              batch_size=ctx.config["train.batch_size"], shuffle=True, verbose=2,
              validation_data=(as_float(data["x_val"], transform), data["y_val"]))
    return aware


def _tflm_accuracy(tflite: bytes, data: dict, transform) -> float:
    scores = runtime.predict(model_file.interpreter(tflite), data["x_test"], transform)
    return float(np.mean(np.argmax(scores, axis=1) == data["y_test"]))


def run(ctx) -> None:
    from ..ml.keras_util import as_float, deterministic, load_data, load_model
    from ..preprocess import transform_of

    transform = transform_of(ctx.config["dataset.input"])
    seed = ctx.config["project.seed"]
    deterministic(seed)
    data = load_data(ctx.inputs[DATA])
    float_model = load_model(ctx.inputs[FLOAT_MODEL], "the float model", ctx.config["train.trust_model_code"])
    calibrate, scheme = ctx.config["compression.calibrate"], ctx.config["compression.quantize.scheme"]
    chosen = representative_indices(data["y_train"], calibrate["samples"], calibrate["stratified"], seed)
    ctx.log(f"calibrating {scheme} ranges on {len(chosen)} training samples")
    representative = as_float(data["x_train"][chosen], transform)
    tflite = convert(float_model, representative, scheme)
    check_runs(tflite, scheme, data["x_test"][:1])
    counts = np.bincount(data["y_train"][chosen], minlength=int(data["y_train"].max()) + 1)
    summary = {"scheme": scheme, "aware": ctx.config["compression.quantize.aware"],
               "representative_samples": len(chosen), "per_class": counts.tolist()}
    errors = layer_error(float_model, representative, scheme)  # before QAT, which may rewrap the layers
    if summary["aware"]:
        errors["note"] = ("measured on post-training quantization of the float model: the QuantizationDebugger "
                          "cannot measure a quantization-aware model")
        summary["ptq_test_accuracy"] = _tflm_accuracy(tflite, data, transform)
        tflite = convert(_aware(float_model, data, transform, ctx), representative, scheme)
        check_runs(tflite, scheme, data["x_test"][:1])
        summary["qat_test_accuracy"] = _tflm_accuracy(tflite, data, transform)
        ctx.log(f"TFLM test accuracy: post-training {summary['ptq_test_accuracy']:.4f}, "
                f"quantization-aware {summary['qat_test_accuracy']:.4f}")
    worst = max(errors["layers"], key=lambda row: row["rmse/scale"], default=None)
    summary.update(bytes=len(tflite), worst_layer=worst and worst["layer"])
    (ctx.out / "model.tflite").write_bytes(tflite)
    ctx.write(LayerError(errors))
    ctx.write(QuantizeSummary(**summary))
    ctx.log(f"{scheme} model: {len(tflite)} bytes"
            + (f"; largest per-layer error {worst['rmse/scale']} steps at {worst['layer']} ({worst['op']})"
               if worst else ""))
