"""codegen (espdl): the .espdl -> an ESP-IDF project (build/codegen/firmware/) that PlatformIO builds with
`framework = espidf` and `idf.py build` builds as it is, plus the memory budget on the board.

The model is embedded 16-byte aligned by esp-dl's own CMake helper (plain EMBED_FILES leaves it unaligned and
ESP-DL then copies the parameters to RAM). The input table is the common preprocessing with ESP-DL's input
quantization: scale 2**exponent, no zero point, as esp-ppq quantized pixel / 255 in the simulation. Imported to
make tasks (sources()): NumPy and Jinja2 are imported inside run().
"""
from __future__ import annotations

import json
from pathlib import Path

from ...artifacts import Budget, Calibration, DatasetSummary
from ...config import boards
from ...errors import TinyedgeError
from ...toolchains import write_project
from .. import board_section
from . import BACKEND
from .operators import ESPDL_VERSION   # the release whose modules operators.py lists

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODEL_FILE = "src/model.espdl"   # target_add_aligned_binary_data names its symbol _binary_model_espdl_start
CAMERA_VERSION = "2.1.5"
PLACES = {"internal": "internal RAM", "psram": "PSRAM"}
TEXT_FILES = ("platformio.ini", "CMakeLists.txt", "partitions.csv", "sdkconfig.defaults", "src/CMakeLists.txt",
              "src/idf_component.yml", "src/main.cpp")


def sources(manifest) -> list[Path]:
    """The board file: editing it reruns codegen (the templates are part of the stage's code digest)."""
    return [boards.path_of(manifest)]


def sdkconfig_line(key: str, value) -> str:
    """A board's sdkconfig entry as Kconfig writes it: y / '# ... is not set' / "text" / number."""
    if value is True:
        return f"{key}=y"
    if value is False:
        return f"# {key} is not set"
    return f'{key}="{value}"' if isinstance(value, str) else f"{key}={value}"


def project_files(board, board_name: str, project: str, labels: list[str], calibration: Calibration,
                  shape) -> dict[str, str]:
    """Every text file of the project; the caller adds the .espdl bytes as MODEL_FILE."""
    from ...csource import ctype, environment
    from ...preprocess import c as preprocess_c

    quant = calibration.input
    if quant["dtype"] not in ("int8", "int16"):
        raise TinyedgeError(f"the .espdl input is {quant['dtype']}; the firmware feeds int8 or int16: quantize the "
                            "first layer too (do not leave it float)")
    if board.platformio is None:
        raise TinyedgeError(f"boards/{board_name}.yaml: no platformio section; the ESP-IDF project is built by "
                            "PlatformIO (framework = espidf) with its `platform` and `board`: add them")
    values = {"board": board, "board_name": board_name, "project": project, "labels": labels,
              "input": quant, "output": calibration.output, "input_ctype": ctype(quant["dtype"], "input"),
              "espdl_version": ESPDL_VERSION, "camera_version": CAMERA_VERSION,
              "sdkconfig": [sdkconfig_line(k, v) for k, v in board.esp_idf.sdkconfig.items()]}
    env = environment(TEMPLATES)
    files = {name: env.get_template(f"{name}.j2").render(values) for name in TEXT_FILES}
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels,
                                      {"dtype": quant["dtype"], "scale": 2.0 ** quant["exponent"], "zero_point": 0}))
    return files


def run(ctx) -> None:
    board_name = ctx.config["board"]
    board = boards.load(ctx.sources[0])
    board_section(BACKEND, board, board_name)
    if board.camera is None:
        raise TinyedgeError(f"boards/{board_name}.yaml: no camera section; the {BACKEND.name} firmware's super-loop "
                            "classifies camera frames: add camera (sensor, xclk_hz, frame, pins) or pick a board "
                            "with a camera")
    calibration = ctx.read(Calibration)
    record = json.loads(ctx.inputs["quantize/ppq.json"].read_text())
    if record["target"] != board.esp_idf.target:
        raise TinyedgeError(f"build/quantize/model.espdl is for {record['target']}, boards/{board_name}.yaml targets "
                            f"{board.esp_idf.target}; run doit again (quantize reads the board file)")
    model = ctx.inputs["quantize/model.espdl"].read_bytes()
    budget = Budget(**boards.budget(board, board_name, len(model), calibration.arena_bytes,
                                    ctx.config["firmware.arena_margin"]))
    ctx.write(budget)
    ctx.log(f"{board_name}: model.espdl {len(model)} B (flash {budget.flash['needed_bytes']} of "
            f"{budget.flash['available_bytes']} B with the runtime), activations {budget.arena['bytes']} B in "
            f"{PLACES[budget.arena['placement']]} (ESP-DL allocates them itself)")
    files = project_files(board, board_name, ctx.config["project.name"], ctx.read(DatasetSummary).classes,
                          calibration, ctx.config.section("dataset.input"))
    files[MODEL_FILE] = model
    ctx.write(write_project(ctx.out, "firmware", files, "platformio", board_name, board.serial_speed))
