"""codegen (espdl): the .espdl -> an ESP-IDF project (build/codegen/firmware/) that PlatformIO builds with
`framework = espidf` and `idf.py build` builds as it is, plus the memory budget on the board.

The shared files (platformio.ini, CMakeLists.txt, sdkconfig.defaults, partitions.csv, src/idf_component.yml) come
from toolchains.esp_idf; this backend adds the application component src/: main.cpp, the .espdl and the
preprocessing C. The model is embedded 16-byte aligned by esp-dl's own CMake helper (plain EMBED_FILES leaves it
unaligned and ESP-DL then copies the parameters to RAM). The input table is the common preprocessing with ESP-DL's
input quantization: scale 2**exponent, no zero point, as esp-ppq quantized pixel / 255 in the simulation.
"""
from __future__ import annotations

from pathlib import Path

from ...artifacts import ESPDL_MODEL, Budget, Calibration, DatasetSummary, PpqRecord
from ...config import boards
from ...errors import TinyedgeError
from ...toolchains import esp_idf, write_project
from .. import budget_knobs, camera_board
from . import BACKEND, preflight
from .operators import ESPDL_VERSION   # the release whose modules operators.py lists

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODEL_FILE = "src/model.espdl"   # target_add_aligned_binary_data names its symbol _binary_model_espdl_start
APP_FILES = ("src/CMakeLists.txt", "src/main.cpp")

COMPONENTS = {
    "espressif/esp-dl": {"version": ESPDL_VERSION,
                         "why": "ESP-DL: the runtime the .espdl was made for and operators.py was checked against"},
    "espressif/esp32-camera": {"version": "2.1.5",
                               "why": "OV2640 driver: camera_config_t with fb_location, grab_mode"},
}
IDF_VERSION = ">=5.3"  # ESP-DL 3.x firmware; PlatformIO's espressif32 6.9.0 (boards/esp32cam.yaml) brings ESP-IDF 5.3.1

SETTINGS = [
    esp_idf.Setting("CONFIG_ESP_MAIN_TASK_STACK_SIZE", 16384,
                    "app_main loads the dl::Model and runs it on the main task: the 3.5 KB default is too small "
                    "for ESP-DL's model parsing and call depth"),
    esp_idf.Setting("CONFIG_COMPILER_OPTIMIZATION_PERF", True,
                    "-O2: ESP-DL's operators are compute-bound; the default -Og debug level is several times slower"),
]


def project_files(board, project: str, labels: list[str], calibration: Calibration,
                  shape, transform: tuple[float, float]) -> dict[str, str]:
    """Every text file of the project; the caller adds the .espdl bytes as MODEL_FILE."""
    from ...native.csource import ctype, environment
    from ...preprocess import c as preprocess_c

    quant = calibration.input
    if quant["dtype"] not in ("int8", "int16"):
        raise TinyedgeError(f"the .espdl input is {quant['dtype']}; the firmware feeds int8 or int16: quantize the "
                            "first layer too (do not leave it float)")
    values = {"board": board, "board_name": board.id, "project": project, "labels": labels,
              "input": quant, "output": calibration.output, "input_ctype": ctype(quant["dtype"], "input"),
              "espdl_version": ESPDL_VERSION}
    files = esp_idf.skeleton(board, project, COMPONENTS, IDF_VERSION, SETTINGS)
    env = environment(TEMPLATES)
    files.update({name: env.get_template(f"{name}.j2").render(values) for name in APP_FILES})
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels,
                                      {"dtype": quant["dtype"], "scale": 2.0 ** quant["exponent"], "zero_point": 0},
                                      transform))
    return files


def run(ctx) -> None:
    from ...preprocess import transform_of
    board = boards.load(ctx.sources[0])
    camera_board(BACKEND, board)
    calibration = ctx.read(Calibration)
    record = ctx.read(PpqRecord).data
    if record["target"] != board.esp_idf.target:
        raise TinyedgeError(f"build/{ESPDL_MODEL} is for {record['target']}, boards/{board.id}.yaml targets "
                            f"{board.esp_idf.target}; run doit again (quantize reads the board file)")
    model = ctx.inputs[ESPDL_MODEL].read_bytes()
    budget = Budget(**preflight.budget(board, len(model), calibration.arena_bytes, ctx.config["firmware.arena_margin"],
                                   budget_knobs(ctx.config)))
    ctx.write(budget)
    ctx.log(f"{board.id}: model.espdl {len(model)} B (flash {budget.flash['needed_bytes']} of "
            f"{budget.flash['available_bytes']} B with the runtime), activations {budget.arena['bytes']} B in "
            f"{boards.PLACES[budget.arena['placement']]} (ESP-DL allocates them itself)")
    files = project_files(board, ctx.config["project.name"], ctx.read(DatasetSummary).classes,
                          calibration, ctx.config.section("dataset.input"),
                          transform_of(ctx.config["dataset.input"]))
    files[MODEL_FILE] = model
    ctx.write(write_project(ctx.out, "firmware", files, esp_idf.TOOLCHAIN, board))
