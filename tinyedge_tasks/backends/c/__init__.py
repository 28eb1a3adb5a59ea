"""The interpreter-free C99 backend: the calibrated int8 .tflite lowered (tinyedge_tasks/lowering) and printed as
C with hand-written kernels and one statically planned arena; built with arm-none-eabi-gcc for an emulated
Cortex-M4 and evaluated there (and with the host's gcc) on the whole test split, against the TFLM runtime. On an
ESP32 board codegen writes an ESP-IDF project (PlatformIO) that runs the same C on camera frames.

Stage order: quantize, codegen, calibrate, build. calibrate compiles the model itself, for the host and (on the
emulated board) with the qemu toolchain's own build, and runs both: it needs no `doit build`, which on an ESP32
board needs PlatformIO's download."""
from ...artifacts import DATA, INT8_TFLITE, DatasetSummary, MemoryPlan, Metrics, ProjectIndex
from ...rows import Stage
from ...table import BOARD_FILE, ESP_IDF_SHELL, QUANTIZE_TFLITE, build_row
from .. import BUDGET_KEYS, in_folder

DOC = "Interpreter-free C99 (no allocation, one planned arena), run on an emulated Cortex-M4 (QEMU)"

BACKEND = in_folder(__name__, ("qemu", "esp_idf"), DOC, (
    QUANTIZE_TFLITE,
    Stage("codegen", "Lower the int8 model to C (kernels, weights, a planned arena) with the preprocessing; "
          "check the memory budget on the board; write the project (firmware/) and the memory plan.",
          module=f"{__name__}.codegen",
          templates=("backends/c/kernels", "backends/c/templates", *ESP_IDF_SHELL, "preprocess/templates"),
          reads=("project.name", "board", "firmware.backend", "firmware.led_class", *BUDGET_KEYS),
          needs=(INT8_TFLITE, DatasetSummary.ARTIFACT, DATA),
          makes=("budget.json", "project.json", "memory_plan.json"), tools=("tflite-micro", "numpy", "jinja2"),
          sources=BOARD_FILE),
    Stage("calibrate", "Run the compiled model on the whole test split, host build (gcc) and, on the emulated "
          "board, the QEMU build; compare with the TFLM runtime byte for byte; count instructions per inference "
          "(QEMU -icount).",
          module=f"{__name__}.evaluate", reads=("dataset.input",),
          needs=(INT8_TFLITE, DATA, Metrics.ARTIFACT, ProjectIndex.ARTIFACT,
                 MemoryPlan.ARTIFACT),
          makes=("calibration.json", "c_runtime.json", "outputs.npy"), tools=("tflite-micro", "numpy")),
    build_row("Build the project with its toolchain: arm-none-eabi-gcc for the emulated board (code, weight and "
              "static RAM bytes from arm-none-eabi-size; firmware.bin is the ELF QEMU loads), PlatformIO for an "
              "ESP32 board (network on first use).", tools=("platformio",), default=False),
))
