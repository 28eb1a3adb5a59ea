"""How train fits a model: augmentation of the training split, class weights, a frozen backbone and then its
fine-tuned top, and the best epoch kept (not the last). Keras does each; this says which, from the manifest.
Imported from inside train's run() only (TensorFlow)."""
from __future__ import annotations

import numpy as np

from ..errors import TinyedgeError
from .keras_util import as_float, compile_model, keras, tf
from .zoo import backbone_layers

GRID = 16   # augmented training samples the report shows


def augmenter(augment: dict | None, seed: int):
    """The random layers `dataset.augment` asks for, on pixels in [0, 255]; None when it asks for none."""
    if not augment:
        return None
    layers = keras.layers
    flips = {"horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}
    chosen = [
        augment["flip"] and layers.RandomFlip(flips[augment["flip"]], seed=seed),
        augment["rotate"] and layers.RandomRotation(augment["rotate"] / 360, fill_mode="reflect", seed=seed + 1),
        augment["zoom"] and layers.RandomZoom(augment["zoom"], fill_mode="reflect", seed=seed + 2),
        augment["translate"] and layers.RandomTranslation(augment["translate"], augment["translate"],
                                                          fill_mode="reflect", seed=seed + 3),
        augment["brightness"] and layers.RandomBrightness(augment["brightness"], value_range=(0, 255), seed=seed + 4),
        augment["contrast"] and layers.RandomContrast(augment["contrast"], seed=seed + 5),
    ]
    chosen = [layer for layer in chosen if layer]
    return keras.Sequential(chosen, name="augment") if chosen else None


def training_data(x: np.ndarray, y: np.ndarray, transform, augment, batch_size: int, seed: int):
    """(x, y) for fit: the float training split, or, with augmentation, a seeded pipeline that changes every
    training image anew each epoch. Only the training split comes here: validation and test stay as they are."""
    if augment is None:
        return {"x": as_float(x, transform), "y": y, "batch_size": batch_size, "shuffle": True}
    divisor, offset = transform

    def change(images, labels):
        pixels = tf.clip_by_value(augment(tf.cast(images, tf.float32), training=True), 0.0, 255.0)
        return tf.round(pixels) / divisor + offset, labels   # rounded: the board's pixels are integers too

    pipeline = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch_size)
                .map(change))
    return {"x": pipeline}


def augmented_samples(x: np.ndarray, augment) -> np.ndarray:
    """The first training images as augmentation changes them (uint8), for the report's grid."""
    if augment is None:
        return np.zeros((0, *x.shape[1:]), np.uint8)
    changed = augment(tf.cast(x[:GRID], tf.float32), training=True).numpy()
    return np.round(np.clip(changed, 0, 255)).astype(np.uint8)


def balanced(y: np.ndarray) -> dict[int, float]:
    """Class weights that give every class the same total weight: n / (classes * count)."""
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    return {int(c): float(len(y) / (len(present) * counts[c])) for c in present}


def freeze(model) -> None:
    """The whole backbone frozen: its BatchNorm layers then run in inference mode (tf_keras runs a BatchNorm with
    trainable=False so), as Keras' transfer-learning guide prescribes."""
    for layer in backbone_layers(model):
        layer.trainable = False


def unfreeze_top(model, fine_tune: dict) -> int:
    """The top `layers` (or `fraction`) of the frozen backbone trainable again, BatchNorm excepted: it stays in
    inference mode, so the small batches of fine-tuning do not overwrite the statistics it learnt. Returns N."""
    backbone = backbone_layers(model)
    count = fine_tune["layers"] or max(1, round(fine_tune["fraction"] * len(backbone)))
    if count > len(backbone):
        raise TinyedgeError(f"train.fine_tune.layers: {count}, but the {model.name} backbone has {len(backbone)} "
                            f"layers; give at most {len(backbone)}, or fraction (e.g. 0.2 for its top fifth)")
    for layer in backbone[-count:]:
        layer.trainable = type(layer).__name__ != "BatchNormalization"
    return count


def parameter_counts(model) -> dict[str, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"trainable": trainable, "frozen": int(model.count_params()) - trainable}


class BestEpoch(keras.callbacks.Callback):
    """Early stopping over both phases: stop a phase after `patience` epochs without a better `monitor`, and put
    back the best epoch's weights at the end (Keras' EarlyStopping forgets between two fit calls)."""

    def __init__(self, monitor: str, patience: int):
        super().__init__()
        self.monitor, self.patience = monitor, patience
        self.best, self.best_epoch, self.saved, self.wait = None, None, None, 0

    def on_train_begin(self, logs=None):
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        value = float(logs[self.monitor])
        better = self.best is None or (value > self.best if "accuracy" in self.monitor else value < self.best)
        if better:
            self.best, self.best_epoch, self.wait = value, epoch + 1, 0
            self.saved = [(variable, variable.numpy()) for variable in self.model.weights]
        else:
            self.wait += 1
            self.model.stop_training = self.wait >= self.patience

    def restore(self) -> None:
        for variable, value in self.saved or []:
            variable.assign(value)


def fit(model, data: dict, config, transform, augment, log) -> tuple[dict, dict]:
    """Train as the manifest says: (history over every epoch, what the metrics record of the schedule); `log`
    None says nothing (a model kept as loaded has no phases to tell)."""
    seed, train = config["project.seed"], config["train"]
    pretrained = train["pretrained"] != "none"
    if train["fine_tune"] and not pretrained:
        raise TinyedgeError("train.fine_tune: fine-tuning unfreezes the top of a pre-trained backbone, but "
                            "train.pretrained is none (every layer trains already); set train.pretrained or remove "
                            "train.fine_tune")
    stopper = BestEpoch(**train["early_stopping"]) if train["early_stopping"] else None
    common = {**training_data(data["x_train"], data["y_train"], transform, augment, train["batch_size"], seed),
              "verbose": 2, "callbacks": [stopper] if stopper else [],
              "validation_data": (as_float(data["x_val"], transform), data["y_val"]),
              "class_weight": balanced(data["y_train"]) if train["class_weight"] == "balanced" else None}
    if pretrained:
        freeze(model)
    schedule = {"phases": []}
    history: dict[str, list[float]] = {}

    def phase(name: str, epochs: int, learning_rate: float) -> None:
        done = len(history.get("loss", []))
        compile_model(model, learning_rate)
        counts = parameter_counts(model)
        if log:
            log(f"{name}: {epochs} epochs, {counts['trainable']} trainable and {counts['frozen']} frozen parameters")
        if epochs:
            result = model.fit(initial_epoch=done, epochs=done + epochs, **common).history
            for key, values in result.items():
                history.setdefault(key, []).extend(float(v) for v in values)
        schedule["phases"].append({"name": name, "first_epoch": done + 1,
                                   "epochs": len(history.get("loss", [])) - done, **counts})

    phase("frozen backbone" if pretrained else "training", train["epochs"], train["learning_rate"])
    if train["fine_tune"]:
        count = unfreeze_top(model, train["fine_tune"])
        schedule["fine_tuned_layers"] = count
        phase(f"fine-tuning the top {count} backbone layers", train["fine_tune"]["epochs"],
              train["fine_tune"]["learning_rate"])
    if stopper and stopper.saved:
        stopper.restore()
        schedule.update(best_epoch=stopper.best_epoch, monitor=stopper.monitor, best_value=stopper.best)
        log(f"kept epoch {stopper.best_epoch} of {len(history['loss'])} ({stopper.monitor} {stopper.best:.4f})")
    return history, schedule
