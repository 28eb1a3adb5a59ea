"""Writes the weights of an untrained keras.applications backbone (no top, 32x32x3) as Keras saves a downloaded
no-top file: `python backbone_file.py PATH SEED MODEL ALPHA`. A separate process, so the tests' own Keras session
(its name counters and seeds) stays as it was.

Random weights alone give features that fade to ~1e-11 through 50 layers (BatchNorm's moving variance at 1): its
BatchNorm statistics are measured on a batch of digits, as pre-training would leave them, so the head has
features to learn from."""
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np
import tf_keras as keras
from sklearn.datasets import load_digits

APPLICATIONS = {"mobilenet_v1": keras.applications.MobileNet, "mobilenet_v2": keras.applications.MobileNetV2}


def main(path: str, seed: str, model: str, alpha: str) -> None:
    keras.utils.set_random_seed(int(seed))
    backbone = APPLICATIONS[model](input_shape=(32, 32, 3), alpha=float(alpha), include_top=False, weights=None)
    digits = np.kron(load_digits().images[:64], np.ones((4, 4)))[..., None] / 8 - 1   # 32x32 in [-1, 1]
    for layer in backbone.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = 0.0   # one training-mode call sets the moving statistics to this batch's
    backbone(np.repeat(digits, 3, axis=-1).astype("float32"), training=True)
    backbone.save_weights(path)


if __name__ == "__main__":
    main(*sys.argv[1:])
