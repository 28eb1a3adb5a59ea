"""What `train.model` names: a zoo model, a user function `module:function`, or a pre-trained model file; its
project files (inputs of the stages that build it) and the model itself. Shared by train and the preflight.
Imported to make tasks (files()): keep TensorFlow out of the top level."""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

from ..errors import TinyedgeError
from .zoo import PRETRAINED_ALPHAS, ZOO

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


def is_file(spec: str, root: Path) -> bool:
    """A pre-trained model file: its weights were learnt on some input range, which the data set may not give."""
    return _model_kind(spec, root) == "file"


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


def _weights_file(manifest) -> list[Path]:
    """train.pretrained checked against the model and the input transform; a weights file's bytes are an input."""
    spec, pretrained = manifest.get("train.model"), manifest.get("train.pretrained")
    if spec not in PRETRAINED_ALPHAS:
        if pretrained != "none":
            raise manifest.error("train.pretrained", f"{spec} has no pre-trained backbone; pretrained weights apply "
                                 f"to {' and '.join(PRETRAINED_ALPHAS)}: set train.pretrained: none or choose one")
        return []
    alphas = PRETRAINED_ALPHAS[spec]
    alpha = manifest.get("train.width_multiplier")
    if alpha not in alphas:
        raise manifest.error("train.width_multiplier", f"{spec} comes in alpha {', '.join(map(str, alphas))} (the "
                             f"widths keras.applications has weights for), found {alpha}")
    if pretrained == "none":
        return []
    transform = manifest.get("dataset.input")
    if transform.get("scale") is not None or transform.get("transform") != "symmetric":
        raise manifest.error("dataset.input", f"the pre-trained {spec} backbone was trained on pixels in [-1, 1]; "
                             "set dataset.input.transform: symmetric (pixel / 127.5 - 1), or train.pretrained: none")
    if pretrained == "imagenet":
        return []  # Keras' own file: its name says which weights (the alpha and size are read already)
    path = manifest.path_of("train.pretrained")
    if not path.is_file():
        raise manifest.error("train.pretrained", f"weights file {path} does not exist; expected imagenet, none or "
                             f"the path of a {spec} weights file without top (.h5, include_top=False)")
    return [path]


def files(manifest, weights: bool = True) -> list[Path]:
    """A model file (or every file of a SavedModel), the user's module or (with `weights`) a backbone's weights
    file: their bytes are inputs."""
    spec = manifest.get("train.model")
    kind = _model_kind(spec, manifest.root)
    expected = f"a zoo model ({', '.join(ZOO)}), a function module:function, or {MODEL_FILE_KINDS}"
    if kind == "zoo":
        found = _weights_file(manifest)   # checked either way
        return found if weights else []
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


def _backbone(keras, spec: str, root: Path, pretrained: str, input_shape, num_classes: int, alpha: float):
    """An application model with its backbone's weights: Keras loads `imagenet` (downloading it once into its
    cache) and a weights file alike, through `weights=`."""
    weights = {"none": None, "imagenet": "imagenet"}.get(pretrained, str(root / pretrained))
    try:
        return ZOO[spec](keras, input_shape, num_classes, alpha, weights)
    except Exception as exc:  # Keras' get_file raises a bare Exception when it cannot download
        url = re.search(r"https?://\S+?\.h5", str(exc))
        if pretrained != "imagenet" or "URL fetch failure" not in str(exc) or not url:
            if pretrained in ("none", "imagenet"):
                raise
            raise TinyedgeError(f"train.pretrained: cannot load {pretrained} into {spec} alpha {alpha:g} "
                                f"({str(exc).splitlines()[0][:300]}); expected the weights of keras.applications' "
                                f"{spec} with include_top=False and the same alpha") from None
        name = url.group(0).rsplit("/", 1)[1]
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"   # where Keras looks first
        raise TinyedgeError(f"train.pretrained: imagenet: cannot download {name} (no network?); fetch {url.group(0)} "
                            f"on a machine with network and put it at {cache / name}, or set train.pretrained to "
                            "its path") from None


def build(config, root: Path, keras, input_shape, num_classes: int, pretrained: str = "none"):
    """The untrained (or pre-trained) model `train.model` names, checked against the data set's shape.
    `config` holds train.model, train.width_multiplier and train.trust_model_code; `pretrained` is
    train.pretrained (the preflight builds without weights: they change neither bytes nor arena)."""
    spec = config["train.model"]
    kind = _model_kind(spec, root)
    if kind == "zoo" and len(input_shape) != 3:
        raise TinyedgeError(f"train.model: {spec} is a convolutional network for (height, width, channels) inputs, "
                            f"but the data set's samples are {tuple(input_shape)}; save x as (N, height, width, "
                            "channels) (e.g. x[..., None] for a spectrogram), or give a model function or file")
    if kind == "zoo" and spec in PRETRAINED_ALPHAS:
        return _backbone(keras, spec, root, pretrained, input_shape, num_classes, config["train.width_multiplier"])
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
    _check_classifier(model, spec, num_classes)
    found_in, found_out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if found_in != tuple(input_shape) or found_out != num_classes:
        raise TinyedgeError(
            f"train.model: {spec} takes input {found_in} and gives {found_out} classes, but the data set "
            f"has input {tuple(input_shape)} (dataset.input) and {num_classes} classes; make them agree")
    return model


def _last_activation(model) -> str | None:
    """The activation the model ends with (softmax, linear, sigmoid, ...); None when the last layer does not say."""
    last = model.layers[-1] if model.layers else None
    if type(last).__name__ == "Softmax":
        return "softmax"
    activation = last.get_config().get("activation") if last is not None else None
    return activation if isinstance(activation, str) else None


def _check_classifier(model, spec: str, num_classes: int) -> None:
    """tinyedge makes classifiers: one output (batch, classes). A model whose output could only be resized by
    retraining elsewhere (several outputs, a map, a vector without softmax of another length) is said so in one
    line, not met with "make them agree"."""
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    activation = _last_activation(model)
    if len(shapes) == 1 and len(shapes[0]) == 2 and (shapes[0][-1] == num_classes or activation in ("softmax", None)):
        return
    found = (f"{len(shapes)} outputs {', '.join(str(tuple(s[1:])) for s in shapes)}" if len(shapes) > 1
             else f"output {tuple(shapes[0][1:])}" + (f" with a {activation} last layer" if activation else ""))
    raise TinyedgeError(f"train.model: {spec} gives {found}: not a classifier; tinyedge supports classifiers only "
                        f"(one output (batch, classes) with a softmax, here over the data set's {num_classes} "
                        "classes), not regression, detection or autoencoder models")
