"""Firmware backends, one folder each (`backends/<name>/`), found by folder name as PlatformIO finds platforms.

A backend's `__init__.py` defines `BACKEND`: the stage rows it puts between prune and report (conversion,
evaluation in the runtime it targets, codegen with its templates, build through a toolchain) and the board file
sections its toolchains need. The folder owns everything that differs between backends; backends never import
each other. A backend of another package registers under the entry-point group `tinyedge.backends`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyedgeError

ENTRY_POINTS = "tinyedge.backends"


@dataclass(frozen=True)
class Backend:
    name: str
    doc: str
    stages: tuple                      # engine Stage rows, between prune and report
    board_sections: tuple[str, ...]    # toolchain sections of the board file it can build with, preferred first
    preflight: str = ""                # module with measure(ctx, model, tflite, data, where) -> (model, arena)
    #                                    and budget(board, model, arena, margin, knobs, on_table): the check stage
    #                                    calls them, codegen calls budget; `model` is what the backend charges
    #                                    (the .tflite bytes, the lowered model, the .espdl's size)


BUDGET_KEYS = ("train.model", "train.width_multiplier", "dataset.input", "compression.quantize.scheme")


def budget_knobs(config, x_train=None) -> dict:
    """The manifest values a budget's advice names (boards.budget `knobs`), for the preflight and codegen alike:
    the width multiplier only for a zoo model (a loaded file or a user function has no such knob); the input size,
    or for float features (`x_train` not uint8) their shape. A stage that calls it reads BUDGET_KEYS."""
    from ..ml.model_spec import is_zoo
    knobs = {"width_multiplier": config["train.width_multiplier"] if is_zoo(config["train.model"]) else None,
             "scheme": config["compression.quantize.scheme"]}
    if x_train is not None and x_train.dtype != "uint8":
        knobs["features"] = list(x_train.shape[1:])
    else:
        shape = config["dataset.input"]
        knobs["input"] = (shape["width"], shape["height"])
    return knobs


def in_folder(package: str, board_sections: tuple[str, ...], doc: str, stages: tuple) -> Backend:
    """The backend of a folder of this package: named by its folder, its preflight module its preflight.py."""
    return Backend(name=package.rsplit(".", 1)[1], doc=doc, stages=stages, board_sections=board_sections,
                   preflight=f"{package}.preflight")


def builtin() -> list[str]:
    return sorted(p.parent.name for p in Path(__file__).parent.glob("*/__init__.py"))


def _entry_points() -> dict:
    from importlib.metadata import entry_points
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINTS)}


def load(manifest) -> Backend:
    """The backend `firmware.backend` names; an unknown name is a manifest error listing the known ones."""
    name = manifest.get("firmware.backend")
    if name in builtin():
        return importlib.import_module(f"{__name__}.{name}").BACKEND
    plugins = _entry_points()  # looked up only for a name that is not built in: it costs a scan of site-packages
    if name in plugins:
        backend = plugins[name].load()
        if not isinstance(backend, Backend):
            raise TinyedgeError(f"entry point {plugins[name].value} ({ENTRY_POINTS}) is not a tinyedge Backend")
        return backend
    known = ", ".join(sorted(set(builtin()) | set(plugins)))
    raise manifest.error("firmware.backend", f"unknown backend '{name}'; known backends: {known}")


def board_section(backend: Backend, board) -> str:
    """The first toolchain section of the board file that the backend can build with."""
    for section in backend.board_sections:
        if getattr(board, section, None) is not None:
            return section
    wanted = " or ".join(f"'{s}:'" for s in backend.board_sections)
    raise TinyedgeError(f"boards/{board.id}.yaml: firmware.backend {backend.name} builds with {wanted}, and this "
                        f"board file has no such section; add one (see README, 'Boards') or pick a backend this "
                        "board has a section for")


def camera_board(backend: Backend, board) -> str:
    """board_section, for a firmware whose super-loop classifies camera frames: a board without one is refused."""
    section = board_section(backend, board)
    if board.camera is None:
        raise TinyedgeError(f"boards/{board.id}.yaml: no camera section; the {backend.name} firmware's super-loop "
                            "classifies camera frames: add camera (sensor, xclk_hz, frame, pins) or pick a board "
                            "with a camera")
    return section


def status_led(config, board, labels: list[str]) -> dict:
    """firmware.led_class checked against the data set and the board: the template values led (the board's
    status LED, or None), led_class and led_index (-1 without one)."""
    led_class = config["firmware.led_class"]
    if led_class is None:
        return {"led": None, "led_class": None, "led_index": -1}
    if led_class not in labels:
        raise config.error("firmware.led_class", f"'{led_class}' is not a class of the data set; expected one of "
                           f"{', '.join(labels)}")
    led = board.leds.get("status")
    if led is None:
        raise TinyedgeError(f"boards/{board.id}.yaml: leds: no 'status' LED to light for firmware.led_class; add "
                            "leds.status {pin, active_low} or remove firmware.led_class")
    return {"led": led, "led_class": led_class, "led_index": labels.index(led_class)}



def input_record(quant: dict, dataset_input: dict, transform: tuple[float, float]) -> dict:
    """codegen/project.json's `input`: what the firmware is given and how it becomes the input tensor. Images come
    from the camera as uint8 pixels through the preprocessing; float features (an .npz data set) come as float32
    values of their own shape (a serial frame or a buffer), both as value / divisor + offset quantized with the
    model's input scale and zero point (preprocess.quantize)."""
    features = "shape" in dataset_input
    shape = (dataset_input["shape"] if features
             else [dataset_input["height"], dataset_input["width"], dataset_input["channels"]])
    return {"kind": "features" if features else "image", "shape": list(shape),
            "given": "float32" if features else "uint8", "transform": {"divisor": transform[0], "offset": transform[1]},
            "dtype": quant["dtype"], "scale": quant["scale"], "zero_point": quant["zero_point"]}
