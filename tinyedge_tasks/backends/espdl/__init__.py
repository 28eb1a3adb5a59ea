"""ESP-DL on the ESP32 family: the Keras model -> ONNX (tf2onnx) -> esp-ppq (8-bit, 16-bit or mixed) -> a
`.espdl` file, scored in esp-ppq's simulator, in an ESP-IDF project built by PlatformIO (framework = espidf).

Needs the `espdl` install extra (PyTorch, esp-ppq, the ONNX tools); esp-ppq runs in a child process."""
from ...artifacts import (DATA, ESPDL_MODEL, ESPDL_NATIVE, FLOAT_MODEL, Calibration, DatasetSummary, Metrics, PpqErrors,
                         PpqRecord)
from ...rows import Stage
from ...table import BOARD_FILE, ESP_IDF_SHELL, TF, build_row
from .. import BUDGET_KEYS, in_folder

ESPPPQ = TF + ("torch", "esp-ppq", "tf2onnx", "onnx", "onnxruntime", "onnxsim")


def settings(config):
    """compression.espdl as its typed section; its defaults when the manifest leaves it out."""
    from ...config.manifest import EspDl
    return config.section("compression.espdl") or EspDl()


DOC = "ESP-DL on the ESP32, ESP32-S3, ESP32-P4 (esp-ppq, ESP-IDF through PlatformIO)"

BACKEND = in_folder(__name__, ("esp_idf",), DOC, (
    Stage("quantize", "Export to ONNX (checked against Keras); quantize with esp-ppq for the board's chip into "
          "model.espdl.",
          module=f"{__name__}.quantize",
          reads=("project.seed", "train.model", "train.trust_model_code", "compression.calibrate",
                 "compression.espdl", "board", "dataset.input"),
          needs=(FLOAT_MODEL, DATA),
          makes=("model.onnx", "model.espdl", "model.native", "ppq.json", "errors.json"), tools=ESPPPQ,
          sources=BOARD_FILE),
    Stage("calibrate", "Simulate the quantized graph on the test split (esp-ppq TorchExecutor); estimate "
          "ESP-DL's activation memory.",
          module=f"{__name__}.evaluate", reads=("dataset.input",),
          needs=(ESPDL_MODEL, ESPDL_NATIVE, PpqRecord.ARTIFACT, PpqErrors.ARTIFACT,
                 DATA, Metrics.ARTIFACT),
          makes=("calibration.json", "espdl.json", "outputs.npy"), tools=ESPPPQ),
    Stage("codegen", "Check the memory budget on the board; write the ESP-IDF project (firmware/).",
          module=f"{__name__}.codegen",
          templates=("backends/espdl/templates", *ESP_IDF_SHELL, "preprocess/templates"),
          reads=("project.name", "board", "firmware.arena_margin", "firmware.led_class", *BUDGET_KEYS),
          needs=(ESPDL_MODEL, PpqRecord.ARTIFACT, Calibration.ARTIFACT,
                 DatasetSummary.ARTIFACT),
          makes=("budget.json", "project.json"), tools=("jinja2",), sources=BOARD_FILE),
    build_row("Run `pio run` on the generated ESP-IDF project (framework = espidf); record flash and RAM use "
              "(needs PlatformIO's ESP32 platform and ESP-IDF: network on first use).", tools=("platformio",),
              default=False),
))
