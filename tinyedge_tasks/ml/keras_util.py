"""TensorFlow set-up shared by the stages that train or convert: Keras 2 (tf_keras), seeds, data, model files.

tensorflow-model-optimization only prunes and quantization-aware-trains tf_keras models, so every stage
uses tf_keras: TF_USE_LEGACY_KERAS must be set before TensorFlow is first imported. Imported lazily,
only from inside a stage's run(), so `doit list` and a no-op `doit` never load TensorFlow.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..errors import TinyedgeError

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ..native import captured_stderr  # noqa: E402

with captured_stderr():  # TensorFlow's C++ start-up chatter (oneDNN, no CUDA driver) says nothing to act on
    import absl.logging
    import tensorflow as tf  # re-exported: stages take tf from here
    import tf_keras as keras
    tf.config.list_physical_devices()

# absl's log handler grabbed doit's captured stderr and would try to close it at exit.
absl.logging.get_absl_handler().python_handler.stream = sys.__stderr__
warnings.filterwarnings("ignore", message=".*HDF5 file via `model.save\\(\\)`")
warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")


def deterministic(seed: int) -> None:
    """Same seed, same data -> same weights, same bytes."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def load_data(path: Path) -> dict:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def as_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the float input every model is trained on."""
    return x.astype(np.float32) / 255.0


def load_model(path: Path, what: str):
    """A `.keras`, Keras `.h5` or SavedModel directory, the three input kinds of the TFLite converter."""
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise TinyedgeError(f"{what}: cannot load {path} as a Keras model ({exc}); expected a .keras file, "
                            "a Keras .h5 file or a SavedModel directory") from None


def compile_model(model, learning_rate: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    predictions = model.predict(as_float(x), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=1) == y))


def save_model(model, path: Path) -> None:
    try:
        model.save(path, include_optimizer=False)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise TinyedgeError(f"train.model: the model cannot be saved as a Keras .h5 file ({exc}); a Lambda layer "
                            "or a custom layer without get_config() cannot be stored: use built-in layers, or give "
                            "the custom layer a get_config()") from None
