"""Refuse Keras model files that would run Python when loaded, by reading their configuration as data.

A model file is configuration plus weights, but tf_keras turns some configuration into code: a `Lambda`
layer's function (and its output_shape and mask) is marshalled Python bytecode, executed by `func_load` on
load; the legacy .h5 and SavedModel paths ignore tf_keras' `safe_mode`. A `module` field naming a module
outside Keras is imported, and an unknown class needs the user's code registered to load at all. So before
any loader runs, the JSON configuration is read with h5py / zipfile / a protobuf wire walk and every object
in it must be a tf_keras built-in.

Lambda policy: every Lambda layer is refused unless trusted. tf_keras stores any Python function, TF ops
included (`Lambda(tf.nn.relu)` is saved as bytecode of `relu`), as bytecode; the only name-only form is a
non-Python callable (`Lambda(abs)`), and tf_keras 2.21 cannot load even that one from an .h5. There is no
Lambda that is both safe and reliably loadable, so the rule stays one line: replace Lambda with built-in
layers (Activation, Rescaling, Reshape, ...) or set `train.trust_model_code: true`.
"""
from __future__ import annotations

import json
import zipfile
from functools import lru_cache
from pathlib import Path

from ..errors import TinyedgeError

TRUST_KEY = "train.trust_model_code"
KERAS_MODULES = ("keras", "tf_keras")
# Values, rebuilt as data by tf_keras' saved_model/json_utils decoder: tf.constant, np.array, tuple, TensorShape,
# and TypeSpec / CompositeTensor looked up in TensorFlow's registry of type specs (registered names, no import)
DATA_CLASSES = {"__tensor__", "__numpy__", "__bytes__", "__tuple__", "__ellipsis__", "TensorShape", "TypeSpec",
                "CompositeTensor"}
FUNCTION_FIELDS = (("function", "function_type"), ("output_shape", "output_shape_type"), ("mask", "mask_type"))
MAX_CONFIG_BYTES = 64 << 20
BUILTIN_MODULES = ("layers", "initializers", "regularizers", "constraints", "activations", "losses", "metrics",
                   "optimizers", "mixed_precision", "models")


@lru_cache(maxsize=1)
def _builtins() -> tuple[frozenset, frozenset]:
    """(class names, function names) tf_keras resolves to its own code; imports tf_keras (trusted code)."""
    import importlib
    classes, functions = {"Functional", "Sequential", "Model", "Policy", "DTypePolicy"}, set()
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(f"tf_keras.{module_name}")
        for name in dir(module):
            value = getattr(module, name)
            if getattr(value, "__module__", "").startswith(("tf_keras", "keras")):
                (classes if isinstance(value, type) else functions).add(name)
                if isinstance(value, type):
                    classes.add(value.__name__)
    from tf_keras.src.layers import serialization
    serialization.populate_deserializable_objects()
    classes.update(serialization.LOCAL.ALL_OBJECTS)
    return frozenset(classes), frozenset(functions)


def _in_keras(module: str | None) -> bool:
    return module is None or module.split(".")[0] in KERAS_MODULES


def code_in_config(config, where: str = "model") -> list[str]:
    """Every place in a Keras configuration (parsed JSON) that would run or import Python outside tf_keras."""
    found = []
    if isinstance(config, list):
        for item in config:
            found += code_in_config(item, where)
        return found
    if not isinstance(config, dict):
        return found
    class_name = config.get("class_name")
    if isinstance(class_name, str):
        inner = config.get("config")
        name = inner.get("name", "?") if isinstance(inner, dict) else "?"
        here = f"layer '{name}' ({class_name})" if isinstance(inner, dict) and "name" in inner else class_name
        classes, functions = _builtins()
        module, registered = config.get("module"), config.get("registered_name")
        if class_name == "Lambda":
            kinds = [f"{field}: {inner.get(kind)}" for field, kind in FUNCTION_FIELDS
                     if isinstance(inner, dict) and inner.get(kind) in ("lambda", "function")]
            found.append(f"{where}: {here}: a Lambda layer holds Python ({', '.join(kinds) or 'function'}; "
                         "'lambda' is marshalled bytecode run on load)")
        elif class_name == "__lambda__":
            found.append(f"{where}: a __lambda__ object (marshalled Python bytecode run on load)")
        elif class_name == "function":
            if not (_in_keras(module) or module == "builtins") or inner not in functions:
                found.append(f"{where}: function '{inner}' from module '{module}' is not a tf_keras built-in")
        elif class_name == "__typespec__":
            if not (module or "").startswith(("tensorflow", *KERAS_MODULES)):
                found.append(f"{where}: type spec from module '{module}' (imported on load)")
        elif class_name not in DATA_CLASSES:
            if not _in_keras(module):
                found.append(f"{where}: {here}: module '{module}' is imported on load; not part of tf_keras")
            elif class_name not in classes or registered not in (None, class_name):
                found.append(f"{where}: {here}: custom class '{registered or class_name}' is not a tf_keras "
                             "built-in; it loads only with its Python code")
        if here != class_name:
            where = here  # objects inside a layer (initializers, activations) are reported with it
    for value in config.values():
        found += code_in_config(value, where)
    return found


