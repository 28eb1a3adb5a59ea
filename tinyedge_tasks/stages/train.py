"""train: build the float model (zoo, user function or pre-trained file) and train it deterministically."""
from __future__ import annotations

import json


def run(ctx) -> None:
    from ..ml.keras_util import accuracy, as_float, compile_model, deterministic, keras, load_data, save_model
    from ..ml.model_spec import build
    from ..ml.summary import model_summary

    deterministic(ctx.config["project.seed"])
    data = load_data(ctx.inputs["dataset/data.npz"])
    classes = json.loads(ctx.inputs["dataset/dataset.json"].read_text())["classes"]
    model = build(ctx.config, ctx.root, keras, data["x_train"].shape[1:], len(classes))
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
