"""The schema of tinyedge.yaml: typed sections with defaults, safe parsing, errors at file, line and key.

Imported only when the manifest changed (see manifest_loader): pydantic costs more than a no-op doit may.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ..errors import ManifestError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Project(_Section):
    """Project-wide settings."""

    name: str = Field("tinyedge-project", description="Shown in reports and firmware banners.")
    seed: int = Field(42, ge=0, description="Seeds the split, weight init, shuffling and calibration draw.")
    build_dir: str = Field("build", description="Where artifacts are materialised (git-ignored).")
    cache_dir: Optional[str] = Field(
        None, description="Shared artifact store; default `cache/`, overridden by $TINYEDGE_CACHE.")


class InputShape(_Section):
    """The model input: every image is cropped, resized and colour-converted to this."""

    width: int = Field(32, ge=4, le=1024)
    height: int = Field(32, ge=4, le=1024)
    channels: Literal[1, 3] = Field(1, description="1 = grayscale, 3 = RGB.")
    transform: Literal["unit", "symmetric", "raw"] = Field(
        "unit", description="What float a pixel becomes, for training, calibration and every firmware's input table: "
                            "unit = pixel / 255 in [0, 1]; symmetric = pixel / 127.5 - 1 in [-1, 1] (Keras' "
                            "MobileNet preprocessing, which mobilenet_v1/v2 backbones need); raw = the pixel value.")
    scale: Optional[float] = Field(None, gt=0, description="Instead of a preset: float = pixel * scale + offset.")
    offset: float = Field(0.0, description="With scale: added after scaling.")

    @field_validator("offset")
    @classmethod
    def _offset_needs_scale(cls, value: float, info: ValidationInfo) -> float:
        if value and info.data.get("scale") is None:
            raise ValueError("an offset needs a scale (float = pixel * scale + offset); give dataset.input.scale, "
                             "or use a preset: transform: symmetric is pixel / 127.5 - 1")
        if info.data.get("scale") is not None and info.data.get("transform") != "unit":
            raise ValueError(f"give either transform: {info.data['transform']} or scale/offset, not both")
        return value


class Split(_Section):
    """Fractions of the samples held out; the rest trains. Assignment hashes each sample, so adding
    a sample never moves the others."""

    val: float = Field(0.15, gt=0, lt=0.5)
    test: float = Field(0.15, gt=0, lt=0.5)


class Augment(_Section):
    """Random changes to the training images, seeded (project.seed): same manifest, same model bytes. Validation
    and test images are never changed."""

    flip: Optional[Literal["horizontal", "vertical", "both"]] = Field(None, description="Random mirroring.")
    rotate: float = Field(0.0, ge=0, le=180, description="Largest rotation, degrees either way.")
    zoom: float = Field(0.0, ge=0, lt=1, description="Largest zoom in or out, a fraction of the size.")
    translate: float = Field(0.0, ge=0, lt=1, description="Largest shift, a fraction of the width and height.")
    brightness: float = Field(0.0, ge=0, le=1, description="Largest brightness change, a fraction of full scale.")
    contrast: float = Field(0.0, ge=0, le=1, description="Largest contrast change, a fraction.")


class Dataset(_Section):
    source: str = Field(
        "sklearn:digits",
        description="`sklearn:digits`, an image folder (one sub-folder per class, jpg/png) or an `.npz` "
                    "with `x` (uint8 images N,H,W[,C], or float features of any shape N,...) and `y` (N,) "
                    "arrays; paths are relative to the manifest. Features keep their own shape (dataset.input's "
                    "width, height and channels apply to images) and need transform: raw or scale/offset.")
    input: InputShape = InputShape()
    split: Split = Split()
    skip_corrupt: bool = Field(False, description="Skip unreadable images (listed) instead of stopping.")
    augment: Optional[Augment] = Field(None, description="Omit for no augmentation (the default).")


class FineTune(_Section):
    """After train.epochs with the backbone frozen: unfreeze its top layers (BatchNorm stays in inference mode)."""

    epochs: int = Field(5, ge=1, le=10000)
    layers: Optional[int] = Field(None, ge=1, description="The top N layers of the backbone; or give fraction.")
    fraction: Optional[float] = Field(None, gt=0, le=1, description="The top fraction of the backbone's layers.")
    learning_rate: float = Field(1e-4, gt=0, lt=1, description="Usually 10-100 times below train.learning_rate.")

    @field_validator("fraction")
    @classmethod
    def _one_of(cls, value: Optional[float], info: ValidationInfo) -> Optional[float]:
        if (value is None) == (info.data.get("layers") is None):
            raise ValueError("expected exactly one of layers (the top N layers of the backbone) or fraction "
                             "(e.g. 0.2 for its top fifth)")
        return value


class EarlyStopping(_Section):
    """Stop when `monitor` has not improved for `patience` epochs and keep the best epoch's weights."""

    patience: int = Field(3, ge=1, le=10000)
    monitor: Literal["val_loss", "val_accuracy"] = Field("val_loss")


