"""codegen: the calibrated int8 model -> an ESP-IDF project for the board (build/codegen/firmware/), built by
PlatformIO (framework = espidf) and by `idf.py build` from the same folder, and its project index.

The project is tinyedge's ESP-IDF shell (toolchains.esp_idf: app_main, camera, LED, console, timing, the
validation protocol) around this backend's model adapter src/te_model_tflm.cc (TFLM with ESP-NN, a resolver of
exactly the model's operators, the budget's arena, a profiler timing each operator), the model as a C array and the
preprocessing C. The budget and the operator check run first, so a model that cannot run on the board stops here,
not in `pio run`. Imported to make tasks
(sources()): NumPy and the TFLM runtime are imported inside run().
"""
from __future__ import annotations

from pathlib import Path

from ...artifacts import INT8_TFLITE, Budget, Calibration, DatasetSummary
from ...config import boards
from ...native.csource import environment, hex_rows
from ...toolchains import esp_idf, write_project
from .. import budget_knobs, camera_board, input_record, status_led
from . import BACKEND

TEMPLATES = Path(__file__).resolve().parent / "templates"
APP_FILES = ("src/te_model_tflm.cc", "src/model_data.h", "src/model_data.cc")
PLACES = {"internal": ("internal RAM", "MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT"),
          "psram": ("PSRAM", "MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT")}

# The managed components, pinned exactly (the camera's are the shell's). esp-tflite-micro >= 1.3.4 runs
# per-channel FULLY_CONNECTED in ESP-NN; 1.3.8 carries upstream tflite-micro 0965635. esp-nn is pinned so the
# arena sizing (scratch.py) matches the kernels that run; its tag v1.2.0 publishes as "1.2.0~1" (revision 1),
# which "==1.2.0" would not match.
COMPONENTS = {
    "espressif/esp-tflite-micro": {"version": "1.3.8", "why": "TFLM with ESP-NN kernels (tflite-micro 0965635)"},
    "espressif/esp-nn": {"version": "1.2.0~1", "why": "ESP-NN kernels: pinned, their scratch sizes set the arena"},
}
IDF_VERSION = ">=5.1"  # esp32-camera 2.1.5 needs ESP-IDF 5.1; esp-tflite-micro 1.3.8 needs 5.0

SETTINGS = (
    esp_idf.Setting("CONFIG_NN_OPTIMIZED", True,
                    "ESP-NN's optimised kernels (S3 assembly, generic C elsewhere): the arithmetic the host check ran"),
    esp_idf.Setting("CONFIG_ESP_MAIN_TASK_STACK_SIZE", 8192,
                    "app_main runs TFLM's Invoke on the main task: the 3.5 KB default is too small for its call "
                    "depth and printf"),
)


def app_files(values: dict) -> dict[str, str]:
    env = environment(TEMPLATES)
    return {name: env.get_template(f"{name}.j2").render(values) for name in APP_FILES}


def run(ctx) -> None:
    from ...preprocess import c as preprocess_c
    from ...preprocess import transform_of
    from ...tflite import model_file
    from .resolver import resolver_ops
    board = boards.load(ctx.sources[0])  # the board file: the only source
    camera_board(BACKEND, board)
    calibration = ctx.read(Calibration)
    dataset = ctx.read(DatasetSummary)
    labels = dataset.classes
    model_bytes = ctx.inputs[INT8_TFLITE].read_bytes()
    graph_ops = model_file.operators(model_bytes)
    operators = resolver_ops(graph_ops)
    from . import preflight
    budget = Budget(**preflight.budget(board, model_bytes, calibration.arena_bytes, ctx.config["firmware.arena_margin"],
                                       budget_knobs(ctx.config)))
    ctx.write(budget)
    arena = budget.arena
    place, caps = PLACES[arena["placement"]]
    ctx.log(f"{board.id}: model {len(model_bytes)} B (flash {budget.flash['needed_bytes']} of "
            f"{budget.flash['available_bytes']} B with the runtime), arena {arena['bytes']} B in {place}")

    known = arena["extra_why"] is not None  # the chip's ESP-NN scratch was computed
    margin_reason = (f"{arena['extra_bytes']} B {arena['extra_why']} + {arena['margin']:.0%}" if known
                     else f"{arena['margin']:.0%} firmware.arena_margin")
    values = {
        "project": ctx.config["project.name"], "operators": operators, "source": INT8_TFLITE,
        "arena": {**arena, "margin_reason": margin_reason, "place": place, "caps": caps, "known": known},
        "layers": [op["op"] for op in graph_ops],
        "model_bytes": len(model_bytes), "rows": hex_rows(model_bytes, 12, "0x{:02x}"),
    }
    adapter = esp_idf.Adapter(backend=BACKEND.name, files=app_files(values),
                              sources=("te_model_tflm.cc", "model_data.cc"), input=calibration.input,
                              output=calibration.output, model=model_bytes, arena_bytes=arena["bytes"],
                              components=COMPONENTS, settings=SETTINGS, idf_version=IDF_VERSION)
    files = esp_idf.application(board, ctx.config["project.name"], adapter, budget, labels,
                                status_led(ctx.config, board, labels))
    shape, transform = ctx.config.section("dataset.input"), transform_of(ctx.config["dataset.input"])
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels, calibration.input, transform))
    ctx.write(write_project(ctx.out, "firmware", files, esp_idf.TOOLCHAIN, board, esp_idf.model_digest(model_bytes),
                            input_record(calibration.input, dataset.input, transform)))
