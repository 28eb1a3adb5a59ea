"""codegen (espdl): the .espdl -> an ESP-IDF project (build/codegen/firmware/) that PlatformIO builds with
`framework = espidf` and `idf.py build` builds as it is, plus the memory budget on the board.

The project is tinyedge's ESP-IDF shell (toolchains.esp_idf: app_main, the camera with the budget's frame buffers,
LED, console, timing, the validation protocol) around this backend's model adapter src/te_model_espdl.cpp, the
.espdl and the preprocessing C. The model is embedded 16-byte aligned by esp-dl's own CMake helper (plain
EMBED_FILES leaves it unaligned and ESP-DL then copies the parameters to RAM). dl::Model gets the budget's
placement: max_internal_size = the budgeted activation bytes when they fit in internal RAM (ESP-DL's greedy memory
manager then keeps them there, dl_memory_manager_greedy.cpp), 0 when the budget put them in PSRAM; param_copy
false, so the parameters stay in flash where the budget counts them. The input table is the common preprocessing
with ESP-DL's input quantization: scale 2**exponent, no zero point, as esp-ppq quantized pixel / 255.
"""
from __future__ import annotations

from pathlib import Path

from ...artifacts import ESPDL_MODEL, Budget, Calibration, DatasetSummary, PpqRecord
from ...config import boards
from ...errors import TinyedgeError
from ...toolchains import esp_idf, write_project
from .. import budget_knobs, camera_board, input_record, status_led
from . import BACKEND, preflight
from .operators import ESPDL_VERSION   # the release whose modules operators.py lists

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODEL_FILE = "src/model.espdl"   # target_add_aligned_binary_data names its symbol _binary_model_espdl_start

# ESP-DL and its own dependencies, pinned exactly (the camera's are the shell's): esp-dl 3.3.9 asks for
# espressif/esp_new_jpeg ^1 and espressif/dl_fft >=0.6.0 (esp-dl/idf_component.yml), which would float.
COMPONENTS = {
    "espressif/esp-dl": {"version": ESPDL_VERSION,
                         "why": "ESP-DL: the runtime the .espdl was made for and operators.py was checked against"},
    "espressif/esp_new_jpeg": {"version": "1.0.2", "why": "esp-dl 3.3.9 requires ^1: pinned to the 1.x release"},
    "espressif/dl_fft": {"version": "0.6.0",
                         "why": "esp-dl 3.3.9 requires >=0.6.0, the version in its own tree (tools/dl_fft): pinned"},
}
IDF_VERSION = ">=5.3"  # ESP-DL 3.x firmware; PlatformIO's espressif32 6.9.0 (boards/esp32cam.yaml) brings ESP-IDF 5.3.1

SETTINGS = (
    esp_idf.Setting("CONFIG_ESP_MAIN_TASK_STACK_SIZE", 16384,
                    "app_main loads the dl::Model and runs it on the main task: the 3.5 KB default is too small "
                    "for ESP-DL's model parsing and call depth"),
)
# esp-dl/fbs_loader/cmake/utilities.cmake: target_add_aligned_binary_data(target file type) expects `cmake_dir`
# to point at its folder; plain EMBED_FILES gives no alignment guarantee.
ALIGNED_MODEL = """idf_component_get_property(espdl_dir espressif__esp-dl COMPONENT_DIR)
set(cmake_dir ${espdl_dir}/fbs_loader/cmake)
include(${cmake_dir}/utilities.cmake)
target_add_aligned_binary_data(${COMPONENT_LIB} ${CMAKE_CURRENT_SOURCE_DIR}/model.espdl BINARY)"""


def _tensor(tensor: dict) -> dict:
    """A graph input/output as INFO states it: ESP-DL's scale is 2**exponent, no zero point (float: 1, 0)."""
    if tensor["dtype"] == "float32":
        return {**tensor, "scale": 1.0, "zero_point": 0}
    return {**tensor, "scale": 2.0 ** tensor["exponent"], "zero_point": 0}


def memory(budget: Budget) -> dict:
    """dl::Model's max_internal_size for the budget's placement, and what the firmware and the log say of it."""
    arena = budget.arena
    if arena["placement"] == "internal":
        return {"max_internal_size": arena["bytes"], "budget": f"{arena['bytes']} B in internal RAM",
                "why": f"max_internal_size {arena['bytes']} B: the budget's activations, kept in internal RAM "
                       "(0 would put all of them in PSRAM)"}
    return {"max_internal_size": 0, "budget": f"{arena['bytes']} B in PSRAM",
            "why": "max_internal_size 0: the budget put the activations in PSRAM (internal RAM is too small)"}


def project_files(board, project: str, labels: list[str], calibration: Calibration,
                  shape, transform: tuple[float, float], budget: Budget, led: dict, model: bytes) -> dict:
    """Every file of the project, the .espdl bytes as MODEL_FILE."""
    from ...native.csource import environment
    from ...preprocess import c as preprocess_c

    quant = calibration.input
    if quant["dtype"] not in ("int8", "int16"):
        raise TinyedgeError(f"the .espdl input is {quant['dtype']}; the firmware feeds int8 or int16: quantize the "
                            "first layer too (do not leave it float)")
    values = {"project": project, "board_name": board.id, "input": quant, "memory": memory(budget),
              "espdl_version": ESPDL_VERSION}
    adapter_cpp = environment(TEMPLATES).get_template("src/te_model_espdl.cpp.j2").render(values)
    adapter = esp_idf.Adapter(backend=BACKEND.name, files={"src/te_model_espdl.cpp": adapter_cpp, MODEL_FILE: model},
                              sources=("te_model_espdl.cpp",), input=_tensor(quant),
                              output=_tensor(calibration.output), model=model, arena_bytes=budget.arena["bytes"],
                              components=COMPONENTS, settings=SETTINGS, requires=("esp-dl",),
                              idf_version=IDF_VERSION, cmake=ALIGNED_MODEL)
    files = esp_idf.application(board, project, adapter, budget, labels, led)
    files.update(preprocess_c.sources(shape.width, shape.height, shape.channels,
                                      _quant(quant), transform))
    return files


def _quant(espdl_input: dict) -> dict:
    """ESP-DL's power-of-two input quantization as {dtype, scale, zero_point}: scale 2^exponent, no zero point."""
    return {"dtype": espdl_input["dtype"], "scale": 2.0 ** espdl_input["exponent"], "zero_point": 0}


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
    placed = memory(budget)
    ctx.log(f"{board.id}: model.espdl {len(model)} B (flash {budget.flash['needed_bytes']} of "
            f"{budget.flash['available_bytes']} B with the runtime; parameters read from flash, param_copy false), "
            f"activations {placed['budget']} (dl::Model max_internal_size {placed['max_internal_size']})")
    dataset, transform = ctx.read(DatasetSummary), transform_of(ctx.config["dataset.input"])
    labels = dataset.classes
    files = project_files(board, ctx.config["project.name"], labels, calibration,
                          ctx.config.section("dataset.input"), transform, budget,
                          status_led(ctx.config, board, labels), model)
    ctx.write(write_project(ctx.out, "firmware", files, esp_idf.TOOLCHAIN, board, esp_idf.model_digest(model),
                            input_record(_quant(calibration.input), dataset.input, transform)))
