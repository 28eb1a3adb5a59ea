"""dataset: images (folder, .npz or sklearn's digits) -> model-sized uint8 arrays split train/val/test.

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
    import numpy as np
    if not zipfile.is_zipfile(path):
        raise TinyedgeError(f"{path}: not an .npz file (numpy.savez writes a zip archive; this is not one); "
                            "save it with numpy.savez(path, x=..., y=...)")
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except KeyError as exc:
        raise TinyedgeError(f"{path}: expected arrays 'x' (N,H,W[,C] uint8) and 'y' (N,) but {exc} is missing")
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise TinyedgeError(f"{path}: not a readable .npz ({exc}); save it with numpy.savez(path, x=..., y=...)")
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(y):
        raise TinyedgeError(f"{path}: expected x as uint8 (N,H,W[,C]) and y (N,), found x {x.dtype} {x.shape}, "
                            f"y {y.shape}")
    labels = sorted({int(v) for v in y})
    names = [str(v) for v in labels]
    index = {v: i for i, v in enumerate(labels)}
    return [(image.tobytes(), image, index[int(t)]) for image, t in zip(x, y)], names, []


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
    parts = {name: ([], []) for name in SPLITS}
    for identity, pixels, label in samples:
        xs, ys = parts[_split_of(identity, seed, split["val"], split["test"])]
        xs.append(resize(pixels, width, height, channels))
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
    size = {key: shape[key] for key in ("width", "height", "channels")}   # the transform is not the data set's
    summary = {"source": source, "classes": classes, "input": size, "counts": counts,
               "samples": len(samples), "skipped": skipped}
    ctx.write(DatasetSummary(**summary))
    ctx.log(f"{len(samples)} samples, {len(classes)} class{'es' if len(classes) != 1 else ''} -> "
            + ", ".join(f"{name} {len(parts[name][1])}" for name in SPLITS))
