"""TensorFlow, imported once and quietly, with Keras 2 (tf_keras): tensorflow-model-optimization only prunes and
quantization-aware-trains tf_keras models, so TF_USE_LEGACY_KERAS must be set before TensorFlow is first imported.
Imported lazily, only from inside a stage's run(), so `doit list` and a no-op `doit` never load TensorFlow."""
from __future__ import annotations

import os
import sys
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .stderr import captured_stderr  # noqa: E402

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
