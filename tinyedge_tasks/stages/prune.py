"""prune: make the float model smaller before quantization, then fine-tune it to win back accuracy.

unstructured: tfmot magnitude pruning zeroes the smallest weights. On a microcontroller a zero in a dense
int8 tensor costs the same as any other weight, so this only helps a compressed download (zlib ratio).
structured: removes whole filters (least L1 norm) and rebuilds a smaller dense model: fewer bytes, fewer
MACs, a smaller arena. prune.json reports both kinds with the same before/after measurements.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from ..artifacts import DATA, TRAINED_MODEL, PruneResult
from ..errors import TinyedgeError

WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense")
# Layers that act on each channel alone: removed channels pass straight through them.
CHANNELWISE = ("ReLU", "Activation", "LeakyReLU", "ELU", "MaxPooling2D", "AveragePooling2D", "Dropout",
               "ZeroPadding2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "BatchNormalization")
MEASURE_SAMPLES = 100  # calibration draw for the before/after int8 measurement only


def _chain(model) -> list:
    """The model's layers if they form a single chain (Sequential or equivalent), else a clear error."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    residual = next((layer for layer in layers if type(layer).__name__ == "Add"), None)
    if residual is not None:
        raise TinyedgeError(f"compression.prune.kind: structured pruning cannot cut the residual Add '{residual.name}' "
                            f"of model '{model.name}' consistently (both of its inputs would have to lose the same "
                            "filters); use kind: unstructured, or a model without residual blocks (mobilenet_v1)")
    for previous, layer in zip(layers, layers[1:]):
        if len(layer.inbound_nodes) != 1 or layer.input is not previous.output:
            raise TinyedgeError(f"compression.prune.kind: structured pruning rebuilds a chain of layers, but "
                                f"layer '{layer.name}' of model '{model.name}' does not simply follow "
                                f"'{previous.name}' (a branch or a merge); use kind: unstructured")
    return layers


def _slice_inputs(kind: str, weights: list, keep) -> list:
    """Drop the input channels of a layer that the layer before it no longer makes."""
    if keep is None:
        return weights
    if kind in ("Conv2D", "Dense"):
        return [weights[0][..., keep, :], *weights[1:]]
    if kind == "DepthwiseConv2D":
        return [weights[0][:, :, keep, :], *[w[keep] for w in weights[1:]]]
    return [w[keep] for w in weights]  # BatchNormalization: gamma, beta, mean, variance


def shrink(model, sparsity: float, keras):
    """A new, smaller model without the `sparsity` fraction of filters of lowest L1 norm in every Conv2D and
    hidden Dense layer, the kept weights copied over; also {layer: (filters before, filters kept)}."""
    layers = _chain(model)
    weighted = [layer for layer in layers if type(layer).__name__ in WEIGHTED]
    output_layer = weighted[-1] if weighted else None
    configs, weights, plan, keep = [], [], {}, None
    for layer in layers:
        kind, config = type(layer).__name__, layer.get_config()
        if keep is not None and kind == "DepthwiseConv2D" and layer.depth_multiplier != 1:
            raise TinyedgeError(f"compression.prune.kind: structured pruning cannot shrink the input of "
                                f"'{layer.name}' (depth_multiplier {layer.depth_multiplier}); use kind: unstructured")
        if keep is not None and kind not in WEIGHTED + CHANNELWISE + ("Flatten",):
            raise TinyedgeError(f"compression.prune.kind: structured pruning does not know how removed channels "
                                f"pass through layer '{layer.name}' ({kind}); use kind: unstructured")
        values = _slice_inputs(kind, layer.get_weights(), keep)
        if kind == "Flatten" and keep is not None:
            keep = np.arange(math.prod(layer.input_shape[1:])).reshape(layer.input_shape[1:])[..., keep].ravel()
        elif kind in ("Conv2D", "Dense") and layer is not output_layer:
            count = values[0].shape[-1]
            kept = max(1, int(round(count * (1 - sparsity))))
            l1 = np.abs(values[0]).reshape(-1, count).sum(axis=0)
            keep = np.sort(np.argsort(-l1, kind="stable")[:kept])
            values = [values[0][..., keep], *[w[keep] for w in values[1:]]]
            config["filters" if kind == "Conv2D" else "units"] = kept
            plan[layer.name] = (count, kept)
        elif kind in ("Conv2D", "Dense"):
            keep = None
        configs.append((type(layer), config))
        weights.append(values)
    if not plan:
        raise TinyedgeError(f"compression.prune.kind: structured pruning found nothing to prune in model "
                            f"'{model.name}': it has no Conv2D or hidden Dense layer whose filters could be removed "
                            f"(only the output layer{f' {output_layer.name!r}' if output_layer else ''}); "
                            "use kind: unstructured or a model with convolution layers")
    if all(kept == count for count, kept in plan.values()):
        raise TinyedgeError(f"compression.prune.sparsity: {sparsity} removes no filter from model '{model.name}' "
                            f"(filters per layer: {', '.join(f'{n} {c}' for n, (c, _) in plan.items())}); "
                            "raise compression.prune.sparsity")
    small = keras.Sequential([keras.Input(model.input_shape[1:])] + [cls.from_config(c) for cls, c in configs],
                             name=model.name)
    for layer, values in zip(small.layers, weights):
        layer.set_weights(values)
    return small, plan


