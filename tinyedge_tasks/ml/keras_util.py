"""What the stages that train or convert share: Keras 2 (tf_keras, set up in native/tensorflow.py), seeds, data,
model files. Imported lazily, only from inside a stage's run(), so `doit list` and a no-op `doit` never load
TensorFlow."""
from __future__ import annotations

import contextlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from ..errors import TinyedgeError
from ..native.tensorflow import keras, tf  # noqa: F401 - stages take tf and keras from here
from .model_safety import check_model_file

MAX_ERROR_CHARS = 600


def deterministic(seed: int) -> None:
    """Same seed, same data -> same weights, same bytes. A fresh session first: doit runs every stage in one
    process, and Keras numbers layer names per session (a model built by an earlier stage would make this
    stage's names, and so its files, differ)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def load_data(path: Path) -> dict:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def as_float(x: np.ndarray, transform: tuple[float, float]) -> np.ndarray:
    """uint8 pixels -> the float model input of the declared input transform (preprocess.transform_of)."""
    from ..preprocess import to_float
    return to_float(x, transform)


def _keras_version(path: Path) -> str | None:
    """The Keras version a model file records (.keras: metadata.json or config.json; .h5: an attribute)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in ("metadata.json", "config.json"):
                try:
                    version = json.loads(archive.read(name)).get("keras_version")
                except (KeyError, ValueError, AttributeError, zipfile.BadZipFile):
                    continue
                if isinstance(version, str):
                    return version
        return None
    import h5py
    try:
        with h5py.File(path, "r") as h5:
            version = h5.attrs.get("keras_version")
    except OSError:
        return None
    return version.decode() if isinstance(version, bytes) else version if isinstance(version, str) else None


def _short(message: str) -> str:
    """First and last line of a loader error: some quote the whole model configuration on one line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or [""]
    kept = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return kept if len(kept) <= MAX_ERROR_CHARS else f"{kept[:MAX_ERROR_CHARS // 2]} ... {kept[-MAX_ERROR_CHARS // 2:]}"


_SAID: set[Path] = set()   # legacy SavedModels already named in this process (each stage loads the model again)


@contextlib.contextmanager
def _legacy_saved_model_said(path: Path, what: str):
    """A SavedModel without keras_metadata.pb: tf_keras warns in a paragraph on every load; say it once, in one
    line, and keep its warning out."""
    legacy = path.is_dir() and not (path / "keras_metadata.pb").is_file()
    if legacy and path.resolve() not in _SAID:
        _SAID.add(path.resolve())
        print(f"  note: {what}: {path} has no keras_metadata.pb (saved with tf.saved_model.save, or before TF 2.5); "
              "Keras rebuilds its layers from the graph. Re-save it with model.save() to keep Keras' own "
              "description", flush=True)
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_not_tf_legacy_warning)
    try:
        yield
    finally:
        logger.removeFilter(_not_tf_legacy_warning)


def _not_tf_legacy_warning(record: logging.LogRecord) -> bool:
    return "saved prior to TF 2.5" not in record.getMessage()


def load_model(path: Path, what: str, trust: bool = False):
    """A `.keras`, Keras `.h5` or SavedModel directory, the three input kinds of the TFLite converter. The
    file's configuration is checked first: a model that would run Python on load needs `trust`."""
    path = Path(path)
    version = _keras_version(path) if path.is_file() else None
    if version and version.split(".")[0] not in ("1", "2"):
        raise TinyedgeError(f"{what}: {path} was saved by Keras {version}; tinyedge uses tf_keras (Keras 2), which "
                            "cannot read Keras 3 files: re-save the model from tf_keras (`import tf_keras; "
                            "model.save(\"model.h5\")`) or give its SavedModel directory")
    check_model_file(path, trust)
    try:
        with _legacy_saved_model_said(path, what):
            return keras.models.load_model(path, compile=False, safe_mode=not trust)
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise TinyedgeError(f"{what}: cannot load {path} as a Keras model ({_short(str(exc))}); expected a "
                            ".keras file, a Keras .h5 file or a SavedModel directory") from None


def compile_model(model, learning_rate: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def accuracy(model, x: np.ndarray, y: np.ndarray, transform: tuple[float, float]) -> float:
    predictions = model.predict(as_float(x, transform), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=1) == y))


def save_model(model, path: Path) -> None:
    try:
        model.save(path, include_optimizer=False)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise TinyedgeError(f"train.model: the model cannot be saved as a Keras .h5 file ({exc}); a Lambda layer "
                            "or a custom layer without get_config() cannot be stored: use built-in layers, or give "
                            "the custom layer a get_config()") from None
