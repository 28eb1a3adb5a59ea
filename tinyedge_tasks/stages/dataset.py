"""dataset: images (folder, .npz or sklearn's digits) -> model-sized uint8 arrays split train/val/test; or float
features of any shape (an .npz) kept as they are, as float32.

Each sample goes to a split by a hash of its identity (its path, or its bytes), so adding one image never
moves the others between splits. Output bytes are deterministic (fixed zip timestamps), so a rerun gives
the same digest and everything downstream stays cached. `sources()` runs whenever doit makes its tasks,
so NumPy and Pillow are imported inside the functions that read images.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import xxhash

from ..artifacts import DatasetSummary
from ..errors import TinyedgeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
DIGITS = "sklearn:digits"
SPLITS = ("train", "val", "test")


def _class_folders(manifest) -> list[Path]:
    folder = manifest.path_of("dataset.source")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0].name}/" if classes else "none"
        raise manifest.error("dataset.source", f"{folder} needs at least two class sub-folders, found {found}; "
                             "expected one folder per class (e.g. cat/, dog/) holding .jpg/.png images: a "
                             "classifier of one class has nothing to decide")
    return classes


def _images(class_folder: Path) -> list[Path]:
    return sorted(p for p in class_folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def watched(manifest) -> list[Path]:
    """The data set as doit's dependency, checked here so a bad path fails before anything runs: an image folder
    is one path, scanned by the engine's tree state (listing 100,000 images on every no-op run would cost more than
    the whole run), so only its class folders are checked."""
    source = manifest.get("dataset.source")
    if source == DIGITS:
        return []
    path = manifest.path_of("dataset.source")
    expected = "an image folder (one sub-folder per class), an .npz with x and y, or sklearn:digits"
    if not path.exists():
        raise manifest.error("dataset.source", f"{path} does not exist; expected {expected}")
    if path.is_file() and path.suffix != ".npz":
        raise manifest.error("dataset.source", f"{path} is a {path.suffix or 'plain'} file; expected {expected}")
    if path.is_dir():
        _class_folders(manifest)
    return [path]


def sources(manifest) -> list[Path]:
    """The data files the split depends on: the .npz, or every image of the folder."""
    paths = watched(manifest)
    if not paths or paths[0].is_file():
        return paths
    files = []
    for class_folder in _class_folders(manifest):
        images = _images(class_folder)
        if not images:
            raise manifest.error("dataset.source", f"class folder {class_folder} holds no .jpg/.png images; "
                                 "add images or remove the folder")
        files += images
    return files


def _digits():
    import numpy as np
    from sklearn.datasets import load_digits
    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    names = [str(n) for n in digits.target_names]
    return [(bytes(p.tobytes()), p, int(t)) for p, t in zip(pixels, digits.target)], names, []


def _npz(path: Path):
    """uint8 images (N,H,W[,C]), resized later like any image, or float features of any shape (N, ...): spectrograms,
    sensor windows, embeddings, which go to the model as they are."""
    import numpy as np
    expected = "x as uint8 images (N,H,W[,C]) or float features (N, ...), and y (N,) labels"
    if not zipfile.is_zipfile(path):
        raise TinyedgeError(f"{path}: not an .npz file (numpy.savez writes a zip archive; this is not one); "
                            "save it with numpy.savez(path, x=..., y=...)")
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except KeyError as exc:
        raise TinyedgeError(f"{path}: expected arrays {expected}, but {exc} is missing")
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise TinyedgeError(f"{path}: not a readable .npz ({exc}); save it with numpy.savez(path, x=..., y=...)")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y   # (N, 1) labels, as Keras examples keep them
    features = np.issubdtype(x.dtype, np.floating) and x.ndim >= 2
    if not (features or (x.dtype == np.uint8 and x.ndim in (3, 4))) or y.ndim != 1 or len(x) != len(y):
        raise TinyedgeError(f"{path}: expected {expected}; found x {x.dtype} {x.shape}, y {y.dtype} {y.shape}")
    if features and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise TinyedgeError(f"{path}: {len(bad)} sample(s) of x hold NaN or infinity (the first: index {bad[0]}); "
                            "fix or drop them")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise TinyedgeError(f"{path}: y holds {y.dtype} values that are not class labels (e.g. "
                            f"{y[0].item()!r}); tinyedge trains classifiers only: y must give each sample's class "
                            "as an integer")
    x = x.astype(np.float32) if features else x
    labels = sorted({int(v) for v in y})
    names = [str(v) for v in labels]
    index = {v: i for i, v in enumerate(labels)}
    return [(sample.tobytes(), sample, index[int(t)]) for sample, t in zip(x, y)], names, []


def features_input(input_config: dict, augment: dict | None) -> None:
    """Float features are not pixels: the pixel presets unit and symmetric (/255, /127.5 - 1) would silently
    rescale them, so a data set of features takes raw (the values as they are) or an explicit scale/offset; and
    image augmentation (flips, rotations, brightness) has no meaning for them."""
    if augment:
        raise TinyedgeError("dataset.augment: flips, rotations, zoom and brightness change images, but the data set "
                            "holds float features; remove dataset.augment")
    if input_config.get("scale") is None and input_config.get("transform") != "raw":
        raise TinyedgeError(f"dataset.input.transform: {input_config.get('transform')} divides pixels (0..255), but "
                            "the data set holds float features; set dataset.input.transform: raw to give them to "
                            "the model as they are, or dataset.input.scale (and offset) to rescale them")


def _folder(ctx):
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    folder = (ctx.root / ctx.config["dataset.source"]).resolve()
    classes = sorted({p.relative_to(folder).parts[0] for p in ctx.sources})
    label_of = {name: i for i, name in enumerate(classes)}
    samples, bad = [], []
    for done, path in enumerate(ctx.sources, 1):
        rel = path.relative_to(folder).as_posix()
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            shown = f"{ctx.config['dataset.source']}/{rel}"  # relative: artifacts never name where the project is
            bad.append(f"{shown}: {str(exc).replace(str(path), shown)}")
            continue
        samples.append((rel.encode(), pixels, label_of[rel.split("/")[0]]))
        if len(ctx.sources) >= 200 and done % max(1, len(ctx.sources) // 10) == 0:
            ctx.log(f"read {done}/{len(ctx.sources)} images")
    if bad and not ctx.config["dataset.skip_corrupt"]:
        raise TinyedgeError(f"{len(bad)} unreadable image(s):\n  " + "\n  ".join(bad)
                            + "\nfix or delete them, or set dataset.skip_corrupt: true to leave them out")
    for line in bad:
        ctx.log(f"skipped {line}")
    return samples, classes, bad


def _split_of(identity: bytes, seed: int, val: float, test: float) -> str:
    """A stable per-sample draw in [0, 1): the same sample lands in the same split whatever else is added."""
    u = xxhash.xxh3_64_intdigest(identity, seed=seed) / 2 ** 64
    return "test" if u < test else "val" if u < test + val else "train"


def missing_classes(counts: dict[str, list[int]], classes: list[str]) -> list[str]:
    """A warning per split that holds no sample of some class: the hash split does not stratify, so a small class
    can miss a split; nothing fails, but the model never learns it (train) or its accuracy says nothing of it."""
    sizes = ", ".join(f"{name} {sum(counts[name])}" for name in SPLITS)
    lines = []
    for name in SPLITS:
        absent = [classes[c] for c, count in enumerate(counts[name]) if not count]
        if absent:
            effect = ("the model never sees it" if name == "train"
                      else f"the {name} accuracy says nothing of it")
            advice = ("add samples of it" if name == "train"
                      else f"add samples of it or raise dataset.split.{name}")
            lines.append(f"warning: the {name} split has no sample of class {', '.join(absent)} (split sizes: "
                         f"{sizes}): {effect}; {advice}")
    return lines


def save_npz(path: Path, arrays: dict) -> None:
    """np.savez with fixed zip timestamps: same arrays -> same bytes."""
    import numpy as np
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                             buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)


def run(ctx) -> None:
    import numpy as np

    from ..preprocess import resize

    source = ctx.config["dataset.source"]
    shape = ctx.config["dataset.input"]
    width, height, channels = shape["width"], shape["height"], shape["channels"]
    if source == DIGITS:
        samples, classes, skipped = _digits()
    elif source.endswith(".npz"):
        samples, classes, skipped = _npz(ctx.sources[0])
    else:
        samples, classes, skipped = _folder(ctx)
    seed, split = ctx.config["project.seed"], ctx.config["dataset.split"]
    features = bool(samples) and samples[0][1].dtype != np.uint8
    if features:
        features_input(shape, ctx.config["dataset.augment"])
    parts = {name: ([], []) for name in SPLITS}
    for identity, pixels, label in samples:
        xs, ys = parts[_split_of(identity, seed, split["val"], split["test"])]
        xs.append(pixels if features else resize(pixels, width, height, channels))
        ys.append(label)
    if len(classes) < 2:
        raise TinyedgeError(f"dataset {source}: {len(classes)} class ({', '.join(map(str, classes)) or 'none'}); "
                            "a classifier needs at least two classes: add samples of another class")
    for name, (xs, _) in parts.items():
        if not xs:
            advice = ("add samples or lower dataset.split.val and dataset.split.test" if name == "train"
                      else f"add samples or raise dataset.split.{name}")
            raise TinyedgeError(f"dataset {source}: the {name} split is empty ({len(samples)} samples in all); "
                                + advice)
    arrays = {}
    for name, (xs, ys) in parts.items():
        arrays[f"x_{name}"] = np.stack(xs)
        arrays[f"y_{name}"] = np.array(ys, dtype=np.int32)
    save_npz(ctx.out / "data.npz", arrays)
    counts = {name: np.bincount(arrays[f"y_{name}"], minlength=len(classes)).tolist() for name in SPLITS}
    for line in missing_classes(counts, classes):
        ctx.log(line)
    size = ({"shape": list(arrays["x_train"].shape[1:]), "dtype": "float32"} if features   # the features' own
            else {key: shape[key] for key in ("width", "height", "channels")})  # the transform is not the data set's
    summary = {"source": source, "classes": classes, "input": size, "counts": counts,
               "samples": len(samples), "skipped": skipped}
    ctx.write(DatasetSummary(**summary))
    ctx.log(f"{len(samples)} samples, {len(classes)} class{'es' if len(classes) != 1 else ''} -> "
            + ", ".join(f"{name} {len(parts[name][1])}" for name in SPLITS))