def _protobuf_strings(data: bytes, depth: int = 0):
    """Every length-delimited field of a protobuf message, at any depth (the wire format needs no schema).
    Keras keeps each layer's JSON in such a field of keras_metadata.pb or, in old SavedModels, saved_model.pb."""
    position, size = 0, len(data)

    def varint() -> int:
        nonlocal position
        value, shift = 0, 0
        while True:
            if position >= size or shift > 63:
                raise ValueError("truncated varint")
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    found = []
    while position < size:
        wire = varint() & 7
        if wire == 0:
            varint()
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        elif wire == 2:
            length = varint()
            payload = data[position:position + length]
            position += length
            if len(payload) != length:
                raise ValueError("truncated field")
            found.append(payload)
            if depth < 16:
                try:
                    found += _protobuf_strings(payload, depth + 1)
                except ValueError:
                    pass  # a string or bytes field, not a message
        else:
            raise ValueError(f"wire type {wire}")
    if position != size:
        raise ValueError("overrun")
    return found


def _saved_model_configs(folder: Path) -> list[tuple[str, object]]:
    configs = []
    for name in ("keras_metadata.pb", "saved_model.pb"):
        if (folder / name).is_file():
            try:
                fields = _protobuf_strings((folder / name).read_bytes())
            except ValueError as exc:
                raise TinyedgeError(f"{folder / name}: not a readable protobuf ({exc}); expected a SavedModel "
                                    "written by TensorFlow") from None
            for field in fields:
                if field[:1] == b"{":
                    try:
                        configs.append((name, json.loads(field)))
                    except ValueError:
                        pass  # a brace-led string that is not JSON is no Keras configuration
    if not (folder / "saved_model.pb").is_file():
        raise TinyedgeError(f"{folder}: no saved_model.pb; expected a SavedModel directory, a .keras or an .h5 file")
    return configs


def model_configs(path: Path) -> list[tuple[str, object]]:
    """(where, parsed JSON) of every Keras configuration a loader would deserialize; nothing is executed."""
    if path.is_dir():
        return _saved_model_configs(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            try:
                if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                    raise ValueError(f"config.json larger than {MAX_CONFIG_BYTES:,} bytes")
                return [("config.json", json.loads(archive.read("config.json")))]
            except (KeyError, ValueError, zipfile.BadZipFile) as exc:
                raise TinyedgeError(f"{path}: a .keras file needs a JSON config.json ({exc})") from None
    import h5py
    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
    except OSError as exc:
        raise TinyedgeError(f"{path}: neither a .keras zip nor an HDF5 file ({exc}); expected a .keras file, "
                            "a Keras .h5 file or a SavedModel directory") from None
    if raw is None:
        raise TinyedgeError(f"{path}: an HDF5 file without a model_config attribute (weights only?); expected a "
                            "whole model saved with model.save()")
    try:
        return [("model_config", json.loads(raw.decode() if isinstance(raw, bytes) else raw))]
    except ValueError as exc:
        raise TinyedgeError(f"{path}: model_config is not JSON ({exc})") from None


def code_in_model_file(path: Path) -> list[str]:
    return [item for where, config in model_configs(path) for item in code_in_config(config, where)]


def check_model_file(path: Path, trust: bool) -> None:
    """Raise before loading a model file whose configuration would run Python, unless the project trusts it."""
    if trust:
        return
    found = code_in_model_file(Path(path))
    if found:
        raise TinyedgeError(
            f"{path}: loading this model would run Python code stored in or named by the file: "
            f"{'; '.join(found)}. Loading it runs that code with your rights. Replace these layers with "
            f"built-in Keras layers (Activation, Rescaling, Reshape, ...), or, only if you wrote or trust the "
            f"file, set `{TRUST_KEY}: true` in tinyedge.yaml")
