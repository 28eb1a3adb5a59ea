"""quantize: float Keras model -> full-integer TFLite FlatBuffer, calibrated on a representative sample."""
from __future__ import annotations

import json

import numpy as np

from ..errors import TinyedgeError

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


def convert(model, representative: np.ndarray, scheme: str) -> bytes:
    from ..keras_util import tf
    ops, io_type = SCHEMES[scheme]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in representative)
    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, ops)]
    converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
    converter._experimental_disable_per_channel = scheme == "int8_per_tensor"
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises ConverterError, RuntimeError or ValueError
        raise TinyedgeError(f"compression.quantize.scheme: the TFLite converter cannot make a {scheme} model "
                            f"of this network: {str(exc).strip().splitlines()[-1]}") from None


def run(ctx) -> None:
    from ..keras_util import as_float, deterministic, load_data, load_model

    seed = ctx.config["project.seed"]
    deterministic(seed)
    data = load_data(ctx.inputs["dataset/data.npz"])
    model = load_model(ctx.inputs["prune/model.h5"], "the float model")
    calibrate, scheme = ctx.config["compression.calibrate"], ctx.config["compression.quantize.scheme"]
    chosen = representative_indices(data["y_train"], calibrate["samples"], calibrate["stratified"], seed)
    ctx.log(f"calibrating {scheme} ranges on {len(chosen)} training samples")
    tflite = convert(model, as_float(data["x_train"][chosen]), scheme)
    (ctx.out / "model.tflite").write_bytes(tflite)
    counts = np.bincount(data["y_train"][chosen], minlength=int(data["y_train"].max()) + 1)
    (ctx.out / "quantize.json").write_text(json.dumps(
        {"scheme": scheme, "representative_samples": len(chosen), "per_class": counts.tolist(),
         "bytes": len(tflite)}, indent=1))
    ctx.log(f"{scheme} model: {len(tflite)} bytes")
