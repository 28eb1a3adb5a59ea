"""train: build the float model (zoo, user function or pre-trained file) and train it deterministically: a
pre-trained backbone frozen first, then its top fine-tuned; the best epoch kept when early stopping is on."""
from __future__ import annotations

from ..artifacts import DATA, DatasetSummary, History, Metrics


def run(ctx) -> None:
    from ..ml import input_range
    from ..ml.keras_util import accuracy, deterministic, keras, load_data, save_model
    from ..ml.model_spec import build
    from ..ml.schedule import augmented_samples, augmenter, fit
    from ..ml.summary import model_summary
    from ..ml.zoo import PRETRAINED_ALPHAS
    from ..preprocess import transform_of
    from .dataset import save_npz

    seed = ctx.config["project.seed"]
    deterministic(seed)
    transform = transform_of(ctx.config["dataset.input"])
    data = load_data(ctx.inputs[DATA])
    classes = ctx.read(DatasetSummary).classes
    model = build(ctx.config, ctx.root, keras, data["x_train"].shape[1:], len(classes),
                  ctx.config["train.pretrained"])
    said = input_range.warning(model, ctx.config["train.model"], ctx.root, data["x_train"], ctx.config["dataset.input"])
    if said:
        ctx.log(said)
    augment = augmenter(ctx.config["dataset.augment"], seed)
    kept = not ctx.config["train.epochs"] and not ctx.config["train.fine_tune"]   # a loaded model, not trained
    if kept:
        ctx.log(f"{model.name}: {model.count_params()} parameters, kept as loaded (train.epochs: 0, not trained)")
    else:
        ctx.log(f"training {model.name}: {model.count_params()} parameters, {ctx.config['train.epochs']} epochs, "
                f"{len(data['x_train'])} training samples" + (", augmented" if augment else ""))
    history, schedule = fit(model, data, ctx.config, transform, augment, None if kept else ctx.log)
    gray = (ctx.config["train.model"] in PRETRAINED_ALPHAS and ctx.config["train.pretrained"] != "none"
            and data["x_train"].shape[-1] == 1)
    if gray:
        ctx.log("grayscale data, RGB backbone: its first convolution's weights summed over the three channels")
    new = ctx.config["train.pretrained"] != "none" or "best_epoch" in schedule   # else the fields stay out
    metrics = Metrics(model=model.name, parameters=int(model.count_params()), epochs=ctx.config["train.epochs"],
                      val_accuracy=accuracy(model, data["x_val"], data["y_val"], transform),
                      test_accuracy=accuracy(model, data["x_test"], data["y_test"], transform),
                      pretrained=ctx.config["train.pretrained"] if new else None, gray_to_rgb=gray if new else None,
                      schedule=schedule if new else None, kept_as_loaded=kept or None)
    save_model(model, ctx.out / "model.h5")
    save_npz(ctx.out / "augmented.npz", {"x": augmented_samples(data["x_train"], augment)})
    ctx.write(model_summary(model, metrics.test_accuracy, data))
    ctx.write(metrics)
    ctx.write(History(history))
    ctx.log(f"float accuracy: val {metrics.val_accuracy:.4f}, test {metrics.test_accuracy:.4f}")