def _unstructured(model, config: dict, data: dict, batch_size: int, learning_rate: float, transform, ctx):
    """tfmot magnitude pruning with the mask updated several times per epoch, however small the data set."""
    import tensorflow_model_optimization as tfmot

    from ..ml.keras_util import as_float, compile_model
    sparsity, epochs = config["sparsity"], config["epochs"]
    steps = math.ceil(len(data["y_train"]) / batch_size)
    total = steps * epochs
    frequency = max(1, steps // 4)  # tfmot's default of 100 steps never fires on a data set of a few batches
    end = (2 * (total - 1) // 3) // frequency * frequency  # the last third fine-tunes under the final mask
    if config["schedule"] == "polynomial" and end > 0:
        schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, 0, end, frequency=frequency)
    else:
        end = 0
        schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, 0, frequency=frequency)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    compile_model(wrapped, learning_rate)
    ctx.log(f"magnitude pruning to {sparsity}: {steps} steps/epoch, mask update every {frequency} steps, "
            f"target reached at step {end} of {total}")
    wrapped.fit(as_float(data["x_train"], transform), data["y_train"], epochs=epochs, batch_size=batch_size,
                shuffle=True, verbose=2, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
                validation_data=(as_float(data["x_val"], transform), data["y_val"]))
    pruned = [layer.layer.name for layer in wrapped.layers if getattr(layer, "pruning_vars", None)]
    return tfmot.sparsity.keras.strip_pruning(wrapped), pruned, {
        "steps_per_epoch": steps, "frequency": frequency, "final_sparsity_step": end}


def _sparsity(model, names: list[str]) -> dict:
    """Fraction of exact zeros in the kernel of each layer tfmot pruned (it leaves biases and depthwise
    kernels dense)."""
    return {layer.name: round(float(np.mean(layer.kernel.numpy() == 0)), 6)
            for layer in model.layers if layer.name in names}


def measure(model, data: dict, seed: int, transform: tuple[float, float]) -> dict:
    """Float accuracy, parameters, MACs, int8 .tflite bytes (raw and zlib) and the smallest TFLM arena."""
    from ..ml.keras_util import accuracy, as_float
    from ..ml.layers import layer_table
    from ..ml.sampling import representative_indices
    from ..tflite import runtime
    from ..tflite.convert import convert

    chosen = representative_indices(data["y_train"], MEASURE_SAMPLES, True, seed)
    tflite = convert(model, as_float(data["x_train"][chosen], transform), "int8")
    table = layer_table(model)
    return {"test_accuracy": accuracy(model, data["x_test"], data["y_test"], transform),
            "params": sum(row["params"] for row in table), "macs": sum(row["macs"] for row in table),
            "int8_bytes": len(tflite), "int8_zlib_bytes": len(zlib.compress(tflite, 9)),
            "arena_bytes": runtime.smallest_arena(tflite, runtime.model_input(tflite, data["x_test"][:1]))}


def run(ctx) -> None:
    from ..ml.keras_util import (accuracy, as_float, compile_model, deterministic, keras, load_data, load_model,
                                 save_model)
    from ..ml.summary import model_summary
    from ..preprocess import transform_of

    transform = transform_of(ctx.config["dataset.input"])
    seed, config = ctx.config["project.seed"], ctx.config["compression.prune"]
    batch_size, learning_rate = ctx.config["train.batch_size"], ctx.config["train.learning_rate"]
    deterministic(seed)
    data = load_data(ctx.inputs[DATA])
    model = load_model(ctx.inputs[TRAINED_MODEL], "the trained model", ctx.config["train.trust_model_code"])
    before = measure(model, data, seed, transform)  # first: tfmot prunes the layers it wraps in place
    result = {"kind": config["kind"], "target_sparsity": config["sparsity"], "schedule": config["schedule"],
              "epochs": config["epochs"]}
    if config["kind"] == "structured":
        pruned, plan = shrink(model, config["sparsity"], keras)
        result["filters"] = {name: {"before": count, "after": kept} for name, (count, kept) in plan.items()}
        ctx.log("filters kept: " + ", ".join(f"{n} {c}->{k}" for n, (c, k) in plan.items()))
        compile_model(pruned, learning_rate)
        pruned.fit(as_float(data["x_train"], transform), data["y_train"], epochs=config["epochs"],
                   batch_size=batch_size, shuffle=True, verbose=2,
                   validation_data=(as_float(data["x_val"], transform), data["y_val"]))
    else:
        pruned, names, result["pruning"] = _unstructured(model, config, data, batch_size, learning_rate, transform,
                                                         ctx)
        result["sparsity"] = _sparsity(pruned, names)
        ctx.log("sparsity per layer: " + ", ".join(f"{n} {s:.3f}" for n, s in result["sparsity"].items()))
    after = measure(pruned, data, seed, transform)
    result.update(before=before, after=after,
                  accuracy_drop_points=round(100 * (before["test_accuracy"] - after["test_accuracy"]), 3),
                  ratios={key: round(after[key] / before[key], 4) for key in before if key != "test_accuracy"})
    save_model(pruned, ctx.out / "model.h5")
    # tfmot's wrappers are gone from the saved one
    saved = load_model(ctx.out / "model.h5", "the pruned model", ctx.config["train.trust_model_code"])
    ctx.write(model_summary(saved, accuracy(saved, data["x_test"], data["y_test"], transform), data))
    ctx.write(PruneResult(result))
    ctx.log(f"float test accuracy {before['test_accuracy']:.4f} -> {after['test_accuracy']:.4f}; "
            f"int8 {before['int8_bytes']} -> {after['int8_bytes']} B (zlib {before['int8_zlib_bytes']} -> "
            f"{after['int8_zlib_bytes']} B), arena {before['arena_bytes']} -> {after['arena_bytes']} B, "
            f"MACs {before['macs']} -> {after['macs']}")
