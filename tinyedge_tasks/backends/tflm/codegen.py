"""codegen: the calibrated int8 model -> a PlatformIO project for the board (build/codegen/firmware/) and its
project index (codegen/project.json).

Kept boring, like tflite-micro's generate_cc_arrays.py: Jinja2 templates filled with plain values. The memory
budget and the operator check run first, so a model that cannot run on the board stops here, not in `pio run`.
Imported to make tasks (sources()): NumPy and the TFLM runtime are imported inside run().
"""
from __future__ import annotations

import json
from pathlib import Path

from ...artifacts import Budget, Calibration, DatasetSummary
from ...config import boards
from ...csource import ctype, environment, hex_rows
from ...errors import TinyedgeError
from ...toolchains import write_project
from .. import board_section
from . import BACKEND

TEMPLATES = Path(__file__).resolve().parent / "templates"
PLACES = {"internal": "internal RAM", "psram": "PSRAM"}

# Builtin operator -> MicroMutableOpResolver method of the ESP32 TFLM port (ESP-NN kernels where they exist).
RESOLVER = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D", "COS": "AddCos",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv", "ELU": "AddElu",
    "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FLOOR": "AddFloor",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GREATER": "AddGreater",
    "HARD_SWISH": "AddHardSwish", "L2_NORMALIZATION": "AddL2Normalization", "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess", "LOG": "AddLog", "LOGISTIC": "AddLogistic", "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MUL": "AddMul", "NEG": "AddNeg",
    "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize",
    "REDUCE_MAX": "AddReduceMax", "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear", "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "RSQRT": "AddRsqrt", "SHAPE": "AddShape", "SIN": "AddSin", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt",
    "SQUARE": "AddSquare", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub",
    "SUM": "AddSum", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNPACK": "AddUnpack",
}


def sources(manifest) -> list[Path]:
    """The board file: editing it reruns codegen (the templates are part of the stage's code digest)."""
    return [boards.path_of(manifest)]


def resolver_ops(model_bytes: bytes) -> list[dict]:
    """The distinct operators of the model with their resolver method; an operator the ESP32 TFLM port
    cannot run stops here, naming it and the layer that uses it."""
    from ...tflite import runtime
    found, unknown = {}, []
    for entry in runtime.operators(model_bytes):
        method = RESOLVER.get(entry["op"])
        if method is None:
            unknown.append(f"{entry['op']} (layer '{entry['layer'].split(';')[0]}')")
        else:
            found.setdefault(entry["op"], {"op": entry["op"], "method": method})
    if unknown:
        raise TinyedgeError(
            f"the model uses operators TFLM on the ESP32 cannot run: {', '.join(unknown)}; replace those layers "
            f"in train.model with supported ones (TFLM runs: {', '.join(sorted(RESOLVER))})")
    return sorted(found.values(), key=lambda entry: entry["op"])


def run(ctx) -> None:
    from ...preprocess import c as preprocess_c

    board_name = ctx.config["board"]
    board = boards.load(ctx.sources[0])  # the board file: the only source
    toolchain = board_section(BACKEND, board, board_name)
    if board.camera is None:
        raise TinyedgeError(f"boards/{board_name}.yaml: no camera section; the {BACKEND.name} firmware's super-loop "
                            "classifies camera frames: add camera (sensor, xclk_hz, frame, pins) or pick a board "
                            "with a camera")
    calibration = ctx.read(Calibration)
    labels = ctx.read(DatasetSummary).classes
    model_bytes = ctx.inputs["quantize/model.tflite"].read_bytes()
    operators = resolver_ops(model_bytes)
    budget = Budget(**boards.budget(board, board_name, len(model_bytes), calibration.arena_bytes,
                                    ctx.config["firmware.arena_margin"]))
    ctx.write(budget)
    ctx.log(f"{board_name}: model {len(model_bytes)} B (flash {budget.flash['needed_bytes']} of "
            f"{budget.flash['available_bytes']} B with the runtime), arena {budget.arena['bytes']} B in "
            f"{PLACES[budget.arena['placement']]}")

    led_class = ctx.config["firmware.led_class"]
    led = board.leds.get("status")
    if led_class is not None and led_class not in labels:
        raise ctx.config.error("firmware.led_class", f"'{led_class}' is not a class of the data set; "
                               f"expected one of {', '.join(labels)}")
    if led_class is not None and led is None:
        raise TinyedgeError(f"boards/{board_name}.yaml: leds: no 'status' LED to light for firmware.led_class; "
                            "add leds.status {pin, active_low} or remove firmware.led_class")
    shape = ctx.config.section("dataset.input")
    values = {
        "board": board, "board_name": board_name, "project": ctx.config["project.name"], "budget": budget.__dict__,
        "labels": labels, "operators": operators, "pins": board.camera.pins, "source": "quantize/model.tflite",
        "led": led if led_class is not None else None, "led_class": led_class,
        "led_index": labels.index(led_class) if led_class is not None else -1,
        "place": PLACES[budget.arena["placement"]], "output": calibration.output,
        "output_ctype": ctype(calibration.output["dtype"], "output"),
        "model_bytes": len(model_bytes), "rows": hex_rows(model_bytes, 12, "0x{:02x}"),
    }
    env = environment(TEMPLATES)
    files = {name: env.get_template(f"{name}.j2").render(values)
             for name in ("platformio.ini", "src/main.cpp", "src/model_data.h", "src/model_data.cc")}
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels, calibration.input))
    ctx.write(write_project(ctx.out, "firmware", files, toolchain, board_name, board.serial_speed))
