"""TensorFlow Lite Micro on the ESP32: the int8 flatbuffer, evaluated in the real TFLM runtime, in an ESP-IDF
project (Espressif's esp-tflite-micro with ESP-NN, pinned) with the model as a C array and a MicroMutableOpResolver
of exactly its operators; built through PlatformIO (framework = espidf) or idf.py."""
from ...artifacts import DATA, INT8_TFLITE, Calibration, DatasetSummary, Metrics
from ...rows import Stage
from ...table import BOARD_FILE, ESP_IDF_SHELL, QUANTIZE_TFLITE, build_row
from .. import BUDGET_KEYS, in_folder

DOC = "TensorFlow Lite Micro with ESP-NN on the ESP32 (ESP-IDF through PlatformIO)"

BACKEND = in_folder(__name__, ("esp_idf",), DOC, (
    QUANTIZE_TFLITE,
    Stage("calibrate", "Evaluate the int8 model on the test split in the TFLM runtime; find the smallest arena.",
          module=f"{__name__}.evaluate", reads=("dataset.input",),
          needs=(INT8_TFLITE, DATA, Metrics.ARTIFACT),
          makes=("calibration.json", "outputs.npy"), tools=("tflite-micro", "numpy")),
    Stage("codegen", "Check the memory budget on the board; write the ESP-IDF project (firmware/).",
          module=f"{__name__}.codegen",
          templates=("backends/tflm/templates", *ESP_IDF_SHELL, "preprocess/templates"),
          reads=("project.name", "board", "firmware.backend", "firmware.arena_margin", "firmware.led_class",
                 *BUDGET_KEYS),
          needs=(INT8_TFLITE, Calibration.ARTIFACT, DatasetSummary.ARTIFACT),
          makes=("budget.json", "project.json"), tools=("jinja2", "tflite-micro", "numpy"), sources=BOARD_FILE),
    build_row("Run `pio run` on the generated ESP-IDF project (framework = espidf); record flash and RAM use "
              "(needs PlatformIO's ESP32 platform, ESP-IDF and the components: network on first use).",
              tools=("platformio",), default=False),
))