class Train(_Section):
    model: str = Field(
        "tiny_cnn",
        description="A zoo model (`tiny_cnn`, `mobilenet`, `mobilenet_v1`, `mobilenet_v2`), a user function "
                    "`module:function` (input_shape, num_classes) -> Keras model, or a pre-trained "
                    "`.keras`/`.h5`/SavedModel path.")
    width_multiplier: float = Field(1.0, gt=0, le=4, description="Scales every layer's width (MobileNet alpha; "
                                    "mobilenet_v1: 0.25, 0.5, 0.75, 1.0; mobilenet_v2: 0.35, 0.5, 0.75, 1.0).")
    pretrained: str = Field(
        "none", description="mobilenet_v1/v2 only: `imagenet` (Keras downloads the weights once into "
                            "~/.keras/models), a path to a weights file (.h5, include_top=False), or `none`.")
    epochs: int = Field(12, ge=0, le=10000, description="With pretrained weights: epochs with the backbone frozen.")
    fine_tune: Optional[FineTune] = Field(None, description="Omit to keep the backbone frozen.")
    early_stopping: Optional[EarlyStopping] = Field(None, description="Omit to keep the last epoch.")
    class_weight: Optional[Literal["balanced"]] = Field(
        None, description="balanced: weigh each class by the inverse of its training count (skewed data sets).")
    batch_size: int = Field(32, ge=1, le=65536)
    learning_rate: float = Field(0.002, gt=0, lt=1)
    trust_model_code: bool = Field(
        False, description="Allow a model file whose layers carry Python code (a Lambda's bytecode, custom "
                           "classes) to be loaded, which runs that code; only for files you made or trust.")


