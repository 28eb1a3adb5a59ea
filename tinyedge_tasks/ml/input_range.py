"""Does a pre-trained model expect the input range dataset.input.transform gives it? A MobileNet trained on [-1, 1]
and fed [0, 1] still runs, and quietly loses accuracy. Three things can say what a model file expects: a rescaling
layer of its own (it wants raw pixels), the layer names of a keras.applications MobileNet (trained on [-1, 1]),
and the statistics its first BatchNormalization learnt (activations far larger or smaller than this data set's;
for float features, the only one that applies, it gives the dataset.input.scale to set).
Imported from inside train's run() only (TensorFlow)."""
from __future__ import annotations

import math

import numpy as np

from ..preprocess import PRESETS, to_float, transform_of
from .model_spec import is_file

SAMPLES = 64          # training samples run through the layers before the first BatchNormalization
FAR = 8.0             # a factor this far from 1 between the learnt and the measured spread is "another range"
MOBILENETS = {"MobileNet (v1)": ("conv1", "conv_dw_1", "conv_pw_1"),
              "MobileNetV2": ("Conv1", "expanded_conv_depthwise", "block_1_expand")}


def _span(transform: tuple[float, float]) -> str:
    divisor, offset = transform
    return f"[{offset:g}, {255 / divisor + offset:g}]"


def _preset_of(transform: tuple[float, float]) -> str:
    return next((name for name, value in PRESETS.items() if value == transform), "scale/offset")


def _own_rescaling(model) -> str | None:
    first = next((layer for layer in model.layers if type(layer).__name__ != "InputLayer"), None)
    if type(first).__name__ in ("Rescaling", "Normalization"):
        return f"its first layer {first.name} ({type(first).__name__}) rescales the input itself, so it expects " \
               f"raw values {_span(PRESETS['raw'])}"
    return None


def _names(model) -> set[str]:
    """Every layer name, nested models' too (a transfer-learned file often holds its backbone as one layer)."""
    names = set()
    for layer in model.layers:
        names |= {layer.name} | (_names(layer) if hasattr(layer, "layers") else set())
    return names


def _mobilenet(model) -> str | None:
    names = _names(model)
    for kind, marks in MOBILENETS.items():
        if all(mark in names for mark in marks):
            return (f"its layers ({', '.join(marks)}) are keras.applications {kind}'s, trained on "
                    f"{_span(PRESETS['symmetric'])}")
    return None


def _spread_ratio(model, x: np.ndarray) -> tuple[str, float] | None:
    """(first BatchNormalization, median over channels of measured / learnt standard deviation of its input)."""
    from .keras_util import keras
    norm = next((layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"), None)
    if norm is None or norm.axis not in ([-1], [len(norm.input.shape) - 1]):
        return None
    try:
        before = keras.Model(model.inputs, norm.input)
    except (ValueError, TypeError, AttributeError):   # a nested or multi-input graph: it cannot be known
        return None
    values = before.predict(x, batch_size=SAMPLES, verbose=0)
    measured = values.reshape(-1, values.shape[-1]).std(axis=0)
    learnt = np.sqrt(norm.moving_variance.numpy())
    alive = (learnt > 1e-6) & (measured > 1e-9)
    return (norm.name, float(np.median(measured[alive] / learnt[alive]))) if alive.any() else None


def _far_spread(model, x: np.ndarray, transform: tuple[float, float]) -> tuple[str, float] | None:
    """(reason, measured / learnt spread) when the first BatchNormalization learnt a spread FAR from this data's."""
    found = _spread_ratio(model, to_float(x[:SAMPLES], transform))
    if found is None or 1 / FAR < found[1] < FAR:
        return None
    name, ratio = found
    size = f"{1 / ratio:.3g} times larger" if ratio < 1 else f"{ratio:.3g} times smaller"
    reason = f"its first BatchNormalization ({name}) learnt inputs whose spread is {size} than this data set gives it"
    return reason, ratio


def _statistics(model, pixels: np.ndarray, transform: tuple[float, float]) -> tuple[str | None, str | None]:
    """(reason, suggested preset) from the first BatchNormalization's learnt spread; (None, None) when it is near."""
    found = _far_spread(model, pixels, transform)
    if found is None:
        return None, None
    reason, ratio = found
    # the layers before the first normalisation are linear in scale: another divisor multiplies the spread
    return reason, min(PRESETS, key=lambda preset: abs(math.log(ratio * transform[0] / PRESETS[preset][0])))


def _features_warning(model, spec: str, x: np.ndarray, transform: tuple[float, float]) -> str | None:
    """Float features have no preset to suggest: the scale that would give the learnt spread."""
    found = _far_spread(model, x, transform)
    if found is None:
        return None
    reason, ratio = found
    return (f"warning: train.model: {spec}: {reason}; if it was trained on features scaled otherwise, set "
            f"dataset.input.scale: {1 / transform[0] / ratio:.3g} (now {1 / transform[0]:g})")


def warning(model, spec: str, root, pixels: np.ndarray, input_config: dict) -> str | None:
    """One warning line when `spec` is a model file that seems to expect another input range than dataset.input
    gives (a zoo model or a user function is trained here, on that range)."""
    if not is_file(spec, root):
        return None
    transform = transform_of(input_config)
    if pixels.dtype != np.uint8:
        return _features_warning(model, spec, pixels, transform)
    declared = _preset_of(transform)
    reason = _own_rescaling(model)
    expected = "raw" if reason else None
    if reason is None:
        reason = _mobilenet(model)
        expected = "symmetric" if reason else None
    if reason is None:
        reason, expected = _statistics(model, pixels, transform)
    if reason is None or expected == declared:
        return None
    given = (f"dataset.input.transform: {input_config.get('transform')}" if declared != "scale/offset"
             else "dataset.input.scale/offset")
    return (f"warning: train.model: {spec}: {reason}, but {given} gives {_span(transform)}; set "
            f"dataset.input.transform: {expected} ({_span(PRESETS[expected])}) if that is how it was trained")
