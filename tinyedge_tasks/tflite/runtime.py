"""The real TFLite Micro runtime (PyPI tflite-micro): run int8 models, find the smallest tensor arena.

Shared by quantize (does it run), calibrate (accuracy, arena) and codegen (operator list for the resolver).
TFLM aborts or segfaults on some models, and a crash cannot be caught in-process: every TFLM run happens in a
child process (tflite/worker.py), and what callers hold here is a handle (model bytes and arena), never a live
interpreter. Model details (operators, input/output quantization) are read from the FlatBuffer directly, in
tflite/model_file.py.
"""
from __future__ import annotations

import numpy as np

from ..preprocess import UNIT, quantize
from . import worker
from .model_file import Engine, interpreter, io_details


def quantize_images(engine: Engine, images: np.ndarray, transform: tuple[float, float]) -> np.ndarray:
    """uint8 pixels (through the table the firmware embeds) or float features -> the model's quantized input."""
    return quantize(images, io_details(engine)[0], transform)


def model_input(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """uint8 images -> a quantized input tensor of this model, to size its arena or probe that it runs: values do
    not change either, so any input transform does."""
    return quantize_images(interpreter(model_bytes), images, UNIT)


def smallest_arena(model_bytes: bytes, sample: np.ndarray, what: str = "TFLM arena search") -> int:
    """Bisection on the arena size with the real TFLM allocator: the least size (16-byte steps) that runs
    the quantized `sample`."""
    return worker.smallest_arena(model_bytes, sample, what)[0]


def raw_outputs(scores: np.ndarray, output: dict) -> np.ndarray:
    """The output tensor's int8/int16 values TFLM produced, from predict's dequantized scores: (raw - zero_point) x
    scale in float32 is inverted exactly by rounding (|raw - zero_point| <= 65535 keeps the error far below 0.5)."""
    return np.round(scores / np.float32(output["scale"]) + output["zero_point"]).astype(output["dtype"])


def predict(engine: Engine, images: np.ndarray, transform: tuple[float, float], progress=None,
            what: str = "TFLM inference") -> np.ndarray:
    """Class scores (dequantized) for uint8 images, one TFLM invoke per image, in a child process."""
    return worker.predict(engine.model_bytes, engine.arena_size, quantize_images(engine, images, transform), what,
                          progress=progress or (lambda line: None))
