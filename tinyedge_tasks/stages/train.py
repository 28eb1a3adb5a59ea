"""train: build the float model (zoo, user function or pre-trained file) and train it deterministically."""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

from ..errors import TinyedgeError
from ..ml.zoo import ZOO

MODEL_FILE_KINDS = "a .keras file, a Keras .h5 file or a SavedModel directory"


def _model_kind(spec: str, root: Path) -> str:
    if spec in ZOO:
        return "zoo"
    if (root / spec).exists() or Path(spec).suffix in (".keras", ".h5"):
        return "file"
    return "function" if ":" in spec else "file"


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


def sources(manifest) -> list[Path]:
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


def _build(ctx, keras, input_shape, num_classes):
    spec = ctx.config["train.model"]
    kind = _model_kind(spec, ctx.root)
    if kind == "zoo":
        return ZOO[spec](keras, input_shape, num_classes, ctx.config["train.width_multiplier"])
    if kind == "file":
        from ..ml.keras_util import load_model
        model = load_model(ctx.root / spec, "train.model", ctx.config["train.trust_model_code"])
    else:
        module_name, function_name = spec.split(":", 1)
        sys.path.insert(0, str(ctx.root))
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except AttributeError:
            raise TinyedgeError(f"train.model: module '{module_name}' has no function '{function_name}'") from None
        finally:
            sys.path.remove(str(ctx.root))
        model = function(input_shape, num_classes)
    found_in, found_out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if found_in != tuple(input_shape) or found_out != num_classes:
        raise TinyedgeError(
            f"train.model: {spec} takes input {found_in} and gives {found_out} classes, but the data set "
            f"has input {tuple(input_shape)} (dataset.input) and {num_classes} classes; make them agree")
    return model


def run(ctx) -> None:
    from ..ml.keras_util import accuracy, as_float, compile_model, deterministic, keras, load_data, save_model
    from ..ml.summary import model_summary

    deterministic(ctx.config["project.seed"])
    data = load_data(ctx.inputs["dataset/data.npz"])
    classes = json.loads(ctx.inputs["dataset/dataset.json"].read_text())["classes"]
    model = _build(ctx, keras, data["x_train"].shape[1:], len(classes))
    compile_model(model, ctx.config["train.learning_rate"])
    epochs = ctx.config["train.epochs"]
    ctx.log(f"training {model.name}: {model.count_params()} parameters, {epochs} epochs, "
            f"{len(data['x_train'])} training samples")
    history = {}
    if epochs:
        history = model.fit(as_float(data["x_train"]), data["y_train"], epochs=epochs,
                            batch_size=ctx.config["train.batch_size"], shuffle=True, verbose=2,
                            validation_data=(as_float(data["x_val"]), data["y_val"])).history
    metrics = {"model": model.name, "parameters": int(model.count_params()), "epochs": epochs,
               "val_accuracy": accuracy(model, data["x_val"], data["y_val"]),
               "test_accuracy": accuracy(model, data["x_test"], data["y_test"])}
    save_model(model, ctx.out / "model.h5")
    ctx.write(model_summary(model, metrics["test_accuracy"], data))
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (ctx.out / "history.json").write_text(json.dumps(
        {name: [float(v) for v in values] for name, values in history.items()}, indent=1))
    ctx.log(f"float accuracy: val {metrics['val_accuracy']:.4f}, test {metrics['test_accuracy']:.4f}")
