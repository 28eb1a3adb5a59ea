"""Training a few hundred photos three ways, offline: tiny_cnn from scratch, the zoo mobilenet from scratch, and
keras.applications' MobileNetV2 0.35 loaded from a weights file (frozen, then its top fine-tuned); for each, the
TFLM int8 test accuracy, int8 model bytes, TFLM arena and the train stage's time.

    python benchmarks/bench_training.py [--weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5]

The photo data set is built here, at 96x96 RGB, from the two photos scikit-learn ships (china.jpg, flower.jpg):
each photo is cut into a left and a right region and every class is 60 random crops of one region (4 classes).
Without --weights (no network here) the weights file is an untrained keras.applications model saved to disk: the
loading path is the real one, the accuracy then says nothing of ImageNet features.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
PER_CLASS = 60
CROP = 160

COMMON = {"project": {"name": "photos", "seed": 42}, "board": "esp32cam",
          "compression": {"calibrate": {"samples": 100}}}
RUNS = [
    ("tiny_cnn, scratch", {"dataset": {"input": {"transform": "unit"}},
                           "train": {"model": "tiny_cnn", "epochs": 15}}),
    ("mobilenet 0.5, scratch", {"dataset": {"input": {"transform": "unit"}},
                                "train": {"model": "mobilenet", "width_multiplier": 0.5, "epochs": 15}}),
    ("mobilenet_v2 0.35, weights file", {
        "dataset": {"input": {"transform": "symmetric"}, "augment": {"flip": "horizontal", "zoom": 0.1}},
        "train": {"model": "mobilenet_v2", "width_multiplier": 0.35, "pretrained": "backbone.h5", "epochs": 6,
                  "fine_tune": {"epochs": 4, "fraction": 0.2, "learning_rate": 0.0001},
                  "early_stopping": {"patience": 3, "monitor": "val_accuracy"}}}),
]


def photos(folder: Path) -> None:
    """4 class folders of 96x96-bound crops: a left and a right region of each scikit-learn sample photo."""
    from PIL import Image
    from sklearn.datasets import load_sample_image
    rng = np.random.default_rng(0)
    for name in ("china.jpg", "flower.jpg"):
        image = load_sample_image(name)   # 427 x 640 x 3
        height, width = image.shape[:2]
        for side, (x0, x1) in {"left": (0, width // 2), "right": (width // 2, width)}.items():
            out = folder / f"{name.split('.')[0]}_{side}"
            out.mkdir(parents=True)
            for index in range(PER_CLASS):
                x = int(rng.integers(x0, x1 - CROP))
                y = int(rng.integers(0, height - CROP))
                Image.fromarray(image[y:y + CROP, x:x + CROP]).save(out / f"{index:03d}.png")


def untrained_weights(path: Path) -> None:
    code = ("import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tf_keras as k; "
            "k.utils.set_random_seed(0); k.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, "
            f"include_top=False, weights=None).save_weights({str(path)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and key in merged else value
    return merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", type=Path, help="a MobileNetV2 0.35 no-top weights file (e.g. Keras' ImageNet)")
    weights = parser.parse_args().weights
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copy(REPO / "dodo.py", project)
        shutil.copytree(REPO / "boards", project / "boards")
        photos(project / "photos")
        if weights:
            shutil.copy(weights, project / "backbone.h5")
        else:
            untrained_weights(project / "backbone.h5")
        base = merge(COMMON, {"dataset": {"source": "photos", "input": {"width": 96, "height": 96, "channels": 3}}})
        for name, changes in RUNS:
            (project / "tinyedge.yaml").write_text(yaml.safe_dump(merge(base, changes), sort_keys=False))
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "doit", "calibrate"], cwd=project, capture_output=True,
                                    text=True)
            if result.returncode:
                raise SystemExit(f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
            train_seconds = next((float(line.split("done in ")[1].split(" s")[0]) for line in
                                  result.stdout.split(".  train", 1)[-1].splitlines() if "done in" in line), None)
            calibration = json.loads((project / "build/calibrate/calibration.json").read_text())
            metrics = json.loads((project / "build/train/metrics.json").read_text())
            rows.append((name, metrics["test_accuracy"], calibration["quantized_test_accuracy"],
                         calibration["model_bytes"], calibration["arena_bytes"], train_seconds,
                         time.perf_counter() - started))
    print(f"{'run':34} {'float acc':>9} {'int8 acc':>9} {'int8 B':>9} {'arena B':>9} {'train s':>8} {'total s':>8}")
    for name, float_acc, int8_acc, size, arena, train, total in rows:
        print(f"{name:34} {float_acc:9.3f} {int8_acc:9.3f} {size:9d} {arena:9d} {train or 0:8.1f} {total:8.1f}")


if __name__ == "__main__":
    main()
