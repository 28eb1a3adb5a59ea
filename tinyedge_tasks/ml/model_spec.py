"""What `train.model` names: a zoo model, a user function `module:function`, or a pre-trained model file; its
project files (inputs of the stages that build it) and the model itself. Shared by train and the preflight.
Imported to make tasks (files()): keep TensorFlow out of the top level."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from ..errors import TinyedgeError
from .zoo import ZOO

MODEL_FILE_KINDS = "a .keras file, a Keras .h5 file or a SavedModel directory"


def _model_kind(spec: str, root: Path) -> str:
    if spec in ZOO:
        return "zoo"
    if (root / spec).exists() or Path(spec).suffix in (".keras", ".h5"):
        return "file"
    return "function" if ":" in spec else "file"


def is_zoo(spec: str) -> bool:
    """A zoo model has the width knob (train.width_multiplier); a model file or a user function has not."""
    return spec in ZOO


def _function_file(spec: str, root: Path) -> Path | None:
    module_name = spec.split(":", 1)[0]
    sys.path.insert(0, str(root))
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    finally:
        sys.path.remove(str(root))
    return Path(found.origin) if found and found.origin else None


def files(manifest) -> list[Path]:
    """A model file (or every file of a SavedModel) or the user's module: their bytes are inputs."""
    spec = manifest.get("train.model")
    kind = _model_kind(spec, manifest.root)
    expected = f"a zoo model ({', '.join(ZOO)}), a function module:function, or {MODEL_FILE_KINDS}"
    if kind == "zoo":
        return []
    if kind == "function":
        origin = _function_file(spec, manifest.root)
        if origin is None:
            raise manifest.error("train.model", f"cannot find module '{spec.split(':')[0]}' in {manifest.root}; "
                                 f"expected {expected}")
        return [origin]
    path = manifest.path_of("train.model")
    if not path.exists():
        raise manifest.error("train.model", f"model file {path} does not exist; expected {expected}")
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]


def build(config, root: Path, keras, input_shape, num_classes: int):
    """The untrained (or pre-trained) model `train.model` names, checked against the data set's shape.
    `config` holds train.model, train.width_multiplier and train.trust_model_code."""
    spec = config["train.model"]
    kind = _model_kind(spec, root)
    if kind == "zoo":
        return ZOO[spec](keras, input_shape, num_classes, config["train.width_multiplier"])
    if kind == "file":
        from .keras_util import load_model
        model = load_model(root / spec, "train.model", config["train.trust_model_code"])
    else:
        module_name, function_name = spec.split(":", 1)
        sys.path.insert(0, str(root))
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except AttributeError:
            raise TinyedgeError(f"train.model: module '{module_name}' has no function '{function_name}'") from None
        finally:
            sys.path.remove(str(root))
        model = function(input_shape, num_classes)
    found_in, found_out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if found_in != tuple(input_shape) or found_out != num_classes:
        raise TinyedgeError(
            f"train.model: {spec} takes input {found_in} and gives {found_out} classes, but the data set "
            f"has input {tuple(input_shape)} (dataset.input) and {num_classes} classes; make them agree")
    return model