class Prune(_Section):
    kind: Literal["unstructured", "structured"] = Field(
        "unstructured", description="unstructured: zero the smallest weights (tfmot; smaller only once zipped); "
                                    "structured: remove the filters of least L1 norm and rebuild a smaller model.")
    sparsity: float = Field(0.5, description="Fraction of weights (unstructured) or filters (structured) removed.")
    schedule: Literal["polynomial", "constant"] = Field(
        "polynomial", description="unstructured only: sparsity ramps up from 0 (polynomial) or starts at the target.")
    epochs: int = Field(4, ge=1, le=1000, description="Fine-tuning epochs.")

    @field_validator("sparsity")
    @classmethod
    def _sparsity_range(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError("expected a fraction in [0, 1) (0.5 removes half the weights or filters; "
                             "1 would remove them all)")
        return value


class Quantize(_Section):
    scheme: Literal["int8", "int8_per_tensor", "int16x8"] = Field(
        "int8", description="int8 (per-channel weights), int8_per_tensor, or int16x8 (16-bit activations).")
    aware: bool = Field(False, description="Quantization-aware fine-tuning before conversion.")
    aware_epochs: int = Field(2, ge=1, le=1000)

    @field_validator("aware")
    @classmethod
    def _aware_scheme(cls, value: bool, info: ValidationInfo) -> bool:
        """A combination the backend cannot do is an error here, not silently ignored later."""
        scheme = info.data.get("scheme", "int8")
        if value and scheme != "int8":
            raise ValueError(f"quantization-aware training cannot make scheme {scheme}: tensorflow-model-"
                             "optimization only simulates int8 with per-channel weights; set "
                             "compression.quantize.scheme: int8 or aware: false")
        return value


class Calibrate(_Section):
    samples: int = Field(200, ge=1, le=100000, description="Representative samples drawn from the training split.")
    stratified: bool = Field(True, description="Draw the same number of samples from every class.")


class EspDl(_Section):
    """Quantization for `firmware.backend: espdl` (esp-ppq); the other backends ignore it."""

    bits: Literal["8", "16", "w8a16"] = Field(
        "8", description="8: int8 weights and activations; 16: int16 both; w8a16: int8 weights, int16 activations.")
    method: Literal["minmax", "percentile", "kl", "mse"] = Field(
        "minmax", description="How activation ranges are calibrated. minmax is the safe default: esp-ppq's own "
                              "8-bit default, kl, clipped ranges and lost most of the accuracy of the example.")
    sixteen_bit_layers: list[str] = Field(
        [], description="Keras layer names kept at 16 bits while the rest is `bits` (mixed precision); an "
                        "activation fused into a convolution goes with it.")

    @field_validator("bits", mode="before")
    @classmethod
    def _bits_text(cls, value: Any) -> Any:
        """`bits: 8` and `bits: "8"` mean the same."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("sixteen_bit_layers")
    @classmethod
    def _mixed_needs_eight(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value and info.data.get("bits") == "16":
            raise ValueError("every layer is already 16-bit with bits: 16; set bits: 8 to keep only these "
                             "layers at 16 bits, or remove sixteen_bit_layers")
        if len(set(value)) != len(value):
            raise ValueError("a layer is named twice; name each layer once")
        return value


class Compression(_Section):
    prune: Optional[Prune] = Field(None, description="Omit to skip pruning.")
    quantize: Quantize = Quantize()
    calibrate: Calibrate = Calibrate()
    espdl: Optional[EspDl] = Field(
        None, description="ESP-DL quantization (firmware.backend: espdl); omit for 8 bits, minmax, no 16-bit layers.")


class Firmware(_Section):
    backend: str = Field("tflm", description="The firmware backend: a folder of tinyedge_tasks/backends/ (tflm).")
    arena_margin: float = Field(0.25, ge=0, le=4, description="Extra tensor arena on top of the measured minimum.")
    port: Optional[str] = Field(None, description="Serial port for flash/monitor; or $TINYEDGE_PORT, or --port.")
    led_class: Optional[str] = Field(None, description="Light the board's LED when this class wins.")


class TuneRange(_Section):
    """A numeric range searched by `doit tune`: integers when low and high are both integers."""

    low: int | float
    high: int | float
    step: Optional[int | float] = Field(None, gt=0, description="Grid step; omit for a continuous range.")
    log: bool = Field(False, description="Sample on a log scale (learning rates).")

    @field_validator("high")
    @classmethod
    def _ordered(cls, value: int | float, info: ValidationInfo) -> int | float:
        if "low" in info.data and value < info.data["low"]:
            raise ValueError(f"expected high >= low ({info.data['low']})")
        return value


class Tune(_Section):
    """`doit tune`: a search over manifest keys with the board's budget as a hard constraint (needs the `tune`
    extra: pip install 'tinyedge[tune]')."""

    space: dict[str, list[Any] | TuneRange] = Field(
        {}, description="Dotted manifest key -> a list of choices, or {low, high, step, log}.")
    objectives: dict[str, Literal["maximize", "minimize"]] = Field(
        {"quantized_test_accuracy": "maximize", "model_bytes": "minimize"},
        description="Figures of calibration.json (quantized_test_accuracy, model_bytes, arena_bytes, ...) or of the "
                    "board budget as budget.<key> (budget.flash.needed_bytes, budget.arena.bytes): maximize or "
                    "minimize.")
    trials: int = Field(20, ge=1, le=100000,
                        description="Trials the study should hold (completed or rejected by the preflight); a rerun "
                                    "adds only the missing, so failed or interrupted trials are made up for.")
    sampler: Literal["tpe", "nsga2", "random", "grid"] = Field(
        "tpe", description="grid: every combination of the choices (as doit sweep); tpe/nsga2 multi-objective.")
    study: Optional[str] = Field(None, description="Study name; default the project name.")
    storage: Optional[str] = Field(
        None, description="Optuna storage URL (postgresql://...) shared by workers on several machines; default a "
                          "SQLite file under cache/. Overridden by --storage.")


class Manifest(_Section):
    """tinyedge.yaml"""

    project: Project = Project()
    dataset: Dataset = Dataset()
    train: Train = Train()
    compression: Compression = Compression()
    board: str = Field("esp32cam", description="A board file `boards/<board>.yaml`.")
    firmware: Firmware = Firmware()
    sweep: Optional[dict[str, list[Any]]] = Field(
        None, description="`doit sweep`: dotted manifest key -> the values to try; every combination is built.")
    tune: Optional[Tune] = Field(None, description="`doit tune`: the search space, objectives and study.")


def _line_map(node: yaml.Node, path: Path, prefix: tuple = (), lines: dict | None = None) -> dict:
    """Map every key path of a composed YAML document to the 1-based line it stands on.

    A key given twice in one mapping is an error: YAML loaders silently keep the last one."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = prefix + (str(key_node.value),)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise ManifestError(f"{path}:{line}: {'.'.join(key)}: given twice (also on line {lines[key]}); "
                                    "keep one")
            lines[key] = line
            _line_map(value_node, path, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[prefix + (index,)] = item.start_mark.line + 1
            _line_map(item, path, prefix + (index,), lines)
    return lines


def section_type(key: str) -> type[BaseModel] | None:
    """The schema class of the section at a dotted key ('compression.prune' -> Prune); None for a plain value."""
    return _section_model(tuple(key.split(".")) + ("",))


def _section_model(loc: tuple) -> type[BaseModel] | None:
    """The schema class that holds the key at `loc` (for 'did you mean')."""
    model: Any = Manifest
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _describe(error: dict) -> str:
    loc = tuple(error["loc"])
    found = error.get("input")
    if error["type"] == "extra_forbidden":
        section = _section_model(loc)
        known = sorted(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown key; {hint}known keys here: {', '.join(known)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("model_type", "model_attributes_type"):
        return f"expected a mapping of keys, found {found!r}"
    if loc[-1] == "channels":
        return f"expected 1 (grayscale) or 3 (RGB), found {json.dumps(found) if _plain(found) else type(found).__name__}"
    return f"{message}, found {json.dumps(found) if _plain(found) else type(found).__name__}"


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))


def validate(text: str, path: Path) -> tuple[dict, dict]:
    """Safely parse and validate manifest text: (data with defaults filled in, key path -> line).

    Raises ManifestError with file:line, key path, expected and found for every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ManifestError(
            f"{path}:{mark.line + 1}: {exc.problem}; tinyedge.yaml holds plain data only "
            "(mappings, lists, strings, numbers), never Python objects") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", exc)
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        tab = "\t" in line or "'\\t'" in str(problem)
        hint = "; YAML indents with spaces, never tabs: replace the tab with spaces" if tab else ""
        raise ManifestError(f"{where}: not valid YAML: {problem}{hint}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}:1: expected a mapping of sections (project, dataset, train, ...), "
                            f"found {type(raw).__name__}")
    lines = _line_map(node, path) if node is not None else {}
    try:
        model = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key = ".".join(str(part) for part in loc) or "(top level)"
            line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
            problems.append(f"{path}:{line or 1}: {key}: {_describe(error)}")
        raise ManifestError("\n".join(problems)) from None
    return model.model_dump(mode="json"), lines
